"""Coalescing end to end: taps against the requests the server actually receives.

    python -m tests.perf.coalescing [--quick]

One real :class:`DeviceSession` (link, cubit and its on-disk store) against a
real in-process sync server whose write delay (a demo control) stands for the
server latency: 50 ms, 500 ms and 2 s. Each burst of 2, 3, 10, 100 or 1,000
taps on one item lands within the first request's round trip (spread over a
quarter of the latency, in 20 ticks, so the link and server run between taps);
3 taps end on the value in flight, the others do not. Requests are counted at
the server (``requests_received``, which counts sets and gets only; checked
against the cubit's own count). The ceiling
is the fewest requests the rule allows: 1 + (the final value differs from the
value in flight). Quick mode skips the 2 s latency.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from app.link import DeviceSession, like_key, load_catalogue
from syncserver import SyncServer
from tests.perf.cli import bench_main
from tests.perf.devices import in_process_server, wait_until
from tests.perf.report import Row

__all__ = ["run"]

BURSTS = (2, 3, 10, 100, 1000)
"""3 taps end on the value in flight: one request is all it takes."""
TICKS = 20
"""A burst's taps are split over this many event-loop turns."""


async def _burst(server: SyncServer, session: DeviceSession, item: str, taps: int) -> Row:
    latency = server.chaos.settings.write_delay
    key = like_key(item)
    before = server.requests_received
    in_flight_value = not session.state.liked(item)  # the first tap's value is sent at once
    sent_before = session.state.requests
    per_tick = -(-taps // TICKS)
    pause = latency / 4 / TICKS
    started = time.perf_counter()
    done = 0
    for tick in range(1, TICKS + 1):
        for _ in range(min(per_tick, taps - done)):
            session.toggle_like(item)
            done += 1
        await asyncio.sleep(max(0.0, started + tick * pause - time.perf_counter()))
    if session.state.requests != sent_before + 1:
        raise AssertionError(f"{taps} taps did not land within the first request's round trip")
    final = session.state.liked(item)
    await wait_until(
        lambda: not session.cubit.device.in_flight(key) and server.requests_in_flight == 0,
        limit=6 * latency + 10,
    )
    requests = server.requests_received - before
    if requests != session.state.requests - sent_before:
        raise AssertionError(f"the server got {requests} frames for {taps} taps, not only sets")
    stored = server.state().values
    server_value = next(e.value for e in stored if e.key == key)
    if bytes(server_value) != (b"true" if final else b"false"):
        raise AssertionError(f"{item}: the server holds {server_value!r}, the device shows {final}")
    expected = 1 + (final != in_flight_value)
    return Row(
        f"coalescing: {taps} taps, {latency * 1000:.0f} ms latency",
        requests,
        "requests",
        expected,
        1.0,
        lower_is_better=True,
    )


async def _measure(quick: bool) -> list[Row]:
    latencies = (0.05, 0.5) if quick else (0.05, 0.5, 2.0)
    catalogue = load_catalogue()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="optisync-perf-") as tmp:
        async with in_process_server() as server:
            session = await DeviceSession.open(
                "bench", [server.url], data_dir=Path(tmp), catalogue=catalogue, heartbeat=None
            )
            try:
                async with asyncio.timeout(30):
                    await session.client.wait_online()
                items = iter(catalogue)
                for latency in latencies:
                    server.chaos.set_write_delay(latency)
                    for taps in BURSTS:
                        rows.append(await _burst(server, session, next(items).id, taps))
            finally:
                await session.close()
    return rows


def run(quick: bool = False) -> list[Row]:
    """Run every burst at every latency; one row per burst."""
    return asyncio.run(_measure(quick))


if __name__ == "__main__":
    sys.exit(bench_main("coalescing", "coalescing", run, __doc__))
