"""The real server in the simulation: ``ServerCore`` on a ``MemoryBackend``.

:class:`SimServer` is a shell like ``syncserver/server.py``, but over the
simulated network and the virtual clock: it hands each connection's frames to
the core and gives the core each connection's :class:`~.network.ServerEnd` as
its peer. What a real server keeps on disk (the backend's epoch, revision and
registers) survives :meth:`SimServer.crash` and :meth:`SimServer.shutdown`;
:meth:`SimServer.crash` with ``fresh=True`` is a restart on a new database.

Every commit is also recorded in :attr:`SimServer.history`, per epoch, so the
invariants can check that no acknowledged write was lost, and that each
write's ``prev`` is the previous write of its space.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from syncserver.backends import CommitCallback, FailureCallback
from syncserver.backends import Write as BackendWrite
from syncserver.backends.memory import MemoryBackend
from syncserver.config import ServerConfig
from syncserver.core import ServerCore
from syncserver.protocol import DEFAULT_SPACE

from .network import Connection, Network

__all__ = ["SimServer", "Write"]


@dataclass(frozen=True, slots=True)
class Write:
    """One committed write, as the server's history of ``epoch`` records it: ``key``
    of ``space``, and ``prev``, the revision of the space's write before it."""

    epoch: str
    server_revision: int
    key: str
    value: Any
    device_id: int
    local_revision: int
    space: str = DEFAULT_SPACE
    prev: int = 0


@dataclass(frozen=True, slots=True)
class _Disk:
    """What survives the server process: its database."""

    epoch: str | None = None
    revision: int = 0
    registers: tuple[BackendWrite, ...] = ()
    """Every space's registers."""
    devices: tuple[tuple[int, bytes], ...] = ()
    """Each device id's recorded secret digest."""


class _LoopClock:
    """The core's clock: the running (virtual) loop."""

    def time(self) -> float:
        return asyncio.get_running_loop().time()

    def call_later(self, delay: float, callback: Any) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback)


class SimServer:
    """One sync server process at a time, restarted, reset and shut down on demand."""

    def __init__(
        self,
        network: Network,
        config: ServerConfig | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.network = network
        self.rng = rng if rng is not None else random.Random()
        """Draws each new database's epoch (seeded: runs repeat exactly)."""
        self.config = config if config is not None else ServerConfig(port=0)
        self.core: ServerCore | None = None
        self.backend: MemoryBackend | None = None
        self.history: dict[str, list[Write]] = {}
        """Every committed write, per epoch, in revision order."""
        self.epochs: list[str] = []
        self.restarts = 0
        self.resets = 0
        self.shutdowns = 0
        self.outages = 0
        self.stopping = False
        self._disk = _Disk()
        self._generation = 0
        network.accept = self._accept

    # -- what it holds ----------------------------------------------------------------

    @property
    def up(self) -> bool:
        return self.core is not None and not self.stopping

    @property
    def epoch(self) -> str | None:
        return self.backend.epoch if self.backend is not None else self._disk.epoch

    @property
    def revision(self) -> int:
        return self.backend.revision if self.backend is not None else self._disk.revision

    def register(self, key: str, space: str = DEFAULT_SPACE) -> tuple[Any, int]:
        """A key's value in ``space`` (decoded JSON; None if never written) and
        revision (0 then)."""
        if self.backend is not None:
            write = self.backend.get(space, key)
        else:
            write = next(
                (w for w in self._disk.registers if w.space == space and w.key == key), None
            )
        if write is None:
            return None, 0
        return msgspec.json.decode(write.value), write.revision

    def head(self, space: str = DEFAULT_SPACE) -> int:
        """The newest revision written in ``space`` (0: none)."""
        if self.backend is not None:
            return self.backend.head(space)
        return max((w.revision for w in self._disk.registers if w.space == space), default=0)

    @property
    def busy(self) -> bool:
        """Writes accepted and not yet answered, or queued in the backend."""
        core, backend = self.core, self.backend
        return bool(
            self.stopping
            or (core is not None and core.requests_in_flight)
            or (backend is not None and backend.queued)
        )

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Start a process on the database the last one left."""
        if self.core is not None:
            return
        self._generation += 1
        generation = self._generation
        disk = self._disk

        def make_backend(on_commit: CommitCallback, on_failure: FailureCallback) -> MemoryBackend:
            def committed(writes: Sequence[BackendWrite]) -> None:
                if generation != self._generation:
                    return  # a write of a process that died after queuing it
                self._record(writes)
                on_commit(writes)

            epoch = disk.epoch if disk.epoch is not None else f"{self.rng.getrandbits(128):032x}"
            backend = MemoryBackend(committed, on_failure, epoch=epoch)
            backend.revision = disk.revision
            backend.registers = disk.registers
            backend.devices = dict(disk.devices)
            return backend

        core = ServerCore(make_backend, _LoopClock(), self.config)
        backend = core.backend
        assert isinstance(backend, MemoryBackend)
        await backend.open()
        self.core, self.backend = core, backend
        if backend.epoch not in self.history:
            self.history[backend.epoch] = []
            self.epochs.append(backend.epoch)

    def crash(self, *, fresh: bool = False) -> None:
        """SIGKILL: connections drop, queued writes are lost, the database stays
        (or, ``fresh``, is replaced by an empty one with a new epoch)."""
        self._stop()
        self.network.abort_all()
        if fresh:
            self._disk = _Disk()
            self.resets += 1
        else:
            self.restarts += 1

    async def shutdown(self) -> None:
        """SIGTERM, as ``SyncServer.close`` does it with the core."""
        core, backend = self.core, self.backend
        if core is None or backend is None or self.stopping:
            return
        self.stopping = True
        try:
            core.begin_shutdown()
            await backend.close()
            core.finish_shutdown()
        finally:
            self.stopping = False
        if self.core is core:
            self._stop()
            self.shutdowns += 1

    def _stop(self) -> None:
        backend = self.backend
        if backend is not None:
            self._disk = _Disk(
                backend.epoch,
                backend.revision,
                tuple(backend.registers),
                tuple(backend.devices.items()),
            )
        self._generation += 1
        self.core = None
        self.backend = None

    def knows_device(self, device_id: int | None) -> bool:
        """Whether the database has a secret on record for ``device_id``."""
        devices = self.backend.devices if self.backend is not None else dict(self._disk.devices)
        return device_id in devices

    def outage(self, seconds: float) -> None:
        """The backend fails every commit for ``seconds``."""
        if self.backend is not None:
            self.backend.make_unavailable(seconds)
            self.outages += 1

    # -- connections ------------------------------------------------------------------

    def _accept(self, connection: Connection) -> bool:
        core = self.core
        if core is None or self.stopping:
            return False
        conn = core.connect(connection.server, f"sim:{connection.id}")
        connection.to_server = lambda frame: core.receive(conn, frame)
        connection.server_gone = lambda: core.disconnect(conn)
        return True

    def _record(self, writes: Sequence[BackendWrite]) -> None:
        backend = self.backend
        if backend is None or not writes:
            return
        log = self.history.setdefault(backend.epoch, [])
        if backend.epoch not in self.epochs:
            self.epochs.append(backend.epoch)
        for write in writes:
            log.append(
                Write(
                    backend.epoch,
                    write.revision,
                    write.key,
                    msgspec.json.decode(write.value),
                    write.device_id,
                    write.local_revision,
                    write.space,
                    write.prev,
                )
            )
