"""A deterministic convergence harness for optisync flows.

Run the real core - real :class:`~app.sync.Cubit` s, each on its own
:class:`~app.sync.DeviceContext`, calling the real ``optimistic_sync_with_push``
and ``server_push`` - against a model of the sync server, over a network whose
faults are data, on an event loop with a virtual clock. No sockets, no real
sleeps: a run of a minute of virtual time takes milliseconds, and the same
schedule always interleaves the same way.

>>> from app.sync.testing import Advance, DropPush, Schedule, Simulation, Tap
>>> simulation = Simulation(devices=3, keys=2)
>>> simulation = simulation.run(Schedule(seed=7, actions=[
...     Tap(device=0, key=1), DropPush(device=2), Tap(device=1, key=1), Advance(0.5),
... ]))
>>> simulation.check_invariants()   # raises InvariantViolation with a repro script

Public API
----------
``Simulation(devices=3, keys=2, *, flow=LikeToggle(), snapshot_writer=True,
timings=LinkTimings(), settle_limit=120.0)``
    ``.run(schedule)`` plays the actions then waits (in virtual time) until
    every device is connected, caught up and idle; ``.check_invariants()``
    checks convergence, acknowledged writes, last intents, one request in
    flight per (device, key) and requests <= taps. ``.server`` (the
    :class:`ModelServer`), ``.cubits``, ``.links`` and ``.stats`` are there to
    inspect after a run (``ModelServer.history`` is a list of :class:`Write`);
    ``.script()`` is the repro script and ``.stats`` a :class:`RunStats`.
``Schedule(seed, actions)``
    The seed draws per-message latencies; the actions (``Action`` is their
    union) are, in order:
    :class:`Tap` (a user acts on a key), :class:`Advance` (virtual time
    passes), :class:`Latency` (per-message latency range; acks and pushes
    overtake each other), :class:`DropPush` / :class:`DuplicatePush` (the next
    push to a device), :class:`Disconnect` (cut a device off for a while; it
    reconnects and catches up), :class:`RestartServer` (committed writes
    survive, connections and uncommitted writes are lost), :class:`FailNextWrite`
    (the server refuses a device's next write; ``on_finish`` reloads).
``InvariantViolation``
    An ``AssertionError`` whose message lists the broken promises and ends
    with a short Python script that replays the run.
``Flow``, ``LikeToggle``, ``LikesState``, ``Link``, ``LinkTimings``, ``Written``, ``WriteRefused``
    Plug in your own cubit: a :class:`Flow` maps tap / push / read onto it and
    talks to the server through a :class:`Link`, whose writes and reads answer
    :class:`Written` or raise (:class:`WriteRefused`, ``ConnectionError``).
    :class:`LikeToggle` (the default, state :class:`LikesState`) is the
    worked example. :class:`LinkTimings` sets reconnect, gap-grace and
    heartbeat delays.
``VirtualClockLoop``, ``run_virtual``, ``VirtualDeadlock``
    The deterministic event loop, usable on its own.

Exception tree::

    AssertionError
    └── InvariantViolation   the system under test broke a promise (with a repro)
    RuntimeError
    └── VirtualDeadlock      the program waits for something that can never happen
    ValueError               a schedule names a device or key that does not exist
"""

from .flows import Flow, LikesState, LikeToggle
from .invariants import InvariantViolation
from .link import Link, LinkTimings, WriteRefused, Written
from .loop import VirtualClockLoop, VirtualDeadlock, run_virtual
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
from .server import ModelServer, Write
from .simulation import RunStats, Simulation

__all__ = [
    "Action",
    "Advance",
    "Disconnect",
    "DropPush",
    "DuplicatePush",
    "FailNextWrite",
    "Flow",
    "InvariantViolation",
    "Latency",
    "LikeToggle",
    "LikesState",
    "Link",
    "LinkTimings",
    "ModelServer",
    "RestartServer",
    "RunStats",
    "Schedule",
    "Simulation",
    "Tap",
    "VirtualClockLoop",
    "VirtualDeadlock",
    "Write",
    "WriteRefused",
    "Written",
    "run_virtual",
]
