"""The promises a run must keep, checked from the core's events, the wire and
the server's history.

Throughout the run, from every device's :class:`~app.sync.SyncEvent` stream:

* at most one request in flight per (device, key);
* on a connection, the ack of a write arrives before the push of that write (and
  of every later one), as the protocol promises when no demo delays are on;
* isolation: a device's connection is sent pushes and snapshot pages of its own
  space only, and the device applies (or holds, or ignores as stale) only
  writes of its own space;
* requests sent for a key never outnumber the taps on it (``RequestSent`` never
  outnumbers ``OptimisticApplied``; resends after ``unavailable`` are one request).

At quiescence (every device connected, caught up and idle, nothing on the wire):

* every device shows the server's value and revision in its space for every
  key, and no key is shown as synced while it differs;
* no acknowledged write is lost: each ack a device received is in the history of
  its epoch at its revision, in its space (a history reset replaces the
  database: the old epoch's writes are gone with it, by design), revisions run
  1, 2, 3… in every epoch, each write's ``prev`` is the revision of the write
  before it in its space, and each register is its key's last write in its space;
* each device's last tap per key is on the server (its own last write to that key
  carries it), was superseded by a strictly newer server write the device applied
  after the tap (newer than the tap's known revision and than every write this
  device sent before the tap, the one in flight at the tap included), failed and
  was reloaded (``SyncFailed``), or was lost with a killed process before its
  store flushed it;
* a device reopened after a kill has the device id it had.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.sync import (
    FollowUpScheduled,
    OptimisticApplied,
    PushApplied,
    PushHeld,
    PushIgnoredStale,
    RequestSent,
    SyncEvent,
    SyncFailed,
    SyncFinished,
)
from syncserver.protocol import DEFAULT_SPACE

from .server import SimServer, Write

__all__ = ["Ack", "InvariantViolation", "KeyRecord", "Monitor"]


class InvariantViolation(AssertionError):
    """A run broke a promise; the message ends with a script that reproduces it."""

    def __init__(self, problems: list[str], script: str) -> None:
        self.problems = problems
        self.script = script
        listed = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(
            f"{len(problems)} invariant(s) broken:\n{listed}\n\nReproduce with:\n\n{script}"
        )


@dataclass(frozen=True, slots=True)
class Ack:
    """An ack a device received: ``key`` of ``space`` holds ``value`` at ``revision``
    of ``epoch``."""

    epoch: str | None
    key: str
    value: Any
    revision: int
    space: str = DEFAULT_SPACE


@dataclass(slots=True)
class KeyRecord:
    """What one device did with one key."""

    taps: int = 0
    requests: int = 0
    request_open: bool = False
    last_tap: OptimisticApplied | None = None
    last_tap_epoch: str | None = None
    since_last_tap: list[tuple[SyncEvent, str | None]] = field(default_factory=list)
    lost_to_kill: bool = False


class Monitor:
    """Collects events from every device and reports broken promises."""

    def __init__(self) -> None:
        self.records: dict[tuple[int, Hashable], KeyRecord] = {}
        self.acks: list[tuple[int, Ack]] = []
        self.problems: list[str] = []
        self.event_counts: Counter[str] = Counter()
        """How many events of each kind (by class name) every device published."""
        self.taps_lost_to_kills = 0
        self.received: list[tuple[int, str, str | None, int, Hashable]] = []
        """(device, its space, epoch, revision, key) of every server write a device
        applied, held or ignored as stale."""
        self.now: Callable[[], float] = lambda: 0.0

    def record(self, device: int, key: Hashable) -> KeyRecord:
        found = self.records.get((device, key))
        if found is None:
            found = self.records[(device, key)] = KeyRecord()
        return found

    def problem(self, text: str) -> None:
        self.problems.append(f"t={self.now():.3f}s: {text}")

    # -- throughout -----------------------------------------------------------------

    def listener(
        self,
        device: int,
        device_epoch: Callable[[], str | None],
        server_epoch: Callable[[], str | None],
        space: str = DEFAULT_SPACE,
    ) -> Callable[[SyncEvent], None]:
        """The event listener for (an incarnation of) device number ``device`` in
        ``space``. A tap's revisions count in the history the device follows
        (``device_epoch``); a push comes from the server running now
        (``server_epoch``: a restart drops what was on the wire), even while the
        device is still catching up with it."""

        def listen(event: SyncEvent) -> None:
            tap = isinstance(event, OptimisticApplied)
            epoch = device_epoch() if tap else server_epoch()
            if isinstance(event, _RECEIVED):
                self.received.append((device, space, epoch, event.server_revision, event.key))
            self.on_event(device, event, epoch)

        return listen

    def on_event(self, device: int, event: SyncEvent, epoch: str | None = None) -> None:
        self.event_counts[type(event).__name__] += 1
        record = self.record(device, event.key)
        where = f"device {device} key {event.key!r}"
        if isinstance(event, OptimisticApplied):
            record.taps += 1
            record.last_tap = event
            record.last_tap_epoch = epoch
            record.since_last_tap = []
            record.lost_to_kill = False
        elif isinstance(event, RequestSent):
            if record.request_open:
                self.problem(f"{where}: a second request was sent while one was in flight")
            record.request_open = True
            record.requests += 1
            if record.requests > record.taps:
                self.problem(f"{where}: {record.requests} requests sent for {record.taps} taps")
        elif isinstance(event, FollowUpScheduled | SyncFinished | SyncFailed):
            record.request_open = False
            if not isinstance(event, FollowUpScheduled):
                record.since_last_tap.append((event, epoch))
        elif isinstance(event, PushApplied):
            record.since_last_tap.append((event, epoch))

    def on_ack(self, device: int, ack: Ack) -> None:
        self.acks.append((device, ack))

    def on_kill(self, device: int, flushed_intents: Mapping[str, Any]) -> None:
        """Device ``device``'s process died; its store had flushed ``flushed_intents``
        (key -> intent with a ``local_revision``)."""
        for (number, key), record in self.records.items():
            if number != device:
                continue
            record.request_open = False
            tap = record.last_tap
            if tap is None or any(isinstance(e, SyncFinished) for e, _ in record.since_last_tap):
                continue
            flushed = flushed_intents.get(str(key))
            if flushed is None or getattr(flushed, "local_revision", -1) < tap.local_revision:
                record.lost_to_kill = True

    # -- at quiescence ----------------------------------------------------------------

    def check_history(self, server: SimServer) -> None:
        for epoch, history in server.history.items():
            for position, write in enumerate(history, start=1):
                if write.server_revision != position:
                    self.problem(
                        f"epoch {epoch[:8]}: revision {write.server_revision} at position "
                        f"{position} of the history"
                    )
                    break
            head: dict[str, int] = {}
            for write in history:
                if write.prev != head.get(write.space, 0):
                    self.problem(
                        f"epoch {epoch[:8]}: write {write.server_revision} says prev "
                        f"{write.prev}, the write before it in {write.space!r} is "
                        f"{head.get(write.space, 0)}"
                    )
                    break
                head[write.space] = write.server_revision
        current = server.history.get(server.epoch or "", [])
        last: dict[tuple[str, str], Write] = {}
        for write in current:
            last[(write.space, write.key)] = write
        for (space, key), write in last.items():
            if server.register(key, space) != (write.value, write.server_revision):
                self.problem(f"register {key!r} of {space!r} is not its last write {write}")
        for device, ack in self.acks:
            history = server.history.get(ack.epoch or "", [])
            found = history[ack.revision - 1] if 0 < ack.revision <= len(history) else None
            if found is None or (found.space, found.key, found.value) != (
                ack.space,
                ack.key,
                ack.value,
            ):
                self.problem(
                    f"device {device}: acked write {ack} is not in the history (found {found})"
                )

    def check_isolation(self, server: SimServer, spaces: Mapping[int, str]) -> None:
        """No device applied, held or ignored a write of a space other than its own."""
        for device, space, epoch, revision, key in self.received:
            history = server.history.get(epoch or "", [])
            write = history[revision - 1] if 0 < revision <= len(history) else None
            if write is not None and write.key == key and write.space != space:
                self.problem(
                    f"device {device} in space {space!r} received write {revision} of "
                    f"{key!r} in space {write.space!r}"
                )

    def check_intents(
        self,
        server: SimServer,
        device_ids: Mapping[int, int],
        spaces: Mapping[int, str] | None = None,
    ) -> None:
        by_revision = {
            (write.epoch, write.server_revision): write
            for history in server.history.values()
            for write in history
        }
        everything = [write for epoch in server.epochs for write in server.history[epoch]]
        for (device, key), record in self.records.items():
            tap = record.last_tap
            if tap is None:
                continue
            device_id = device_ids.get(device)
            space = (spaces or {}).get(device, DEFAULT_SPACE)
            own = [
                w
                for w in everything
                if w.key == key and w.device_id == device_id and w.space == space
            ]
            if own and own[-1].value == tap.value:
                continue  # the last intent is what the server got from this device
            if any(
                isinstance(event, SyncFailed) and event.local_revision == tap.local_revision
                for event, _ in record.since_last_tap
            ):
                continue  # the sync failed and the key was reloaded
            if any(
                isinstance(event, PushApplied)
                and _newer(event, epoch, record, tap, by_revision, own, device_id)
                for event, epoch in record.since_last_tap
            ):
                continue  # a newer write superseded it
            if record.lost_to_kill:
                self.taps_lost_to_kills += 1
                continue  # the process died before its store flushed the intent
            self.problem(
                f"device {device} key {key!r}: last intent {tap.value!r} (local revision "
                f"{tap.local_revision}) is lost: neither on the server nor superseded"
            )


_RECEIVED = (PushApplied, PushHeld, PushIgnoredStale)
"""Events of a server write reaching a device's core."""


def _newer(
    push: PushApplied,
    epoch: str | None,
    record: KeyRecord,
    tap: OptimisticApplied,
    by_revision: Mapping[tuple[str, int], Write],
    own: Sequence[Write],
    device_id: int | None,
) -> bool:
    """Whether an applied push carried a write newer than the tap: one of another
    history (the tap's was replaced), or a later revision by someone else (or by this
    device at a later local revision) above every write this device sent before the
    tap: a write our own in-flight one overwrote on the server supersedes nothing."""
    if epoch != record.last_tap_epoch:
        return True
    if push.server_revision <= tap.server_revision:
        return False
    write = by_revision.get((epoch or "", push.server_revision))
    if write is None or (
        write.device_id == device_id and write.local_revision < tap.local_revision
    ):
        return False
    return all(
        push.server_revision > mine.server_revision
        for mine in own
        if mine.epoch == write.epoch and mine.local_revision < tap.local_revision
    )
