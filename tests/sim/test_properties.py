"""Property tests: every schedule of taps and faults keeps every promise at quiescence."""

from __future__ import annotations

from hypothesis import given

from tests.sim.strategies import Run, runs
from tests.sim.tally import play


@given(runs(faults=("latency", "duplicate", "drop")))
def test_devices_converge_when_frames_are_late_lost_and_repeated(
    run: Run,
) -> None:
    """Per-frame latency, lost and doubled push frames: all devices end on the server's value."""
    play(*run)


@given(runs(faults=("latency", "disconnect", "restart", "shutdown")))
def test_disconnects_restarts_and_shutdowns_lose_no_acknowledged_write(
    run: Run,
) -> None:
    """Cut devices, SIGKILLed and SIGTERMed servers with writes queued: acked writes stay."""
    play(*run)


@given(runs(faults=("latency", "reset", "outage", "fail")))
def test_history_resets_outages_and_refusals_end_on_the_servers_values(
    run: Run,
) -> None:
    """A fresh database, a backend that fails commits, a refused request: devices follow."""
    play(*run)


@given(runs(faults=("latency", "kill", "second_open", "stolen")))
def test_killed_doubled_and_impersonated_devices_stay_honest(
    run: Run,
) -> None:
    """Kills after taps, second processes on one identity, sets with a stolen id."""
    play(*run)


@given(runs(faults=("latency", "big", "nested", "disconnect")))
def test_big_and_deep_data_never_cost_a_connection(run: Run) -> None:
    """Commits and snapshots bigger than a frame are paged; too-deep values are refused."""
    play(*run)


@given(runs())
def test_every_fault_mixed_keeps_every_promise(run: Run) -> None:
    """Every fault kind in one schedule."""
    play(*run)
