"""Core micro-benchmark: what a click costs, and what a burst costs the server.

Run: ``python -m tests.perf.core``. Each figure is printed beside its ceiling
measured in the same run: the same state change done by hand (calling
``value_to_apply``, ``apply_optimistic_value_to_state`` and ``emit`` directly).
"""

from __future__ import annotations

import asyncio
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.sync import Cubit, DeviceContext
from tests.perf.cli import bench_main
from tests.perf.report import Row

ITEMS = 100
"""Items in the benchmark state: a small catalogue, as in the demo."""


@dataclass(frozen=True)
class Catalogue:
    liked: dict[str, bool]
    revisions: dict[str, int]


def _initial() -> Catalogue:
    return Catalogue({f"item-{i}": False for i in range(ITEMS)}, {})


def _apply(state: Catalogue, item: str, value: bool) -> Catalogue:
    return Catalogue({**state.liked, item: value}, state.revisions)


class Likes(Cubit[Catalogue]):
    def __init__(self, send: Callable[..., Any]) -> None:
        super().__init__(_initial())
        self._send = send

    def toggle_by_hand(self, item: str) -> None:
        """The same click without sync: build the same callbacks, call them, emit."""
        value_to_apply: Callable[[], bool] = lambda: not self.state.liked[item]  # noqa: E731
        apply_optimistic_value_to_state: Callable[[Catalogue, bool], Catalogue] = (  # noqa: E731
            lambda state, value: _apply(state, item, value)
        )
        self.emit(apply_optimistic_value_to_state(self.state, value_to_apply()))

    def toggle(self, item: str) -> Any:
        return self.optimistic_sync_with_push(
            key=item,
            value_to_apply=lambda: not self.state.liked[item],
            apply_optimistic_value_to_state=lambda state, value: _apply(state, item, value),
            get_value_from_state=lambda state: state.liked[item],
            get_server_revision_from_state=lambda state: state.revisions.get(item, -1),
            send_value_to_server=self._send,
        )


def _best_ns_per_call(
    runs: dict[str, Callable[[int], None]], calls: dict[str, int], rounds: int = 9
) -> dict[str, float]:
    """Best time per call of each run, interleaved so noise hits them alike."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.perf_counter_ns()
            run(calls[name])
            best[name] = min(best[name], (time.perf_counter_ns() - started) / calls[name])
    return best


async def _click_costs(calls: int) -> tuple[float, float, float]:
    """(by hand, coalesced call, first call) in ns per call."""
    hold: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def held_send(value: bool, local_revision: int, device_id: int, inform: Any) -> bool:
        await hold
        inform(1)
        return value

    by_hand_cubit = Likes(held_send)

    def by_hand(n: int) -> None:
        for _ in range(n):
            by_hand_cubit.toggle_by_hand("item-0")

    coalescing = Likes(held_send)
    coalescing.toggle("item-0")  # now in flight: every further call coalesces

    def coalesced(n: int) -> None:
        for _ in range(n):
            coalescing.toggle("item-0")

    keys = [f"item-{i}" for i in range(ITEMS)]
    started_cubits: list[Likes] = []

    def first(n: int) -> None:
        cubit = Likes(held_send)  # a fresh device: every key is free
        started_cubits.append(cubit)
        for key in keys[:n]:
            cubit.toggle(key)

    best = _best_ns_per_call(
        {"hand": by_hand, "joined": coalesced, "started": first},
        {"hand": calls, "joined": calls, "started": ITEMS},
    )
    hand, joined, started = best["hand"], best["joined"], best["started"]
    hold.set_result(None)
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    await asyncio.gather(*pending, return_exceptions=True)
    return hand, joined, started


async def _burst_requests(taps: int) -> int:
    """Requests the server sees for ``taps`` taps made during one in-flight request."""
    requests = 0
    release = asyncio.Event()

    async def send(value: bool, local_revision: int, device_id: int, inform: Any) -> bool:
        nonlocal requests
        requests += 1
        await release.wait()
        inform(requests)
        return value

    cubit = Likes(send)
    done = cubit.toggle("item-0")
    for _ in range(taps - 1):
        cubit.toggle("item-0")
    release.set()
    await done
    return requests


def _bytes_per_tracked_key(keys: int) -> float:
    """Memory the core keeps per key it has seen (its revisions and flags)."""
    device = DeviceContext()
    names = [("like", f"item-{i}") for i in range(keys)]  # the keys themselves are the app's
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for name in names:
        device.restore(name, local_revision=3, server_revision=1_700_000_000_000)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / keys


async def _measure(quick: bool) -> list[Row]:
    calls = 5_000 if quick else 50_000
    hand, joined, started = await _click_costs(calls)
    rows = [
        Row(
            "core: coalesced call", joined / 1000, "µs/call", hand / 1000, 1.5, lower_is_better=True
        ),
        Row(
            "core: first call (starts the task)",
            started / 1000,
            "µs/call",
            hand / 1000,
            10.0,
            lower_is_better=True,
        ),
    ]
    rows.append(
        Row(
            "core: memory per tracked key",
            _bytes_per_tracked_key(10_000 if quick else 100_000),
            "bytes",
            None,
            None,
        )
    )
    for taps in (2, 10, 100, 1000):
        requests = await _burst_requests(taps)
        expected = 1 + (taps % 2 == 0)  # the final value differs from the one in flight
        rows.append(
            Row(
                f"core: burst of {taps} taps",
                requests,
                "requests",
                expected,
                1.0,
                lower_is_better=True,
            )
        )
    return rows


def run(quick: bool = False) -> list[Row]:
    """Measure the core and return its rows."""
    return asyncio.run(_measure(quick))


if __name__ == "__main__":
    sys.exit(bench_main("core", "optisync core", run, __doc__))
