"""Per-key sync status, derived from the core's events.

Theory of operation
-------------------
The badge next to an item must never claim more than is true. A key is
``synced`` only when no request for it is in flight, no intent of this device
is waiting to be sent, the last sync did not fail, and the value shown is the
newest the server is known to hold. Everything else is one of:

* ``saving`` - a request is in flight, or an intent waits for the link
  (it will be sent on reconnect, also after a restart).
* ``unavailable`` - still saving: the server answered ``unavailable`` (not
  stored, try later), and the write is sent again at ``retry_at``.
* ``follow_up_queued`` - a request is in flight and the user changed the value
  again since it left: one more request will follow when it answers.
* ``failed`` - the last sync failed and the server's value was reloaded (or
  could not be); cleared by the next tap or a newer server write.
* ``overridden`` - nothing is pending, but the newest write came from another
  device and replaced what this device's user last chose.

:func:`derive_status` is that table; the cubit feeds it what the events told it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["UNKNOWN_DEVICE", "KeyStatus", "SyncPhase", "derive_status"]

UNKNOWN_DEVICE = -1
"""The writer of a value learned from a snapshot (snapshots do not name the device)."""


class SyncPhase(Enum):
    SYNCED = "synced"
    SAVING = "saving"
    UNAVAILABLE = "unavailable"
    FOLLOW_UP_QUEUED = "follow_up_queued"
    FAILED = "failed"
    OVERRIDDEN = "overridden"


@dataclass(frozen=True, slots=True)
class KeyStatus:
    """What a badge shows for one item.

    ``by_device`` is set for ``overridden``: the device id whose write won, or
    None when it is unknown (the write was learned from a catch-up snapshot).
    ``server_revision`` is the newest server revision known for the key (0 if
    the key was never written), read from the device's context when derived.
    ``retry_at`` (``unavailable`` only): when the write is sent again (the
    link's clock, :func:`time.monotonic` by default).
    """

    phase: SyncPhase = SyncPhase.SYNCED
    by_device: int | None = None
    server_revision: int = 0
    retry_at: float | None = None


def derive_status(
    *,
    server_revision: int,
    in_flight: bool,
    value_moved_since_send: bool,
    intent_pending: bool,
    failed: bool,
    writer: int | None,
    device_id: int,
    lost_choice: bool,
    retry_at: float | None = None,
) -> KeyStatus:
    """The status of one key, from what the device knows of it right now.

    ``value_moved_since_send``: the shown value differs from the one in flight
    and a follow-up will carry it. ``lost_choice``: the shown value is not what
    this device's user last chose. ``writer``: who wrote the newest value known.
    """
    revision = max(server_revision, 0)
    if in_flight:
        if retry_at is not None:
            return KeyStatus(SyncPhase.UNAVAILABLE, None, revision, retry_at)
        phase = SyncPhase.FOLLOW_UP_QUEUED if value_moved_since_send else SyncPhase.SAVING
        return KeyStatus(phase, None, revision)
    if failed:
        return KeyStatus(SyncPhase.FAILED, None, revision)
    if intent_pending:
        return KeyStatus(SyncPhase.SAVING, None, revision)
    if lost_choice and writer is not None and writer != device_id:
        by = None if writer == UNKNOWN_DEVICE else writer
        return KeyStatus(SyncPhase.OVERRIDDEN, by, revision)
    return KeyStatus(SyncPhase.SYNCED, None, revision)
