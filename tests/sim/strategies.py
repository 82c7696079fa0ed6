"""Hypothesis strategies that build simulation schedules from fault families."""

from __future__ import annotations

from hypothesis import strategies as st

from app.sync.testing import (
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

MAX_DEVICES = 4
MAX_KEYS = 3

FAULTS = ("latency", "drop", "duplicate", "disconnect", "restart", "fail")


def _seconds(high: float) -> st.SearchStrategy[float]:
    return st.integers(0, int(high * 1000)).map(lambda ms: ms / 1000)


def actions(devices: int, keys: int, faults: tuple[str, ...]) -> st.SearchStrategy[Action]:
    """One action: mostly taps and waits, plus the given fault kinds."""
    device = st.integers(0, devices - 1)
    choices: list[st.SearchStrategy[Action]] = [
        st.builds(Tap, device, st.integers(0, keys - 1)),
        st.builds(Tap, device, st.integers(0, keys - 1)),
        st.builds(Tap, device, st.integers(0, keys - 1)),
        st.builds(Advance, _seconds(0.3)),
    ]
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
        choices.append(st.builds(FailNextWrite, device))
    return st.one_of(choices)


@st.composite
def runs(
    draw: st.DrawFn, faults: tuple[str, ...] = FAULTS, max_actions: int = 40
) -> tuple[int, int, Schedule]:
    """A device count, a key count and a schedule using those fault kinds."""
    devices = draw(st.integers(1, MAX_DEVICES))
    keys = draw(st.integers(1, MAX_KEYS))
    seed = draw(st.integers(0, 2**32 - 1))
    # Bursts of actions at one instant make taps coalesce and faults pile up.
    bursts = draw(
        st.lists(
            st.lists(actions(devices, keys, faults), min_size=1, max_size=5),
            min_size=4,
            max_size=max_actions // 3,
        )
    )
    return devices, keys, Schedule(seed, [action for burst in bursts for action in burst])
