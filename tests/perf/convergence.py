"""Convergence: how soon every device agrees with the server after a burst of taps.

    python -m tests.perf.convergence [--quick]

2, 10 and 100 headless devices (link + cubit, no widgets, no disk) share one
in-process sync server with a fixed 50 ms latency (the write-delay demo
control). A burst of 20 taps on random devices and random items (each device
taps an item at most once, so no tap waits behind its own device's request)
is fired in one go; the figure is the time from the burst until every device
shows the server's value for every item (the last time any device's values
changed, once all of them match the server and nothing is in flight), the
median over several bursts.

The ideal is the server latency plus one push delivery to that many clients,
measured in the same run on a bare websockets broadcast server on the same
loop (``tests.perf.bare``). Target: within 1.5x the ideal.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from collections.abc import Sequence

from app.link import CatalogueItem, Item, LikesState, load_catalogue
from syncserver import SyncServer
from tests.perf.bare import push_delivery
from tests.perf.devices import Headless, in_process_server, open_headless, wait_until
from tests.perf.report import Row, print_table

__all__ = ["run"]

LATENCY = 0.05
"""Server latency (write delay) in seconds: fixed, so the ideal means something."""
TAPS = 20
"""Taps per burst."""
SETTLE = 0.1
"""After convergence, how long nothing may change any more (checked, not assumed)."""


def _server_values(server: SyncServer) -> dict[str, bool]:
    return {entry.key: bytes(entry.value) == b"true" for entry in server.state().values}


def _agrees(
    devices: Sequence[Headless], items: Sequence[CatalogueItem], server: SyncServer
) -> bool:
    if server.requests_in_flight:
        return False
    values = _server_values(server)
    for device in devices:
        if device.cubit.device.in_flight_keys():
            return False
        state = device.cubit.state
        for item in items:
            if state.liked(item.id) != values.get(f"like/{item.id}", False):
                return False
    return True


async def _burst(
    server: SyncServer,
    devices: Sequence[Headless],
    items: Sequence[CatalogueItem],
    rng: random.Random,
) -> float:
    """Seconds from a burst of taps until every device shows the server's values."""
    last_change = 0.0
    unsubscribes = []
    for device in devices:
        shown = [device.cubit.state.items]

        def on_state(state: LikesState, shown: list[tuple[Item, ...]] = shown) -> None:
            nonlocal last_change
            if state.items is not shown[0]:
                shown[0] = state.items
                last_change = time.perf_counter()

        unsubscribes.append(device.cubit.subscribe(on_state))
    pairs = rng.sample(range(len(devices) * len(items)), TAPS)
    started = time.perf_counter()
    for pair in pairs:
        tapper, item = divmod(pair, len(items))
        devices[tapper].cubit.toggle_like(items[item].id)
    try:
        # The figure is the last change a subscriber saw, not when this poll noticed,
        # so a slow poll costs no precision and steals no time from the devices.
        await wait_until(lambda: _agrees(devices, items, server), limit=30, poll=0.05)
        settled_at = last_change
        await asyncio.sleep(SETTLE)
        if last_change != settled_at or not _agrees(devices, items, server):
            raise AssertionError("a device changed after it agreed with the server")
    finally:
        for unsubscribe in unsubscribes:
            unsubscribe()
    return settled_at - started


async def _measure(quick: bool) -> list[Row]:
    rounds = 3 if quick else 7
    items = load_catalogue()
    rng = random.Random(7)
    rows: list[Row] = []
    for count in (2, 10, 100):
        ideal = LATENCY + await push_delivery(count, rounds=max(rounds, 5))
        async with in_process_server(LATENCY) as server:
            devices = await open_headless(server.url, items, count)
            try:
                samples = [await _burst(server, devices, items, rng) for _ in range(rounds)]
            finally:
                await asyncio.gather(*(d.close() for d in devices))
        rows.append(
            Row(
                f"convergence: {count} devices, {TAPS} taps, {LATENCY * 1000:.0f} ms latency",
                statistics.median(samples) * 1000,
                "ms",
                ideal * 1000,
                1.5,
                lower_is_better=True,
            )
        )
    return rows


def run(quick: bool = False) -> list[Row]:
    """One row per device count: median convergence against the ideal."""
    return asyncio.run(_measure(quick))


if __name__ == "__main__":
    print_table("convergence", run(quick="--quick" in sys.argv))
