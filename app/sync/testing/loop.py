"""A deterministic asyncio event loop on a virtual clock.

The loop is asyncio's own :class:`~asyncio.BaseEventLoop` with the selector
replaced: instead of waiting for I/O, ``select(timeout)`` moves the clock
straight to the next scheduled callback. Tasks, futures, ``sleep`` and
``call_later`` behave exactly as on a real loop, so the sync core runs
unchanged, but an hour of virtual time passes in microseconds and two runs of
the same program interleave identically.

There is no I/O: a loop with nothing ready and nothing scheduled can never
make progress again, so it raises :class:`VirtualDeadlock` instead of hanging.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["VirtualClockLoop", "VirtualDeadlock", "run_virtual"]

T = TypeVar("T")


class VirtualDeadlock(RuntimeError):
    """The program waits for something that nothing scheduled can ever cause."""


class _VirtualSelector:
    """Stands in for the selector: jumps the clock instead of waiting."""

    def __init__(self, loop: VirtualClockLoop) -> None:
        self._loop = loop

    def select(self, timeout: float | None) -> list[Any]:
        if timeout is None:
            raise VirtualDeadlock(
                f"nothing is ready or scheduled at virtual time {self._loop.time():.6f}s"
            )
        if timeout > 0:
            self._loop._advance_to_next_timer()
        return []

    def close(self) -> None:
        pass


class VirtualClockLoop(asyncio.BaseEventLoop):
    """An event loop whose ``time()`` jumps to the next timer; no real waiting, no I/O."""

    def __init__(self, start: float = 0.0) -> None:
        super().__init__()
        self._now = start
        self._selector = _VirtualSelector(self)
        self._clock_resolution = 1e-9

    def time(self) -> float:
        return self._now

    def _advance_to_next_timer(self) -> None:
        scheduled: list[asyncio.TimerHandle] = self._scheduled  # type: ignore[attr-defined]
        if scheduled:
            self._now = max(self._now, scheduled[0].when())

    def _process_events(self, event_list: list[Any]) -> None:
        pass

    def _write_to_self(self) -> None:
        pass  # nothing ever blocks, so nothing needs waking


def run_virtual(main: Coroutine[Any, Any, T], *, start: float = 0.0) -> T:
    """Run ``main`` to completion on a fresh :class:`VirtualClockLoop`, then close it."""
    loop = VirtualClockLoop(start)
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_all(loop)
        finally:
            loop.close()


def _cancel_all(loop: VirtualClockLoop) -> None:
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
