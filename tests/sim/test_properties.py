"""Property tests: every schedule of taps and faults keeps every promise at quiescence."""

from __future__ import annotations

from hypothesis import given

from app.sync.testing import Schedule
from tests.sim.strategies import runs
from tests.sim.tally import play


@given(runs(faults=("latency", "duplicate")))
def test_devices_converge_when_acks_and_pushes_overtake_and_repeat(
    run: tuple[int, int, Schedule],
) -> None:
    """Random per-frame latency and duplicated pushes: all devices end on the server's value."""
    play(*run)


@given(runs(faults=("latency", "drop")))
def test_dropped_pushes_are_recovered_by_gap_detection(run: tuple[int, int, Schedule]) -> None:
    """A lost push opens a gap in the global revisions; the catch-up closes it."""
    play(*run)


@given(runs(faults=("latency", "disconnect", "restart")))
def test_disconnects_and_restarts_lose_no_acknowledged_write(
    run: tuple[int, int, Schedule],
) -> None:
    """Cut connections and a crashing server: acked writes survive, devices catch up."""
    play(*run)


@given(runs(faults=("latency", "fail")))
def test_refused_writes_reload_and_converge(run: tuple[int, int, Schedule]) -> None:
    """A refused write runs on_finish, which reloads the key; nothing diverges."""
    play(*run)


@given(runs())
def test_any_mix_of_faults_keeps_every_promise(run: tuple[int, int, Schedule]) -> None:
    """Every fault kind at once: convergence, acked writes, intents, one request in flight."""
    play(*run)
