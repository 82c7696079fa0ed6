"""Shared pieces of the end-to-end benchmarks: an in-process server, headless
devices (link + cubit, no widgets), bounded waits and percentiles.

Everything runs on loopback and on one event loop, so the server, the devices
and the ceilings measured beside them share the same CPU budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from app.link import CatalogueItem, LikesCubit, SyncClient
from app.sync import DeviceContext
from syncserver import SyncServer, serve
from syncserver.protocol import Push, Snapshot

__all__ = [
    "Headless",
    "in_process_server",
    "open_headless",
    "percentile",
    "wait_until",
]


def percentile(samples: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``samples``."""
    ordered = sorted(samples)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


async def wait_until(condition: Callable[[], bool], limit: float, poll: float = 0.002) -> float:
    """Poll ``condition`` until true; returns when it became true. Raises on timeout."""
    deadline = time.perf_counter() + limit
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"condition not met within {limit:g} s")
        await asyncio.sleep(poll)
    return time.perf_counter()


@contextlib.asynccontextmanager
async def in_process_server(latency: float = 0.0) -> AsyncIterator[SyncServer]:
    """A sync server on this loop (default ``synchronous=FULL``) in a temporary
    folder, with ``latency`` seconds of write delay (the demo control)."""
    with tempfile.TemporaryDirectory(prefix="optisync-perf-") as tmp:
        async with serve(db_path=Path(tmp) / "server.sqlite3", allow_chaos=True) as server:
            server.chaos.set_write_delay(latency)
            yield server


class Headless:
    """One device without widgets or disk: a :class:`SyncClient` feeding a
    :class:`LikesCubit`, wired as ``DeviceSession`` wires them."""

    def __init__(self, url: str, catalogue: Sequence[CatalogueItem], device_id: int) -> None:
        self.client = SyncClient(
            [url],
            device_id,
            on_push=self._on_push,
            on_snapshot=self._on_snapshot,
            request_timeout=30.0,
        )
        self.cubit = LikesCubit(catalogue, self.client, device=DeviceContext(device_id))

    def _on_push(self, push: Push) -> None:
        self.cubit.apply_push(push)

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        self.cubit.apply_snapshot(snapshot)
        self.cubit.resume_intents()

    async def close(self) -> None:
        self.cubit.close()
        await self.client.close()


async def open_headless(
    url: str, catalogue: Sequence[CatalogueItem], count: int, limit: float = 60.0
) -> list[Headless]:
    """Start ``count`` headless devices and wait until every one is online."""
    devices = [Headless(url, catalogue, device_id=1000 + n) for n in range(count)]
    for device in devices:
        device.client.start()
    async with asyncio.timeout(limit):
        await asyncio.gather(*(d.client.wait_online() for d in devices))
    return devices
