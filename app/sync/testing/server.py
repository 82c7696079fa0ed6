"""The model server: syncserver's rules, in memory, on the virtual clock.

Theory of operation (the same as ``syncserver``)
-----------------------------------------------
* One global revision counter; every committed write takes the next value.
* One last-write-wins register per key, holding the value and its revision.
* Writes are group-committed after a short delay; once committed the writer
  gets an :class:`Ack` and every connected device, the writer included, gets a
  :class:`Push`.
* ``hello since N`` is answered with a :class:`Snapshot` of every key whose
  register was written after N, and the current revision.
* A restart keeps every committed write (the registers and the history are
  durable) and loses the connections and the writes not yet committed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from .messages import (
    Ack,
    ClientFrame,
    Error,
    Get,
    Hello,
    Push,
    Set,
    Snapshot,
    SnapshotEntry,
    Value,
)
from .network import Connection, Network

__all__ = ["ModelServer", "Write"]


@dataclass(frozen=True, slots=True)
class Write:
    """One committed write, as the server's durable history records it."""

    server_revision: int
    key: Hashable
    value: Any
    device_id: int
    local_revision: int


class ModelServer:
    """An in-memory syncserver: revision counter, registers, history, fan-out."""

    def __init__(
        self,
        rng: random.Random,
        initial_value: Callable[[Hashable], Any],
        *,
        snapshot_writer: bool = True,
        commit_delay: tuple[float, float] = (0.0, 0.01),
    ) -> None:
        self.network: Network | None = None
        self.rng = rng
        self.initial_value = initial_value
        self.snapshot_writer = snapshot_writer
        self.commit_delay = commit_delay
        # durable
        self.revision = 0
        self.registers: dict[Hashable, Write] = {}
        self.history: list[Write] = []
        # volatile
        self.up = True
        self.restarts = 0
        self.refuse_next: dict[int, int] = {}
        self._queue: list[tuple[Connection, Set]] = []
        self._commit: asyncio.TimerHandle | None = None

    # -- reads of durable state ----------------------------------------------------

    def value(self, key: Hashable) -> tuple[Any, int]:
        """The register of ``key``: its value and revision (0 if never written)."""
        write = self.registers.get(key)
        if write is None:
            return self.initial_value(key), 0
        return write.value, write.server_revision

    @property
    def uncommitted(self) -> int:
        return len(self._queue)

    # -- lifecycle -----------------------------------------------------------------

    def restart(self, down_for: float) -> None:
        """Crash now and come back after ``down_for`` seconds with the durable state."""
        assert self.network is not None
        self.up = False
        self.restarts += 1
        self._queue.clear()
        self.refuse_next.clear()
        if self._commit is not None:
            self._commit.cancel()
            self._commit = None
        for connection in list(self.network.connections.values()):
            self.network.close(connection)
        asyncio.get_running_loop().call_later(down_for, self._come_back, self.restarts)

    def _come_back(self, restart: int) -> None:
        if restart == self.restarts:
            self.up = True

    # -- frames --------------------------------------------------------------------

    def receive(self, connection: Connection, frame: ClientFrame) -> None:
        if not self.up or not connection.open:
            return
        if isinstance(frame, Hello):
            changed = sorted(
                (w for w in self.registers.values() if w.server_revision > frame.since),
                key=lambda w: w.server_revision,
            )
            entries = tuple(
                SnapshotEntry(
                    w.key,
                    w.value,
                    w.server_revision,
                    w.device_id if self.snapshot_writer else None,
                    w.local_revision if self.snapshot_writer else None,
                )
                for w in changed
            )
            self._send(connection, Snapshot(self.revision, entries))
        elif isinstance(frame, Get):
            value, revision = self.value(frame.key)
            self._send(connection, Value(frame.request_id, frame.key, value, revision))
        elif self.refuse_next.get(frame.device_id, 0) > 0:
            self.refuse_next[frame.device_id] -= 1
            self._send(connection, Error(frame.request_id, "injected_failure", "refused"))
        else:
            self._queue.append((connection, frame))
            if self._commit is None:
                low, high = self.commit_delay
                self._commit = asyncio.get_running_loop().call_later(
                    self.rng.uniform(low, high), self._group_commit
                )

    def _group_commit(self) -> None:
        self._commit = None
        batch, self._queue = self._queue, []
        for connection, frame in batch:
            self.revision += 1
            write = Write(
                self.revision, frame.key, frame.value, frame.device_id, frame.local_revision
            )
            self.history.append(write)
            self.registers[frame.key] = write
            self._send(connection, Ack(frame.request_id, frame.key, frame.value, self.revision))
            assert self.network is not None
            push = Push(
                frame.key, frame.value, self.revision, frame.local_revision, frame.device_id
            )
            for other in list(self.network.connections.values()):
                self.network.send_down(other, push)

    def _send(self, connection: Connection, frame: Ack | Snapshot | Value | Error) -> None:
        assert self.network is not None
        self.network.send_down(connection, frame)
