"""Schedules: a seed plus a list of actions, all plain data.

Every fault is an action, so a schedule says everything that happens in a run
and prints as Python that rebuilds it. The seed only draws per-message
latencies (within the range the latest :class:`Latency` allows); two runs of
the same schedule are identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Action",
    "Advance",
    "Disconnect",
    "DropPush",
    "DuplicatePush",
    "FailNextWrite",
    "Latency",
    "RestartServer",
    "Schedule",
    "Tap",
]


@dataclass(frozen=True, slots=True)
class Tap:
    """The user of ``device`` acts on ``key`` (the flow decides what that means)."""

    device: int
    key: int


@dataclass(frozen=True, slots=True)
class Advance:
    """Let ``seconds`` of virtual time pass: messages travel, timers fire."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Latency:
    """From now on each message takes between ``low`` and ``high`` seconds, drawn
    per message, so acks and pushes overtake each other."""

    low: float
    high: float


@dataclass(frozen=True, slots=True)
class DropPush:
    """The next push to ``device`` is lost; its gap detection must notice."""

    device: int


@dataclass(frozen=True, slots=True)
class DuplicatePush:
    """The next push to ``device`` arrives twice, each copy with its own latency."""

    device: int


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Cut ``device``'s connection and keep it offline for ``seconds``."""

    device: int
    seconds: float = 0.5


@dataclass(frozen=True, slots=True)
class RestartServer:
    """Kill the server: connections and uncommitted writes are lost, committed
    writes survive; it accepts connections again after ``down_for`` seconds."""

    down_for: float = 0.5


@dataclass(frozen=True, slots=True)
class FailNextWrite:
    """The server refuses the next write from ``device`` with an error."""

    device: int


Action = (
    Tap | Advance | Latency | DropPush | DuplicatePush | Disconnect | RestartServer | FailNextWrite
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
