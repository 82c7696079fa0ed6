"""The connection status a device shows, and a tiny observable to carry it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

__all__ = ["ConnectionState", "ConnectionStatus", "Observable"]

T = TypeVar("T")

log = logging.getLogger(__name__)

ConnectionState = Literal["connecting", "online", "offline"]


@dataclass(frozen=True, slots=True)
class ConnectionStatus:
    """Where a device's link is.

    ``online`` means connected *and* caught up (the hello's snapshot arrived).
    ``offline`` carries ``retry_at``, a :func:`time.monotonic` deadline for the
    next attempt, so a UI can count down. ``attempt`` counts failed attempts
    since the last good connection (0 while online). ``reason`` says, while
    offline, why the last attempt failed or the connection ended ("refused",
    "timed out", "TLS: …", "rejected: … (1008)").
    """

    state: ConnectionState
    url: str | None = None
    retry_at: float | None = None
    attempt: int = 0
    reason: str | None = None

    def seconds_until_retry(self, now: float | None = None) -> float | None:
        """Seconds left before the next attempt (never negative), or None."""
        if self.retry_at is None:
            return None
        now = time.monotonic() if now is None else now
        return max(0.0, self.retry_at - now)


class Observable(Generic[T]):
    """A current value plus listeners told of every change (equal values are dropped)."""

    def __init__(self, value: T) -> None:
        self._value = value
        self._listeners: list[Callable[[T], None]] = []

    @property
    def value(self) -> T:
        return self._value

    def set(self, value: T) -> None:
        if value == self._value:
            return
        self._value = value
        for listener in tuple(self._listeners):
            try:
                listener(value)
            except Exception:
                # A broken observer must not stop the link that feeds it.
                log.exception("listener %r failed on %r", listener, value)

    def subscribe(self, listener: Callable[[T], None]) -> Callable[[], None]:
        """Call ``listener(value)`` on every change; returns an unsubscribe function."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe
