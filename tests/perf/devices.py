"""What a push costs a device, and the shared pieces of the end-to-end benchmarks.

    python -m tests.perf.devices [--quick]

The benchmark feeds a device's cubit (:class:`LikesCubit`, wired as
``DeviceSession`` wires it, not connected) ``pushes`` frames from other
devices, decoded with the protocol's decoder and applied with
``apply_pushes`` as the link does: one frame per push, and frames of 20 pushes
(a burst of 20 taps). Each figure is µs per push beside its ceiling, the
decode alone, measured in the same run and interleaved with it. A
convergence burst of 20 taps on 100 devices costs 2,000 of these.

The shared pieces: an in-process server, headless devices (link + cubit, no
widgets), bounded waits and percentiles.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from app.link import CatalogueItem, LikesCubit, SyncClient, load_catalogue
from app.link.engine import CaughtUp
from app.sync import DeviceContext
from syncserver import SyncServer, serve
from syncserver.protocol import (
    Push,
    PushBatch,
    Snapshot,
    decode_server_message,
    encode_bytes,
)
from tests.perf.cli import bench_main
from tests.perf.report import Row

__all__ = [
    "Headless",
    "in_process_server",
    "open_headless",
    "percentile",
    "run",
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
            on_pushes=self._on_pushes,
            on_snapshot=self._on_snapshot,
            on_new_epoch=self._on_new_epoch,
            on_caught_up=self._on_caught_up,
            request_timeout=30.0,
        )
        self.cubit = LikesCubit(catalogue, self.client, device=DeviceContext(device_id))

    def _on_pushes(self, pushes: Sequence[Push]) -> None:
        self.cubit.apply_pushes(pushes)

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        self.cubit.apply_snapshot(snapshot)

    def _on_new_epoch(self, epoch: str) -> None:
        self.cubit.forget_history()

    def _on_caught_up(self, caught_up: CaughtUp) -> None:
        self.cubit.caught_up(caught_up.keys_written)

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


# -- the benchmark: what a push costs a device ------------------------------------


def _frames(catalogue: Sequence[CatalogueItem], per_frame: int, count: int) -> list[str]:
    """``count`` pushes frames of ``per_frame`` pushes each, from other devices,
    with rising revisions, over every item of the catalogue."""
    frames = []
    revision = 0
    for _ in range(count):
        pushes = []
        for _ in range(per_frame):
            revision += 1
            item = catalogue[revision % len(catalogue)]
            pushes.append(Push(f"like/{item.id}", revision % 2 == 0, revision, revision, 7))
        frames.append(encode_bytes(PushBatch(pushes)).decode())  # text, as websockets gives it
    return frames


def _apply_cost(frames: list[str], per_frame: int, rounds: int) -> tuple[float, float]:
    """Best µs per push of (decode alone, decode + apply), interleaved."""
    catalogue = load_catalogue()
    client = SyncClient(["ws://127.0.0.1:9"], 1)  # never started: the cubit only needs it there
    decode_best = apply_best = float("inf")
    pushes = len(frames) * per_frame
    for _ in range(rounds):
        started = time.perf_counter()
        for frame in frames:
            decode_server_message(frame)
        decode_best = min(decode_best, (time.perf_counter() - started) / pushes)
        cubit = LikesCubit(catalogue, client, device=DeviceContext(1))
        started = time.perf_counter()
        for frame in frames:
            message = decode_server_message(frame)
            assert isinstance(message, PushBatch)
            cubit.apply_pushes(message.pushes)
        apply_best = min(apply_best, (time.perf_counter() - started) / pushes)
        cubit.close()
    return decode_best * 1e6, apply_best * 1e6


def run(quick: bool = False) -> list[Row]:
    """µs per push a device spends to decode and apply it, beside the decode alone."""
    catalogue = load_catalogue()
    rounds = 3 if quick else 9
    rows = []
    for per_frame, frame_count in ((1, 2000), (20, 100)):
        frames = _frames(catalogue, per_frame, frame_count)
        decode, apply = _apply_cost(frames, per_frame, rounds)
        rows.append(
            Row(
                f"device: decode + apply a push, {per_frame} per frame; ceiling: decode alone",
                apply,
                "µs/push",
                decode,
                None,
                lower_is_better=True,
            )
        )
    return rows


if __name__ == "__main__":
    import sys

    sys.exit(bench_main("devices", "what a push costs a device", run, __doc__))
