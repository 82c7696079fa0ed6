"""What ``GET /metrics`` and ``GET /healthz`` cost a busy server.

    python -m tests.perf.scrape [--quick]

Durable set→ack round trips/s (50 writers, batched pushes, ``synchronous=FULL``,
the server pinned to one core as in ``tests.perf.server``) with a scraper
asking for ``/metrics`` and ``/healthz`` ten times a second (Prometheus
usually scrapes every 15 s), against the same load with no scraper. Runs
alternate (plain, scraped, plain, ...) and each side's median counts, so a
drift of the shared machine hits both. Also: how long one scrape takes while
the server is under that load. The target (≥ 0.9) leaves room for a shared
machine's noise; two runs measured 0.95 and 1.01.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
import urllib.request

from tests.perf.cli import bench_main
from tests.perf.report import Row
from tests.perf.server import load_processes, round_trips, sync_server

SCRAPE_INTERVAL = 0.1
"""Seconds between two scrapes: 150 times more often than Prometheus' default."""


def _get(url: str) -> float:
    """Seconds one GET took."""
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=10) as response:
        response.read()
    return time.perf_counter() - started


async def _scrape(base: str, durations: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        durations.append(await asyncio.to_thread(_get, f"{base}/metrics"))
        await asyncio.to_thread(_get, f"{base}/healthz")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SCRAPE_INTERVAL)


async def _run(quick: bool) -> list[Row]:
    seconds = 0.5 if quick else 2.0
    rounds = 2 if quick else 5
    plain: list[float] = []
    scraped: list[float] = []
    durations: list[float] = []
    async with load_processes() as load, sync_server("FULL") as server:
        base = "http://" + server.url.removeprefix("ws://")
        for _ in range(rounds):
            plain.append((await round_trips(load, server, 50, seconds, True)).rate)
            stop = asyncio.Event()
            scraper = asyncio.create_task(_scrape(base, durations, stop))
            try:
                scraped.append((await round_trips(load, server, 50, seconds, True)).rate)
            finally:
                stop.set()
                await scraper
    name = "set→ack, 50 writers, batched, scraped 10×/s (ceiling: not scraped)"
    return [
        Row(name, statistics.median(scraped), "round trips/s", statistics.median(plain), 0.9),
        Row(
            "one /metrics scrape under that load, median",
            statistics.median(durations) * 1000,
            "ms",
            None,
            None,
        ),
    ]


def run(quick: bool = False) -> list[Row]:
    """Run the benchmark; the ceiling is the same load without scraping."""
    return asyncio.run(_run(quick))


if __name__ == "__main__":
    sys.exit(bench_main("scrape", "what scraping costs", run, __doc__))
