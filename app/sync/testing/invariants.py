"""The promises a run must keep, checked from the core's events and the server's history.

Continuously, from every device's :class:`~app.sync.SyncEvent` stream:

* at most one request in flight per (device, key), seen both as the core's
  ``RequestSent`` … end-of-request events and as writes on the link;
* requests sent for a key never outnumber the taps on it.

At quiescence, from the model server's durable history:

* every device shows the server's value and revision for every key;
* no acknowledged write is lost: the history holds each acked write at its
  revision, revisions run 1, 2, 3… and each register is its key's last write;
* each device's last intent per key is on the server (its own last write to
  that key carries it), was superseded by a strictly newer server write that
  the device applied after the tap, or failed and was reloaded (``SyncFailed``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from app.sync import (
    FollowUpScheduled,
    OptimisticApplied,
    PushApplied,
    RequestSent,
    SyncEvent,
    SyncFailed,
    SyncFinished,
)

from .link import Written
from .server import ModelServer

__all__ = ["InvariantViolation", "Monitor"]


class InvariantViolation(AssertionError):
    """A run broke a promise; the message ends with a script that reproduces it."""

    def __init__(self, problems: list[str], script: str) -> None:
        self.problems = problems
        self.script = script
        listed = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(
            f"{len(problems)} invariant(s) broken:\n{listed}\n\nReproduce with:\n\n{script}"
        )


@dataclass(slots=True)
class KeyRecord:
    """What one device did with one key."""

    taps: int = 0
    requests: int = 0
    request_open: bool = False
    writes_on_link: int = 0
    last_tap: OptimisticApplied | None = None
    since_last_tap: list[SyncEvent] = field(default_factory=list)
    acks: list[Written] = field(default_factory=list)


class Monitor:
    """Collects events from every device and reports broken invariants."""

    def __init__(self) -> None:
        self.records: dict[tuple[int, Hashable], KeyRecord] = {}
        self.problems: list[str] = []
        self.event_counts: Counter[str] = Counter()
        """How many events of each kind (by class name) every device published."""
        self.now: Callable[[], float] = lambda: 0.0

    def record(self, device_id: int, key: Hashable) -> KeyRecord:
        found = self.records.get((device_id, key))
        if found is None:
            found = self.records[(device_id, key)] = KeyRecord()
        return found

    def _problem(self, text: str, *, at_quiescence: bool = False) -> None:
        when = "at quiescence" if at_quiescence else f"t={self.now():.3f}s"
        self.problems.append(f"{when}: {text}")

    def _final_problem(self, text: str) -> None:
        self._problem(text, at_quiescence=True)

    # -- continuous ------------------------------------------------------------------

    def on_event(self, event: SyncEvent) -> None:
        self.event_counts[type(event).__name__] += 1
        record = self.record(event.device_id, event.key)
        where = f"device {event.device_id} key {event.key!r}"
        if isinstance(event, OptimisticApplied):
            record.taps += 1
            record.last_tap = event
            record.since_last_tap = []
        elif isinstance(event, RequestSent):
            if record.request_open:
                self._problem(f"{where}: a second request was sent while one was in flight")
            record.request_open = True
            record.requests += 1
            if record.requests > record.taps:
                self._problem(f"{where}: {record.requests} requests sent for {record.taps} taps")
        elif isinstance(event, FollowUpScheduled | SyncFinished | SyncFailed):
            record.request_open = False
            if isinstance(event, SyncFailed):
                record.since_last_tap.append(event)
        elif isinstance(event, PushApplied):
            record.since_last_tap.append(event)

    def on_link(self, device_id: int, what: str, key: Hashable, detail: Any) -> None:
        record = self.record(device_id, key)
        if what == "write":
            record.writes_on_link += 1
            if record.writes_on_link > 1:
                self._problem(f"device {device_id} key {key!r}: two writes on the link at once")
        elif what == "write_done":
            record.writes_on_link -= 1
        elif what == "ack":
            record.acks.append(detail)

    # -- at quiescence --------------------------------------------------------------------

    def check_history(self, server: ModelServer) -> None:
        history = server.history
        for index, write in enumerate(history, start=1):
            if write.server_revision != index:
                self._final_problem(f"history revision {write.server_revision} at position {index}")
                return
        last: dict[Hashable, Any] = {}
        for write in history:
            last[write.key] = write
        for key, write in last.items():
            if server.registers.get(key) != write:
                self._final_problem(f"register {key!r} is not its last write {write}")
        for (device_id, key), record in self.records.items():
            for ack in record.acks:
                revision = ack.server_revision
                found = history[revision - 1] if 0 < revision <= len(history) else None
                if found is None or found.key != key or found.value != ack.value:
                    self._final_problem(
                        f"device {device_id} key {key!r}: acked write {ack} is not in the "
                        f"history (found {found})"
                    )

    def check_intents(self, server: ModelServer) -> None:
        by_revision = {write.server_revision: write for write in server.history}
        for (device_id, key), record in self.records.items():
            tap = record.last_tap
            if tap is None:
                continue
            own = [w for w in server.history if w.key == key and w.device_id == device_id]
            if own and own[-1].value == tap.value:
                continue  # the last intent is what the server holds from this device
            if any(
                isinstance(event, SyncFailed) and event.local_revision == tap.local_revision
                for event in record.since_last_tap
            ):
                continue  # the sync failed and the key was reloaded
            if any(
                isinstance(event, PushApplied)
                and event.server_revision > tap.server_revision
                and (write := by_revision.get(event.server_revision)) is not None
                and (write.device_id != device_id or write.local_revision >= tap.local_revision)
                for event in record.since_last_tap
            ):
                continue  # a newer write by someone else superseded it
            self._final_problem(
                f"device {device_id} key {key!r}: last intent {tap.value!r} (local revision "
                f"{tap.local_revision}) is lost: neither on the server nor superseded"
            )
