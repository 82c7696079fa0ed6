"""Hypothesis strategies that build simulation schedules from fault families."""

from __future__ import annotations

import functools

from hypothesis import strategies as st

from app.sync.testing import (
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

MAX_DEVICES = 4
MAX_KEYS = 3
MAX_SPACES = 2

FAULTS = (
    "latency",
    "drop",
    "duplicate",
    "disconnect",
    "restart",
    "fail",
    "reset",
    "shutdown",
    "outage",
    "second_open",
    "kill",
    "stolen",
    "big",
    "nested",
)
"""Every fault family; ``runs()`` mixes all of them unless told otherwise."""

Run = tuple[int, int, Schedule, int]
"""Devices, keys, schedule, spaces: the arguments of ``tally.play``."""


def _seconds(high: float) -> st.SearchStrategy[float]:
    return st.integers(0, int(high * 1000)).map(lambda ms: ms / 1000)


@functools.cache
def actions(devices: int, keys: int, faults: tuple[str, ...]) -> st.SearchStrategy[Action]:
    """One action: mostly taps and waits, plus the given fault kinds (built once per
    shape: building and validating strategies cost as much as running the schedule)."""
    device = st.integers(0, devices - 1)
    key = st.integers(0, keys - 1)
    tap = st.builds(Tap, device, key)
    choices: list[st.SearchStrategy[Action]] = [tap, tap, tap, st.builds(Advance, _seconds(0.3))]
    if "latency" in faults:
        choices.append(
            st.tuples(_seconds(0.2), _seconds(0.3)).map(lambda pair: Latency(min(pair), max(pair)))
        )
    if "drop" in faults:
        choices.append(st.builds(DropPush, device))
    if "duplicate" in faults:
        choices.append(st.builds(DuplicatePush, device))
    if "disconnect" in faults:
        choices.append(st.builds(Disconnect, device, _seconds(1.0)))
    if "restart" in faults:
        choices.append(st.builds(RestartServer, _seconds(1.0)))
    if "fail" in faults:
        choices.append(st.just(FailNextRequest()))
    if "reset" in faults:
        choices.append(st.builds(HistoryReset, _seconds(1.0)))
    if "shutdown" in faults:
        choices.append(st.builds(WriteDelay, _seconds(0.5)))
        choices.append(st.builds(Shutdown, _seconds(1.0)))
    if "outage" in faults:
        choices.append(st.builds(BackendOutage, _seconds(2.0)))
    if "second_open" in faults:
        choices.append(st.builds(DuplicateOpen, device, key))
    if "kill" in faults:
        choices.append(st.builds(KillDevice, device, _seconds(0.02), _seconds(0.5)))
    if "stolen" in faults:
        choices.append(st.builds(StolenWrite, device, key))
    if "stolen" in faults:
        choices.append(st.builds(Impersonate, device, key))
    if "big" in faults:
        choices.append(st.builds(BigData, st.integers(1, 24), st.sampled_from([100, 60_000])))
    if "nested" in faults:
        choices.append(st.builds(NestedValue, st.sampled_from([1, 32, 33, 980, 5000])))
    return st.one_of(choices)


@st.composite
def runs(draw: st.DrawFn, faults: tuple[str, ...] = FAULTS, max_actions: int = 40) -> Run:
    """A device count, a key count, a schedule using those fault kinds and how many
    spaces the devices are split over (the same runs, some split: no extra time)."""
    devices = draw(st.integers(1, MAX_DEVICES))
    keys = draw(st.integers(1, MAX_KEYS))
    seed = draw(st.integers(0, 2**32 - 1))
    # Bursts of actions at one instant make taps coalesce and faults pile up.
    bursts = draw(_bursts(devices, keys, faults, max_actions))
    spaces = draw(st.integers(1, min(devices, MAX_SPACES)))
    schedule = Schedule(seed, [action for burst in bursts for action in burst])
    return devices, keys, schedule, spaces


@functools.cache
def _bursts(
    devices: int, keys: int, faults: tuple[str, ...], max_actions: int
) -> st.SearchStrategy[list[list[Action]]]:
    return st.lists(
        st.lists(actions(devices, keys, faults), min_size=1, max_size=5),
        min_size=4,
        max_size=max_actions // 3,
    )
