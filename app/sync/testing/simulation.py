"""The simulation: the real core, a model server and a faulty network on a virtual clock."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from app.sync import Cubit, DeviceContext, PushMetadata

from .flows import Flow, LikeToggle
from .invariants import InvariantViolation, Monitor
from .link import LinkTimings, SimLink
from .loop import VirtualDeadlock, run_virtual
from .network import Network
from .schedule import (
    Action,
    Advance,
    Disconnect,
    DropPush,
    DuplicatePush,
    FailNextWrite,
    Latency,
    RestartServer,
    Schedule,
    Tap,
)
from .server import ModelServer

__all__ = ["RunStats", "Simulation"]

_SETTLE_STEP = 0.05
_DEFAULT_TIMINGS = LinkTimings()


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


class Simulation:
    """N devices, each a real :class:`~app.sync.Cubit` on its own :class:`~app.sync.DeviceContext`,
    against a model server, driven by a :class:`Schedule`.

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
        snapshot_writer: bool = True,
        timings: LinkTimings = _DEFAULT_TIMINGS,
        settle_limit: float = 120.0,
    ) -> None:
        if devices < 1 or keys < 1:
            raise ValueError("a simulation needs at least one device and one key")
        self.devices = devices
        self.keys = keys
        self.flow: Flow = flow if flow is not None else LikeToggle()
        self.snapshot_writer = snapshot_writer
        self.timings = timings
        self.settle_limit = settle_limit
        self.schedule: Schedule | None = None
        self.monitor = Monitor()
        self.server: ModelServer | None = None
        self._network: Network | None = None
        self.links: list[SimLink] = []
        self.cubits: list[Cubit[Any]] = []
        self.stats: RunStats | None = None

    def __repr__(self) -> str:
        options = [f"devices={self.devices}", f"keys={self.keys}", f"flow={self.flow!r}"]
        if not self.snapshot_writer:
            options.append("snapshot_writer=False")
        if self.timings != LinkTimings():
            options.append(f"timings={self.timings!r}")
        if self.settle_limit != 120.0:
            options.append(f"settle_limit={self.settle_limit!r}")
        return f"Simulation({', '.join(options)})"

    # -- running ---------------------------------------------------------------------------

    def run(self, schedule: Schedule) -> Simulation:
        """Play ``schedule`` and settle; raise :class:`InvariantViolation` if it cannot settle."""
        if self.schedule is not None:
            raise RuntimeError("a Simulation runs one schedule; make a new one")
        self.schedule = schedule
        for action in schedule.actions:
            self._validate(action)
        try:
            run_virtual(self._main(schedule))
        except (VirtualDeadlock, _NoQuiescence) as error:
            raise InvariantViolation([str(error)], self.script()) from None
        return self

    def check_invariants(self) -> None:
        """Raise :class:`InvariantViolation` listing every broken promise of the run."""
        if self.server is None or self.schedule is None:
            raise RuntimeError("run a schedule first")
        monitor = self.monitor
        problems = list(monitor.problems)
        server = self.server
        for link, cubit in zip(self.links, self.cubits, strict=True):
            for index in range(self.keys):
                key = self.flow.key(index)
                expected = server.value(key)
                shown = self.flow.read(cubit, key)
                if shown != expected:
                    problems.append(
                        f"device {link.device_id} key {key!r} shows (value, revision) "
                        f"{shown!r}, the server has {expected!r}"
                    )
        before = len(monitor.problems)
        monitor.check_history(server)
        monitor.check_intents(server)
        problems.extend(monitor.problems[before:])
        if problems:
            raise InvariantViolation(problems, self.script())

    def script(self) -> str:
        """Python that replays this run, for a bug report."""
        assert self.schedule is not None
        names = {"Schedule", "Simulation", type(self.flow).__name__}
        names.update(type(action).__name__ for action in self.schedule.actions)
        if self.timings != LinkTimings():
            names.add("LinkTimings")
        return (
            f"from app.sync.testing import {', '.join(sorted(names))}\n\n"
            f"simulation = {self!r}\n"
            f"simulation.run({self.schedule!r})\n"
            "simulation.check_invariants()\n"
        )

    # -- inside the virtual loop ------------------------------------------------------------------

    async def _main(self, schedule: Schedule) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._on_loop_error)
        self.monitor.now = loop.time
        rng = random.Random(schedule.seed)
        server = self.server = ModelServer(
            rng, self.flow.initial_value, snapshot_writer=self.snapshot_writer
        )
        network = self._network = Network(rng, server.receive)
        server.network = network

        def can_connect(device: int) -> bool:
            return server.up and network.reachable(device)

        for index in range(self.devices):
            self._add_device(index, network, can_connect)
        for link in self.links:
            link.start()
        for action in schedule.actions:
            await self._perform(action)
        await self._settle()
        for link in self.links:
            link.stop()
        records = self.monitor.records.values()
        self.stats = RunStats(
            virtual_seconds=loop.time(),
            taps=sum(r.taps for r in records),
            requests=sum(r.requests for r in records),
            writes=len(server.history),
            pushes_dropped=network.pushes_dropped,
            pushes_duplicated=network.pushes_duplicated,
            resyncs=sum(link.resyncs for link in self.links),
            gap_resyncs=sum(link.gap_resyncs for link in self.links),
            restarts=server.restarts,
        )

    def _add_device(self, index: int, network: Network, can_connect: Any) -> None:
        device_id = index + 1
        context = DeviceContext(device_id)
        context.subscribe(self.monitor.on_event)
        holder: list[Cubit[Any]] = []

        def on_push(key: Hashable, value: Any, metadata: PushMetadata) -> None:
            self.flow.push(holder[0], key, value, metadata)

        def observe(what: str, key: Hashable, detail: Any) -> None:
            self.monitor.on_link(device_id, what, key, detail)

        link = SimLink(index, device_id, network, can_connect, on_push, observe, self.timings)
        cubit = self.flow.create(context, link)
        holder.append(cubit)
        self.links.append(link)
        self.cubits.append(cubit)

    async def _perform(self, action: Action) -> None:
        server, network = self.server, self._network
        assert server is not None
        assert network is not None
        if isinstance(action, Tap):
            self.flow.tap(self.cubits[action.device], self.flow.key(action.key))
        elif isinstance(action, Advance):
            await asyncio.sleep(action.seconds)
        elif isinstance(action, Latency):
            network.latency = (action.low, action.high)
        elif isinstance(action, DropPush):
            network.drop_pushes[action.device] = network.drop_pushes.get(action.device, 0) + 1
        elif isinstance(action, DuplicatePush):
            counts = network.duplicate_pushes
            counts[action.device] = counts.get(action.device, 0) + 1
        elif isinstance(action, Disconnect):
            network.cut(action.device, action.seconds)
        elif isinstance(action, RestartServer):
            server.restart(action.down_for)
        elif isinstance(action, FailNextWrite):
            device_id = action.device + 1
            server.refuse_next[device_id] = server.refuse_next.get(device_id, 0) + 1

    def _validate(self, action: Action) -> None:
        device = getattr(action, "device", None)
        if device is not None and not 0 <= device < self.devices:
            raise ValueError(f"{action!r}: devices are 0..{self.devices - 1}")
        if isinstance(action, Tap) and not 0 <= action.key < self.keys:
            raise ValueError(f"{action!r}: keys are 0..{self.keys - 1}")
        if isinstance(action, Latency) and not 0 <= action.low <= action.high:
            raise ValueError(f"{action!r}: need 0 <= low <= high")
        for name in ("seconds", "down_for"):
            if getattr(action, name, 0) < 0:
                raise ValueError(f"{action!r}: {name} must not be negative")

    async def _settle(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settle_limit
        while not self._quiet():
            if loop.time() > deadline:
                raise _NoQuiescence(
                    f"the system did not settle within {self.settle_limit} virtual seconds "
                    f"after the schedule ended: {self._unsettled()}"
                )
            await asyncio.sleep(_SETTLE_STEP)

    def _quiet(self) -> bool:
        return not self._unsettled()

    def _unsettled(self) -> str:
        server, network = self.server, self._network
        assert server is not None
        assert network is not None
        reasons = []
        if not server.up or server.uncommitted:
            reasons.append("server down or committing")
        if network.in_transit:
            reasons.append(f"{network.in_transit} frames in transit")
        for link, cubit in zip(self.links, self.cubits, strict=True):
            if not link.settled or link.watermark != server.revision:
                reasons.append(
                    f"device {link.device_id} not caught up (watermark {link.watermark}, "
                    f"server {server.revision})"
                )
            if cubit.device.in_flight_keys():
                reasons.append(f"device {link.device_id} has keys in flight")
        return "; ".join(reasons)

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.monitor.problems.append(f"unhandled error in the event loop: {context}")


class _NoQuiescence(Exception):
    pass
