"""Devices split over two spaces: each space converges on its own registers, apart."""

from __future__ import annotations

import pytest

from app.sync.testing import (
    Action,
    Advance,
    DropPush,
    InvariantViolation,
    KillDevice,
    Latency,
    RestartServer,
    Schedule,
    Simulation,
    Tap,
)
from syncserver.protocol import DEFAULT_SPACE
from tests.sim.flows import PlainToggle, SpaceBlindLikes
from tests.sim.tally import play

OTHER = "space-1"
ITEM_0 = "like/item-0"

# Devices 0 and 2 are in the default space, 1 and 3 in the other; all tap the same keys.
INTERLEAVED: list[Action] = [
    Tap(0, 0),
    Advance(0.1),
    Tap(1, 0),
    Advance(0.1),
    Tap(2, 1),
    Advance(0.1),
    Tap(3, 0),
    Advance(0.1),
    Tap(1, 1),
    Advance(0.1),
    Tap(0, 0),
]


def test_devices_are_dealt_over_the_spaces_the_default_space_first() -> None:
    """space_of deals devices out in turn; with one space every device is in the default."""
    assert [Simulation(4, 1, spaces=2).space_of(i) for i in range(4)] == [
        DEFAULT_SPACE,
        OTHER,
        DEFAULT_SPACE,
        OTHER,
    ]
    assert Simulation(3, 1).space_of(2) == DEFAULT_SPACE
    with pytest.raises(ValueError, match="at least one space"):
        Simulation(2, 1, spaces=0)


def test_two_spaces_with_the_same_keys_converge_apart() -> None:
    """Each space ends on its own registers for the same key names, every device on
    its space's values."""
    simulation = play(4, 2, Schedule(2, INTERLEAVED), spaces=2)
    server = simulation.server
    assert server is not None
    assert server.register(ITEM_0) == (False, 6)  # tapped twice by device 0
    assert server.register(ITEM_0, OTHER) == (False, 4)  # devices 1 then 3
    assert server.register("like/item-1", OTHER) == (True, 5)
    for device in (1, 3):
        session = simulation.devices[device]
        assert session is not None
        assert simulation.flow.read(session, ITEM_0) == (False, 4)


def test_writes_in_another_space_never_look_like_gaps() -> None:
    """Interleaved writes make each space's revisions skip; no device resyncs for it."""
    simulation = play(4, 2, Schedule(2, INTERLEAVED), spaces=2)
    assert simulation.stats is not None
    assert simulation.stats.gap_resyncs == 0
    assert simulation.server is not None
    assert simulation.server.head(OTHER) == 5
    assert simulation.server.head() == 6


def test_a_push_lost_in_one_space_is_found_by_the_next_write_of_that_space() -> None:
    """Device 3 loses the push of device 1's write; device 1's next write says prev and
    device 3 resyncs, while the default space's writes in between were no help."""
    actions: list[Action] = [DropPush(3), Tap(1, 0), Advance(0.1), Tap(0, 0), Tap(0, 1)]
    actions += [Advance(0.1), Tap(1, 1)]
    simulation = play(4, 2, Schedule(4, actions), spaces=2)
    assert simulation.stats is not None
    assert simulation.stats.pushes_dropped == 1
    assert simulation.stats.gap_resyncs >= 1


def test_two_spaces_stay_apart_through_lost_pushes_and_a_restart() -> None:
    """Latency, a dropped push and a server restart, with a user's own flow: each space
    converges and no device ever receives the other's writes."""
    actions: list[Action] = [Latency(0.0, 0.1), *INTERLEAVED, DropPush(2), RestartServer(0.3)]
    actions += [Tap(2, 0), Tap(3, 1), Advance(0.5), Tap(1, 0)]
    play(4, 2, Schedule(9, actions), spaces=2)
    play(4, 2, Schedule(9, actions), spaces=2, flow=PlainToggle())


def test_a_device_that_ignores_its_space_is_caught() -> None:
    """A flow that opens every device in the default space receives the other space's
    writes: the isolation check and the convergence check both report it."""
    simulation = Simulation(4, 2, flow=SpaceBlindLikes(), spaces=2).run(Schedule(2, INTERLEAVED))
    with pytest.raises(InvariantViolation) as caught:
        simulation.check_invariants()
    problems = "\n".join(caught.value.problems)
    assert "device 1 in space 'space-1' was sent a push of 'default'" in problems
    assert "device 1 in space 'space-1' received write" in problems
    assert "in space 'space-1'" in problems
    assert "spaces=2" in caught.value.script


def test_a_device_killed_in_a_space_reopens_in_it_from_its_store() -> None:
    """Killed after its store flushed, a device of the second space reopens with its id,
    its space's newest_seen and its value, and catches up on what it missed there."""
    actions: list[Action] = [Tap(1, 0), Advance(0.2), KillDevice(1, 0.0, 0.5), Tap(3, 0)]
    actions += [Tap(0, 0), Advance(0.1), Tap(3, 0), Advance(1.0)]
    simulation = play(4, 1, Schedule(6, actions), spaces=2)
    session = simulation.devices[1]
    assert session is not None
    assert simulation.server is not None
    assert session.client.space == OTHER
    expected = simulation.flow.expected(*simulation.server.register(ITEM_0, OTHER))
    assert simulation.flow.read(session, ITEM_0) == expected
    assert simulation.stats is not None
    assert simulation.stats.faults == {"KillDevice": 1}
    assert session.client.newest_seen.value >= simulation.server.head(OTHER)
