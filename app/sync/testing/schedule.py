"""Schedules: a seed plus a list of actions, all plain data.

Every fault is an action, so a schedule says everything that happens in a run
and prints as Python that rebuilds it. The seed draws per-frame latencies
(within the range the latest :class:`Latency` allows), device ids and backoff
jitter; two runs of the same schedule are identical.

Actions happen at the virtual time the schedule has reached: only
:class:`Advance` lets time pass. A fault that lasts (``seconds``,
``down_for``) runs on in the background while the next actions play.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Action",
    "Advance",
    "BackendOutage",
    "BigData",
    "Disconnect",
    "DropPush",
    "DuplicateOpen",
    "DuplicatePush",
    "FailNextRequest",
    "HistoryReset",
    "Impersonate",
    "KillDevice",
    "Latency",
    "NestedValue",
    "RestartServer",
    "Schedule",
    "Shutdown",
    "StolenWrite",
    "Tap",
    "WriteDelay",
]


@dataclass(frozen=True, slots=True)
class Tap:
    """The user of ``device`` acts on ``key`` (the flow decides what that means)."""

    device: int
    key: int


@dataclass(frozen=True, slots=True)
class Advance:
    """Let ``seconds`` of virtual time pass: frames travel, timers fire."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Latency:
    """From now on each frame takes between ``low`` and ``high`` seconds, drawn per
    frame. Frames on one connection stay in order (as TCP keeps them); frames on
    different connections overtake each other (one device's ack and another's push)."""

    low: float
    high: float


@dataclass(frozen=True, slots=True)
class DropPush:
    """The next frame of pushes to ``device`` is lost; its gap detection must notice."""

    device: int


@dataclass(frozen=True, slots=True)
class DuplicatePush:
    """The next frame of pushes to ``device`` arrives twice."""

    device: int


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Cut ``device``'s connection and keep it unreachable for ``seconds``."""

    device: int
    seconds: float = 0.5


@dataclass(frozen=True, slots=True)
class RestartServer:
    """Kill the server process: connections and writes not yet committed are lost,
    committed writes survive; it listens again after ``down_for`` seconds."""

    down_for: float = 0.5


@dataclass(frozen=True, slots=True)
class FailNextRequest:
    """The server refuses its next request (``set`` or ``get``, from any device) with
    ``injected_failure``: the flow's ``on_finish`` reloads."""


@dataclass(frozen=True, slots=True)
class HistoryReset:
    """The server restarts on a fresh database at the same URL after ``down_for``
    seconds: a new epoch, no registers, revisions from 1 again."""

    down_for: float = 0.5


@dataclass(frozen=True, slots=True)
class Shutdown:
    """SIGTERM: the server stops taking frames, commits what is queued, acks and
    pushes it, answers every other pending set (held ones included) with
    ``unavailable``, closes with 1001, and is back after ``down_for`` seconds."""

    down_for: float = 0.5


@dataclass(frozen=True, slots=True)
class WriteDelay:
    """The server holds every ``set`` it receives for ``seconds`` before writing it
    (its ``write_delay`` demo control; a restart sets it back to 0), so writes
    are queued when a :class:`Shutdown` or a :class:`RestartServer` comes."""

    seconds: float


@dataclass(frozen=True, slots=True)
class BackendOutage:
    """The server's backend fails every commit for ``seconds``: sets are answered
    ``unavailable``, which devices must retry rather than give up."""

    seconds: float = 1.0


@dataclass(frozen=True, slots=True)
class DuplicateOpen:
    """A second process opens ``device``'s identity while it runs. Refusing
    (``DeviceInUseError``) is the honest answer; if the flow opens it anyway, the
    second process joins the run with the same device id and taps ``key`` once."""

    device: int
    key: int = 0


@dataclass(frozen=True, slots=True)
class KillDevice:
    """``device``'s process is killed ``after`` seconds from now (SIGKILL: its store
    keeps only what it had flushed) and reopens from its store ``down_for`` later.
    Scheduled right after a :class:`Tap`, it is the kill-after-the-first-taps case."""

    device: int
    after: float = 0.0
    down_for: float = 0.2


@dataclass(frozen=True, slots=True)
class StolenWrite:
    """Another connection, after its own hello, sends a ``set`` of ``key`` naming
    ``device``'s id with ``local_revision`` 0; the server must refuse it
    (``device_mismatch``) and write nothing."""

    device: int
    key: int = 0


@dataclass(frozen=True, slots=True)
class Impersonate:
    """Another connection says hello as ``device`` (its id, a wrong secret), then sets
    ``key``; a server with the device's secret on record must close it with 1008 and
    write nothing. A database with no record for the id (a fresh one the device has
    not reached yet) gives the id to whoever claims it first: the impostor only tries
    then if ``claim_unknown``."""

    device: int
    key: int = 0
    claim_unknown: bool = False


@dataclass(frozen=True, slots=True)
class BigData:
    """Another connection writes ``keys`` keys of ``size``-character strings in one
    burst (outside the flow's keys): commits and snapshots bigger than one frame."""

    keys: int = 24
    size: int = 60_000


@dataclass(frozen=True, slots=True)
class NestedValue:
    """Another connection writes a value nested ``depth`` levels deep (outside the
    flow's keys); past the protocol's MAX_VALUE_DEPTH it must be refused."""

    depth: int = 980


Action = (
    Tap
    | Advance
    | Latency
    | DropPush
    | DuplicatePush
    | Disconnect
    | RestartServer
    | FailNextRequest
    | HistoryReset
    | Shutdown
    | WriteDelay
    | BackendOutage
    | DuplicateOpen
    | KillDevice
    | StolenWrite
    | Impersonate
    | BigData
    | NestedValue
)


@dataclass(frozen=True, slots=True)
class Schedule:
    """A seed and the actions of one run, in order."""

    seed: int
    actions: tuple[Action, ...]

    def __init__(self, seed: int, actions: Sequence[Action]) -> None:
        object.__setattr__(self, "seed", seed)
        object.__setattr__(self, "actions", tuple(actions))

    def __repr__(self) -> str:
        if not self.actions:
            return f"Schedule(seed={self.seed}, actions=[])"
        body = "".join(f"        {action!r},\n" for action in self.actions)
        return f"Schedule(\n    seed={self.seed},\n    actions=[\n{body}    ],\n)"
