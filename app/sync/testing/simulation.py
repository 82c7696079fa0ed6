"""The simulation: the shipped link, server and likes flow on a virtual clock."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from app.link import Backoff
from app.link.errors import DeviceInUseError
from app.link.store import MemoryStore
from syncserver.protocol import DEFAULT_SPACE

from . import hostile
from .flows import DeviceIO, Flow, FlowDevice, Likes
from .invariants import Ack, InvariantViolation, Monitor
from .loop import VirtualDeadlock, run_virtual
from .network import Network
from .processes import Process, install
from .schedule import (
    Action,
    Advance,
    BackendOutage,
    BigData,
    Disconnect,
    DropPush,
    DuplicateOpen,
    DuplicatePush,
    FailNextRequest,
    HistoryReset,
    Impersonate,
    KillDevice,
    Latency,
    NestedValue,
    RestartServer,
    Schedule,
    Shutdown,
    StolenWrite,
    Tap,
    WriteDelay,
)
from .server import SimServer
from .stores import SimStore

__all__ = ["LinkTimings", "RunStats", "Simulation"]

_SETTLE_STEP = 0.05
_URLS = ("ws://sim.invalid",)


@dataclass(frozen=True, slots=True)
class LinkTimings:
    """How patient the devices are, in virtual seconds: the reconnect backoff starts at
    ``reconnect``, an idle link says hello every ``heartbeat``, a request gives up
    after ``request_timeout``, and a store flushes ``store_flush`` after a change."""

    reconnect: float = 0.1
    heartbeat: float = 1.0
    request_timeout: float = 5.0
    store_flush: float = 0.005


@dataclass(frozen=True, slots=True)
class RunStats:
    """What one run did, for reports."""

    virtual_seconds: float
    taps: int
    requests: int
    writes: int
    pushes_dropped: int
    pushes_duplicated: int
    resyncs: int
    gap_resyncs: int
    restarts: int
    faults: Mapping[str, int] = field(default_factory=dict)
    """How many actions of each fault kind the schedule had."""
    taps_lost_to_kills: int = 0
    second_opens_refused: int = 0
    closes: Mapping[int, int] = field(default_factory=dict)
    """How many connections ended with each close code."""


@dataclass(slots=True)
class _Slot:
    """One device: its store outlives its processes."""

    index: int
    name: str
    space: str
    store: SimStore
    process: Process | None = None
    session: FlowDevice | None = None
    device_id: int | None = None
    incarnations: int = 0
    unsubscribe: Any = None


class Simulation:
    """N devices running the given :class:`Flow` (the shipped likes by default) over
    the real ``SyncClient``, against the real ``ServerCore``, driven by a
    :class:`Schedule`.

    ``spaces`` splits the devices over that many spaces, in turn (device ``i`` is
    in :meth:`space_of` ``(i)``; the first space is the default one), all tapping
    the same key names: each space must converge on its own registers, and no
    device may ever receive or apply a write of another space.

    ``run(schedule)`` plays the schedule then lets the system settle (every
    device connected, caught up and idle, nothing on the wire);
    ``check_invariants()`` then raises :class:`InvariantViolation` if any
    promise was broken. Both raise with a repro script in the message.
    """

    def __init__(
        self,
        devices: int = 3,
        keys: int = 2,
        *,
        flow: Flow | None = None,
        timings: LinkTimings | None = None,
        settle_limit: float = 120.0,
        spaces: int = 1,
    ) -> None:
        if devices < 1 or keys < 1:
            raise ValueError("a simulation needs at least one device and one key")
        if spaces < 1:
            raise ValueError("a simulation needs at least one space")
        self.device_count = devices
        self.key_count = keys
        self.space_count = spaces
        self.flow: Flow = flow if flow is not None else Likes()
        self.timings = timings if timings is not None else LinkTimings()
        self.settle_limit = settle_limit
        self.schedule: Schedule | None = None
        self.monitor = Monitor()
        self.network: Network | None = None
        self.server: SimServer | None = None
        self.devices: list[FlowDevice | None] = []
        """Each device's session as the run left it (None: down)."""
        self.stats: RunStats | None = None
        self._slots: list[_Slot] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._second_opens_refused = 0
        self._resyncs = 0
        self._gaps = 0
        self._rng = random.Random()

    def __repr__(self) -> str:
        options = [f"devices={self.device_count}", f"keys={self.key_count}"]
        if type(self.flow) is not Likes:
            options.append(f"flow={self.flow!r}")
        if self.timings != LinkTimings():
            options.append(f"timings={self.timings!r}")
        if self.settle_limit != 120.0:
            options.append(f"settle_limit={self.settle_limit!r}")
        if self.space_count != 1:
            options.append(f"spaces={self.space_count}")
        return f"Simulation({', '.join(options)})"

    def space_of(self, device: int) -> str:
        """The space device number ``device`` follows: spaces are dealt out in turn,
        the default space first."""
        number = device % self.space_count
        return DEFAULT_SPACE if number == 0 else f"space-{number}"

    # -- running ---------------------------------------------------------------------------

    def run(self, schedule: Schedule) -> Simulation:
        """Play ``schedule`` and settle; raise :class:`InvariantViolation` if it cannot settle."""
        if self.schedule is not None:
            raise RuntimeError("a Simulation runs one schedule; make a new one")
        for action in schedule.actions:
            self._validate(action)
        self.schedule = schedule
        try:
            run_virtual(self._main(schedule))
        except (VirtualDeadlock, _NoQuiescence) as error:
            raise InvariantViolation([*self.monitor.problems, str(error)], self.script()) from None
        return self

    def check_invariants(self) -> None:
        """Raise :class:`InvariantViolation` listing every broken promise of the run."""
        if self.server is None or self.schedule is None:
            raise RuntimeError("run a schedule first")
        if self.monitor.problems:
            raise InvariantViolation(list(self.monitor.problems), self.script())

    def script(self) -> str:
        """Python that replays this run, for a bug report."""
        assert self.schedule is not None
        names = {"Schedule", "Simulation"}
        names.update(type(action).__name__ for action in self.schedule.actions)
        if self.timings != LinkTimings():
            names.add("LinkTimings")
        imports = f"from app.sync.testing import {', '.join(sorted(names))}\n"
        flow = type(self.flow)
        if flow is not Likes:
            imports += f"from {flow.__module__} import {flow.__qualname__}\n"
        return (
            f"{imports}\n"
            f"simulation = {self!r}\n"
            f"simulation.run({self.schedule!r})\n"
            "simulation.check_invariants()\n"
        )

    # -- inside the virtual loop -------------------------------------------------------------

    async def _main(self, schedule: Schedule) -> None:
        loop = asyncio.get_running_loop()
        install(loop)
        loop.set_exception_handler(self._on_loop_error)
        monitor = self.monitor
        monitor.now = loop.time
        self._rng = random.Random(schedule.seed)
        network = self.network = Network(random.Random(self._rng.getrandbits(64)))
        network.opened = self._on_connection
        server = self.server = SimServer(network, rng=random.Random(self._rng.getrandbits(64)))
        await server.start()
        for index in range(self.device_count):
            name = f"device-{index}"
            space = self.space_of(index)
            store = SimStore(name, None, self.timings.store_flush, space=space)
            slot = _Slot(index, name, space, store)
            self._slots.append(slot)
            await self._open(slot)
        for action in schedule.actions:
            await self._perform(action)
        await self._settle()
        self._check_at_quiescence()
        self.devices = [slot.session for slot in self._slots]
        records = monitor.records.values()
        faults = Counter(
            type(action).__name__
            for action in schedule.actions
            if not isinstance(action, Tap | Advance)
        )
        self.stats = RunStats(
            virtual_seconds=loop.time(),
            taps=sum(r.taps for r in records),
            requests=sum(r.requests for r in records),
            writes=sum(len(history) for history in server.history.values()),
            pushes_dropped=network.pushes_dropped,
            pushes_duplicated=network.pushes_duplicated,
            resyncs=self._resyncs + self._count("snapshots_applied"),
            gap_resyncs=self._gaps + self._count("gaps_detected"),
            restarts=server.restarts,
            faults=dict(faults),
            taps_lost_to_kills=monitor.taps_lost_to_kills,
            second_opens_refused=self._second_opens_refused,
            closes=dict(network.close_codes),
        )
        for slot in self._slots:
            if slot.session is not None and slot.process is not None:
                await slot.process.spawn(slot.session.close())

    def _count(self, name: str) -> int:
        return sum(
            getattr(slot.session.client, name) for slot in self._slots if slot.session is not None
        )

    def _background_task(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- devices ----------------------------------------------------------------------------

    def _io(self, slot: _Slot, store: MemoryStore, process: Process) -> DeviceIO:
        assert self.network is not None
        assert self.schedule is not None
        timings = self.timings
        return DeviceIO(
            name=slot.name,
            urls=_URLS,
            keys=tuple(self.flow.key(index) for index in range(self.key_count)),
            connect=self.network.connector(slot.name, process),
            store=store,
            rng=random.Random(self._rng.getrandbits(64)),
            clock=asyncio.get_running_loop().time,
            backoff=Backoff(initial=timings.reconnect, maximum=timings.reconnect * 10),
            heartbeat=timings.heartbeat,
            request_timeout=timings.request_timeout,
            space=slot.space,
        )

    async def _open(self, slot: _Slot) -> None:
        process = Process(f"{slot.name}#{slot.incarnations}")
        slot.incarnations += 1
        slot.store.process = process
        slot.process = process
        session = await process.spawn(self.flow.open(self._io(slot, slot.store, process)))
        if process.dead:  # killed while opening
            return
        slot.session = session
        if slot.device_id is None:
            slot.device_id = session.device_id
        elif session.device_id != slot.device_id:
            self.monitor.problem(
                f"device {slot.index} reopened as device id {session.device_id}, "
                f"it was {slot.device_id}"
            )
            slot.device_id = session.device_id
        listener = self.monitor.listener(
            slot.index, lambda: session.client.epoch, lambda: self._server_epoch(), slot.space
        )
        slot.unsubscribe = session.cubit.device.subscribe(listener)

    def _server_epoch(self) -> str | None:
        return self.server.epoch if self.server is not None else None

    def _kill(self, slot: _Slot, down_for: float) -> None:
        process = slot.process
        if process is None or process.dead:
            return
        session = slot.session
        if session is not None:
            self._resyncs += session.client.snapshots_applied
            self._gaps += session.client.gaps_detected
            slot.device_id = session.device_id  # a device may take a new id (id claimed)
        if slot.unsubscribe is not None:
            slot.unsubscribe()
            slot.unsubscribe = None
        store = slot.store
        store.abandon()
        self.monitor.on_kill(slot.index, store.durable.intents)
        process.kill()
        assert self.network is not None
        self.network.abort_owner(process)
        # The dead process' store object keeps its unflushed puts; the next one
        # starts from what was durable.
        slot.store = SimStore(slot.name, store.durable, self.timings.store_flush, space=slot.space)
        slot.session = None
        slot.process = None

        async def reopen() -> None:
            await asyncio.sleep(down_for)
            await self._open(slot)

        self._background_task(reopen())

    async def _second_open(self, slot: _Slot, key: int) -> None:
        if slot.session is None:
            return
        process = Process(f"{slot.name} (second)")
        try:
            session = await process.spawn(self.flow.open(self._io(slot, slot.store, process)))
        except DeviceInUseError:
            self._second_opens_refused += 1
            process.kill()
            return
        # Opened anyway: a second process runs with the same identity.
        name = f"{slot.name} (second)"
        extra = _Slot(len(self._slots), name, slot.space, slot.store, process, session)
        extra.device_id = session.device_id
        listener = self.monitor.listener(
            extra.index, lambda: session.client.epoch, lambda: self._server_epoch(), slot.space
        )
        extra.unsubscribe = session.cubit.device.subscribe(listener)
        self._slots.append(extra)
        process.run(self.flow.tap, session, self.flow.key(key))

    def _on_connection(self, connection: Any) -> None:
        for slot in self._slots:
            if connection.owner is not None and connection.owner is slot.process:
                connection.client.received = self._wire_reader(slot.index, slot.space)
                return

    def _wire_reader(self, device: int, space: str) -> Any:
        """Watches what one connection of ``device`` (in ``space``) receives: records
        acks, checks that each ack comes before the push of its write (and of any
        later one), and that no push or snapshot of another space reaches it."""
        monitor = self.monitor
        server = self.server
        assert server is not None
        newest_push = 0

        def foreign(what: str, other: object) -> None:
            monitor.problem(f"device {device} in space {space!r} was sent a {what} of {other!r}")

        def read(frame: str) -> None:
            nonlocal newest_push
            if frame.startswith('{"type":"ack"'):
                ack = json.loads(frame)
                revision = ack["server_revision"]
                if newest_push >= revision:
                    monitor.problem(
                        f"device {device}: the ack of revision {revision} came after the "
                        f"push of revision {newest_push} on the same connection"
                    )
                ack_space = ack.get("space", DEFAULT_SPACE)
                monitor.on_ack(
                    device, Ack(server.epoch, ack["key"], ack["value"], revision, ack_space)
                )
            elif frame.startswith('{"type":"pushes"'):
                pushes = json.loads(frame)["pushes"]
                for push in pushes:
                    if push.get("space", DEFAULT_SPACE) != space:
                        foreign("push", push.get("space"))
                if pushes:
                    newest_push = max(newest_push, pushes[-1]["server_revision"])
            elif frame.startswith('{"type":"push"'):
                push = json.loads(frame)
                if push.get("space", DEFAULT_SPACE) != space:
                    foreign("push", push.get("space"))
                newest_push = max(newest_push, push["server_revision"])
            elif frame.startswith('{"type":"snapshot"'):
                page_space = _SPACE_OF.decode(frame).space
                if page_space != space:
                    foreign("snapshot page", page_space)

        return read

    # -- actions ------------------------------------------------------------------------------

    async def _perform(self, action: Action) -> None:
        server, network = self.server, self.network
        assert server is not None
        assert network is not None
        match action:
            case Tap(device=device, key=key):
                slot = self._slots[device]
                if slot.session is not None and slot.process is not None:
                    slot.process.run(self.flow.tap, slot.session, self.flow.key(key))
            case Advance(seconds=seconds):
                await asyncio.sleep(seconds)
            case Latency(low=low, high=high):
                network.latency = (low, high)
            case DropPush(device=device):
                network.drop_pushes[self._slots[device].name] += 1
            case DuplicatePush(device=device):
                network.duplicate_pushes[self._slots[device].name] += 1
            case Disconnect(device=device, seconds=seconds):
                network.cut(self._slots[device].name, seconds)
            case RestartServer(down_for=down_for):
                server.crash()
                self._background_task(self._restart_after(down_for))
            case HistoryReset(down_for=down_for):
                server.crash(fresh=True)
                self._background_task(self._restart_after(down_for))
            case Shutdown(down_for=down_for):
                self._background_task(self._shutdown(down_for))
            case FailNextRequest():
                if server.core is not None:
                    chaos = server.core.chaos
                    chaos.fail_next(chaos.settings.fail_next + 1)
            case WriteDelay(seconds=seconds):
                if server.core is not None:
                    server.core.chaos.set_write_delay(seconds)
            case BackendOutage(seconds=seconds):
                server.outage(seconds)
            case DuplicateOpen(device=device, key=key):
                self._background_task(self._second_open(self._slots[device], key))
            case KillDevice(device=device, after=after, down_for=down_for):
                slot = self._slots[device]
                asyncio.get_running_loop().call_later(after, self._kill, slot, down_for)
            case StolenWrite(device=device, key=key):
                wire_key = self.flow.key(key)
                victim = self._slots[device].device_id
                value = not server.register(wire_key)[0]
                self._background_task(
                    hostile.stolen_write(network, self.monitor, wire_key, value, victim)
                )
            case Impersonate(device=device, key=key, claim_unknown=claim_unknown):
                victim = self._slots[device].device_id
                if victim is not None:
                    wire_key = self.flow.key(key)
                    value = not server.register(wire_key)[0]
                    on_record = None if claim_unknown else lambda: server.knows_device(victim)
                    self._background_task(
                        hostile.impersonate(
                            network, self.monitor, wire_key, value, victim, on_record=on_record
                        )
                    )
            case BigData(keys=keys, size=size):
                self._background_task(hostile.big_data(network, keys, size))
            case NestedValue(depth=depth):
                self._background_task(hostile.nested_value(network, self.monitor, depth))

    async def _restart_after(self, down_for: float) -> None:
        await asyncio.sleep(down_for)
        assert self.server is not None
        await self.server.start()

    async def _shutdown(self, down_for: float) -> None:
        assert self.server is not None
        await self.server.shutdown()
        await self._restart_after(down_for)

    def _validate(self, action: Action) -> None:
        device = getattr(action, "device", None)
        if device is not None and not 0 <= device < self.device_count:
            raise ValueError(f"{action!r}: devices are 0..{self.device_count - 1}")
        key = getattr(action, "key", None)
        if key is not None and not 0 <= key < self.key_count:
            raise ValueError(f"{action!r}: keys are 0..{self.key_count - 1}")
        if isinstance(action, Latency) and not 0 <= action.low <= action.high:
            raise ValueError(f"{action!r}: need 0 <= low <= high")
        for name in ("seconds", "down_for", "after"):
            if getattr(action, name, 0) < 0:
                raise ValueError(f"{action!r}: {name} must not be negative")
        if isinstance(action, BigData) and (action.keys < 1 or action.size < 0):
            raise ValueError(f"{action!r}: need keys >= 1 and size >= 0")
        if isinstance(action, NestedValue) and action.depth < 0:
            raise ValueError(f"{action!r}: depth must not be negative")

    # -- settling and the checks at quiescence ------------------------------------------------

    async def _settle(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settle_limit
        while reasons := self._unsettled():
            if loop.time() > deadline:
                raise _NoQuiescence(
                    f"the system did not settle within {self.settle_limit} virtual seconds "
                    f"after the schedule ended: {reasons}"
                )
            await asyncio.sleep(_SETTLE_STEP)

    def _unsettled(self) -> str:
        server, network = self.server, self.network
        assert server is not None
        assert network is not None
        reasons = []
        if not server.up:
            reasons.append("server down")
        elif server.busy:
            reasons.append("server has writes to answer")
        if network.in_transit:
            reasons.append(f"{network.in_transit} frames in transit")
        if self._background:
            reasons.append(f"{len(self._background)} faults still playing")
        for slot in self._slots:
            session = slot.session
            if session is None:
                reasons.append(f"device {slot.index} is down")
                continue
            client = session.client
            if not client.online:
                reasons.append(f"device {slot.index} offline ({client.status.state})")
            elif (
                not server.head(slot.space) <= client.newest_seen.value <= server.revision
                or client.epoch != server.epoch
            ):
                reasons.append(
                    f"device {slot.index} not caught up in space {slot.space!r} (seen "
                    f"{client.newest_seen.value}, space head {server.head(slot.space)})"
                )
            if session.cubit.device.in_flight_keys():
                reasons.append(f"device {slot.index} has keys in flight")
            if self.flow.pending(session):
                reasons.append(f"device {slot.index} has unconfirmed choices")
        return "; ".join(reasons)

    def _check_at_quiescence(self) -> None:
        server, network = self.server, self.network
        assert server is not None
        assert network is not None
        monitor = self.monitor
        flow = self.flow
        for size in network.oversized:
            monitor.problem(f"the server sent a frame of {size} bytes, over the link's limit")
        for slot in self._slots:
            session = slot.session
            assert session is not None
            for index in range(self.key_count):
                key = flow.key(index)
                value, revision = server.register(key, slot.space)
                expected = flow.expected(value, revision)
                shown = flow.read(session, key)
                if shown != expected:
                    synced = " as synced" if flow.synced(session, key) else ""
                    monitor.problem(
                        f"device {slot.index} key {key!r} shows (value, revision) {shown!r}"
                        f"{synced}, the server has {expected!r} in space {slot.space!r}"
                    )
        monitor.check_history(server)
        spaces = {slot.index: slot.space for slot in self._slots}
        monitor.check_isolation(server, spaces)
        for slot in self._slots:
            if slot.session is not None:
                slot.device_id = slot.session.device_id  # a device may take a new id
        device_ids = {slot.index: slot.device_id for slot in self._slots if slot.device_id}
        monitor.check_intents(server, device_ids, spaces)

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.monitor.problem(
            f"unhandled error in the event loop: {context.get('message')}: "
            f"{context.get('exception')!r}"
        )


class _NoQuiescence(Exception):
    pass


class _SpaceProbe(msgspec.Struct):
    space: str = DEFAULT_SPACE


_SPACE_OF = msgspec.json.Decoder(_SpaceProbe)
"""Reads a snapshot page's space without building its entries."""
