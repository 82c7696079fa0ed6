"""Demo controls: slow the server down and break it on purpose, visibly.

Off unless the server runs with ``allow_chaos`` (``--allow-chaos``). The
controls only ever delay, drop pushes or refuse requests; they never change
what is stored or which revision a write gets, so the server's promises
(ack only when durable, strictly increasing revisions) hold while they are on.
With every control at its default the server behaves exactly as without them.

The app drives them in-process through :class:`ChaosControls` (plain setters);
clients drive them over the wire with a ``chaos`` message (see PROTOCOL.md).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import msgspec

from .protocol import MAX_CHAOS_DELAY, Chaos, ChaosSettings

__all__ = ["ChaosControls", "ChaosSettings"]


def _delay(seconds: float) -> float:
    seconds = float(seconds)
    if not 0.0 <= seconds <= MAX_CHAOS_DELAY:
        raise ValueError(f"delay must be between 0 and {MAX_CHAOS_DELAY} seconds")
    return seconds


class ChaosControls:
    """The demo controls of one server. Every setter takes effect immediately."""

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._settings = ChaosSettings()
        self._on_change = on_change
        self._random = random.Random()

    @property
    def settings(self) -> ChaosSettings:
        """The controls in force (an immutable snapshot)."""
        return self._settings

    @property
    def active(self) -> bool:
        """Whether any control differs from its default."""
        return self._settings != ChaosSettings()

    def _update(self, **changes: object) -> None:
        self._settings = msgspec.structs.replace(self._settings, **changes)
        if self._on_change is not None:
            self._on_change()

    def set_write_delay(self, seconds: float) -> None:
        """Wait this long after receiving a set before writing it."""
        self._update(write_delay=_delay(seconds))

    def set_ack_delay(self, seconds: float) -> None:
        """Wait this long after a write is durable before acking it (pushes go out at once)."""
        self._update(ack_delay=_delay(seconds))

    def set_push_enabled(self, enabled: bool) -> None:
        """Turn pushes off (writes are stored and acked but nobody is told)."""
        self._update(push_enabled=bool(enabled))

    def set_push_delay(self, seconds: float, jitter: float = 0.0) -> None:
        """Delay each push to each connection by ``seconds`` plus up to ``jitter``
        (drawn per connection and push, so pushes overtake acks and each other)."""
        self._update(push_delay=_delay(seconds), push_jitter=_delay(jitter))

    def fail_next(self, count: int = 1) -> None:
        """Refuse the next ``count`` set/get requests with ``injected_failure``."""
        if count < 0:
            raise ValueError("count must be >= 0")
        self._update(fail_next=int(count))

    def reset(self) -> None:
        """Every control back to its default."""
        self._settings = ChaosSettings()
        if self._on_change is not None:
            self._on_change()

    def apply(self, message: Chaos) -> None:
        """Apply a wire ``chaos`` message (fields left out stay as they are)."""
        changes: dict[str, object] = {}
        if message.reset:
            self._settings = ChaosSettings()
        for name in ("write_delay", "ack_delay", "push_enabled", "push_delay", "push_jitter"):
            value = getattr(message, name)
            if value is not None:
                changes[name] = value
        if message.fail_next is not None:
            changes["fail_next"] = message.fail_next
        self._update(**changes)

    # -- used by the server -------------------------------------------------

    def push_delay(self) -> float:
        """Seconds to hold back one push to one connection."""
        settings = self._settings
        jitter = settings.push_jitter
        return settings.push_delay + (self._random.uniform(0.0, jitter) if jitter else 0.0)

    def take_failure(self) -> bool:
        """Whether this request should fail (uses up one ``fail_next``)."""
        if self._settings.fail_next <= 0:
            return False
        self._update(fail_next=self._settings.fail_next - 1)
        return True
