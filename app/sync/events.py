"""Typed events: every decision the core makes, published to a device's subscribers.

The app's timeline, its per-key status badges and the logs are all derived from
these, so each carries the key, the device and the revisions it was based on.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FollowUpScheduled",
    "OptimisticApplied",
    "PushApplied",
    "PushHeld",
    "PushIgnoredStale",
    "RequestSent",
    "ResponseApplied",
    "SelfEchoAcknowledged",
    "StaleResponseIgnored",
    "SyncEvent",
    "SyncFailed",
    "SyncFinished",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncEvent:
    """Base of all events: which key on which device, with its revisions at the time."""

    key: Hashable
    device_id: int
    local_revision: int
    server_revision: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OptimisticApplied(SyncEvent):
    """A local change was shown at once; ``coalesced`` if a request was already in flight."""

    value: Any
    coalesced: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestSent(SyncEvent):
    """A request left for the server carrying ``value`` at ``local_revision``."""

    value: Any
    follow_up: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class FollowUpScheduled(SyncEvent):
    """A response came back but the value moved on meanwhile: one more request follows."""

    sent_local_revision: int
    value: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseApplied(SyncEvent):
    """The key is stable and the server's response was applied to state."""

    response: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class StaleResponseIgnored(SyncEvent):
    """A response older than a known push was dropped (the newer push wins)."""

    response_revision: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PushApplied(SyncEvent):
    """A newer server write (from another device, or our newest) was applied."""

    from_device_id: int
    push_local_revision: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PushHeld(SyncEvent):
    """Another device's newer write arrived while our request is in flight: its
    revision is recorded, its value held back until our response shows which
    write is newer (then ``PushApplied``, or ``PushIgnoredStale`` if ours is)."""

    from_device_id: int
    push_local_revision: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PushIgnoredStale(SyncEvent):
    """A push at or below the newest known revision was dropped (or a held push
    older than our own write, when its response came back)."""

    push_revision: int
    from_device_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SelfEchoAcknowledged(SyncEvent):
    """The echo of this device's older request: revision recorded, value not applied."""

    push_local_revision: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncFinished(SyncEvent):
    """The key's sync loop ended successfully and released the key."""

    requests: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncFailed(SyncEvent):
    """The key's sync loop failed and released the key; ``on_finish(error)`` ran."""

    error: BaseException
    requests: int
