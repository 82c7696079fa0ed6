"""A deterministic convergence harness for optisync flows, on the shipped code.

Run your flow (by default the demo's likes: the real
:class:`~app.link.DeviceSession` and :class:`~app.link.LikesCubit`) on several
devices, each talking through the real :class:`~app.link.SyncClient` (and so
the real link engine) to the real :class:`~syncserver.core.ServerCore` on a
``MemoryBackend``, over an in-memory network whose faults are data, on an
event loop with a virtual clock. No sockets, no real sleeps: a run of a
minute of virtual time takes milliseconds, and the same schedule always
interleaves the same way.

>>> from app.sync.testing import Advance, DropPush, Schedule, Simulation, Tap
>>> simulation = Simulation(devices=3, keys=2)
>>> simulation = simulation.run(Schedule(seed=7, actions=[
...     Tap(device=0, key=1), DropPush(device=2), Tap(device=1, key=1), Advance(0.5),
... ]))
>>> simulation.check_invariants()   # raises InvariantViolation with a repro script

Public API
----------
``Simulation(devices=3, keys=2, *, flow=Likes(), timings=LinkTimings(), spaces=1, ...)``
    ``.run(schedule)`` plays the actions then waits (in virtual time) until
    every device is connected, caught up and idle and checks every promise
    at quiescence; ``.check_invariants()`` raises if any was broken:
    convergence (value and revision, within each device's space), nothing
    shown as synced that differs, no acknowledged write lost, last intents
    kept, one request in flight per (device, key), requests <= taps, and
    isolation (no device is sent, applies or holds a write of another
    space). ``spaces=2`` deals the devices out over two spaces
    (``.space_of(device)``: the default space, then ``"space-1"``), all
    tapping the same key names. ``.server`` (a :class:`SimServer`
    whose ``history`` lists every committed :class:`Write` per epoch),
    ``.devices`` (each device's session), ``.monitor``, ``.network`` and
    ``.stats`` (a :class:`RunStats`) are there to inspect after a run;
    ``.script()`` is the repro script.
``Schedule(seed, actions)``
    The seed draws per-frame latencies, device ids and backoff jitter; the
    actions (``Action`` is their union) are, in order:
    :class:`Tap` (a user acts on a key), :class:`Advance` (virtual time
    passes), :class:`Latency` (per-frame latency range), :class:`DropPush` /
    :class:`DuplicatePush` (the next frame of pushes to a device),
    :class:`Disconnect` (cut a device off for a while), :class:`RestartServer`
    (SIGKILL: committed writes survive), :class:`FailNextRequest` (the server
    refuses its next request), :class:`HistoryReset` (restart on a fresh
    database), :class:`Shutdown` (SIGTERM with writes queued),
    :class:`WriteDelay` (the server holds sets, so they are queued when it
    stops), :class:`BackendOutage` (commits fail: ``unavailable``),
    :class:`DuplicateOpen` (a second process opens a device's identity),
    :class:`KillDevice` (SIGKILL a device; it reopens from what its store had
    flushed), :class:`StolenWrite` (another connection sets a key with a
    device's id), :class:`Impersonate` (another connection says hello as a
    device, with a wrong secret), :class:`BigData` (writes whose commits and snapshots need
    several frames) and :class:`NestedValue` (a value nested past the limit).
``InvariantViolation``
    An ``AssertionError`` whose message lists the broken promises and ends
    with a short Python script that replays the run.
``Flow``, ``FlowDevice``, ``DeviceIO``, ``Likes``, ``LinkTimings``
    Plug in your own cubit: a :class:`Flow` opens a device from a
    :class:`DeviceIO` (give its ``connect``, ``rng`` and ``clock`` to your
    ``SyncClient`` and keep your state in its ``store``) and maps tap / read
    / synced onto it. :class:`Likes` (the default) is the worked example.
    :class:`LinkTimings` sets the reconnect, heartbeat, request timeout and
    store flush delays.
``SimServer``, ``Write``, ``RunStats``
    The server shell (restarts, resets, shutdowns, outages), one committed
    write of its history, and what a run did.
``VirtualClockLoop``, ``run_virtual``, ``VirtualDeadlock``
    The deterministic event loop, usable on its own.

Changes from the harness that carried its own copies of the link and server:
``ModelServer``, ``LikeToggle``, ``LikesState``, ``Link``, ``Written`` and
``WriteRefused`` are gone (the shipped code runs instead); ``flow=`` takes a
:class:`Flow` that opens a device from a :class:`DeviceIO`;
``FailNextWrite(device)`` became :class:`FailNextRequest` (the real server's
``fail_next`` refuses the next request from any device); ``snapshot_writer``
is gone (the shipped server always names the writer); ``.cubits`` and
``.links`` became ``.devices``; frames on one connection now stay in order.

Exception tree::

    AssertionError
    └── InvariantViolation   the system under test broke a promise (with a repro)
    RuntimeError
    └── VirtualDeadlock      the program waits for something that can never happen
    ValueError               a schedule names a device or key that does not exist
"""

from .flows import DeviceIO, Flow, FlowDevice, Likes
from .invariants import InvariantViolation
from .loop import VirtualClockLoop, VirtualDeadlock, run_virtual
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
from .server import SimServer, Write
from .simulation import LinkTimings, RunStats, Simulation

__all__ = [
    "Action",
    "Advance",
    "BackendOutage",
    "BigData",
    "DeviceIO",
    "Disconnect",
    "DropPush",
    "DuplicateOpen",
    "DuplicatePush",
    "FailNextRequest",
    "Flow",
    "FlowDevice",
    "HistoryReset",
    "Impersonate",
    "InvariantViolation",
    "KillDevice",
    "Latency",
    "Likes",
    "LinkTimings",
    "NestedValue",
    "RestartServer",
    "RunStats",
    "Schedule",
    "Shutdown",
    "SimServer",
    "Simulation",
    "StolenWrite",
    "Tap",
    "VirtualClockLoop",
    "VirtualDeadlock",
    "Write",
    "WriteDelay",
    "run_virtual",
]
