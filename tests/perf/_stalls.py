"""Run ``python -m syncserver`` unchanged, plus a loop-stall monitor that answers on request.

    OPTISYNC_PERF_STALL_FD=FD python -m tests.perf._stalls [SYNCSERVER OPTIONS ...]

The server runs its own command line on the loop it would pick; the only
addition is a task on that loop that sleeps 1 ms and records how late it
wakes (the longest stall) and the loop thread's CPU time over that same
stretch (the part of the stall the server caused, without the time the OS
gave its CPU to other processes). For each read of stdin, a thread writes
``LONGEST_MS CPU_MS`` (since the previous answer) as one line to the file
descriptor named by ``OPTISYNC_PERF_STALL_FD`` and starts over.
"""

from __future__ import annotations

import asyncio
import os
import runpy
import sys
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import syncserver.loop

__all__ = ["STALL_FD", "USAGE", "main"]

STALL_FD = "OPTISYNC_PERF_STALL_FD"
"""Environment variable naming the descriptor the answers go to."""

USAGE = "usage: python -m tests.perf._stalls [SYNCSERVER OPTIONS ...]"

T = TypeVar("T")

_longest = [0.0, 0.0]
"""The longest stall since the last answer and its loop thread's CPU time (s)."""


async def _monitor() -> None:
    loop = asyncio.get_running_loop()
    while True:
        before, cpu_before = loop.time(), time.thread_time()
        await asyncio.sleep(0.001)
        late = loop.time() - before - 0.001
        if late > _longest[0]:
            _longest[0] = late
        _longest[1] = max(_longest[1], time.thread_time() - cpu_before)


def _answer(fd: int) -> None:
    # os.read, not sys.stdin: a daemon thread must hold no buffer lock at exit.
    while os.read(0, 64):
        longest, cpu = _longest
        _longest[0] = _longest[1] = 0.0
        os.write(fd, b"%.3f %.3f\n" % (longest * 1000, cpu * 1000))


def _run_monitored(main: Coroutine[Any, Any, T], *, use_uvloop: bool = True) -> T:
    async def monitored() -> T:
        monitor = asyncio.create_task(_monitor())
        try:
            return await main
        finally:
            monitor.cancel()

    return _run(monitored(), use_uvloop=use_uvloop)


_run = syncserver.loop.run


def main() -> None:
    if sys.argv[1:2] in (["-h"], ["--help"]):
        print(USAGE + "\n\n" + (__doc__ or ""))
        return
    if STALL_FD not in os.environ:
        print(f"{USAGE} (with {STALL_FD}=FD)", file=sys.stderr)
        sys.exit(2)
    fd = int(os.environ.pop(STALL_FD))
    threading.Thread(target=_answer, args=(fd,), name="stall probe", daemon=True).start()
    # syncserver's command line imports run from syncserver.loop when it starts.
    syncserver.loop.run = _run_monitored
    sys.argv = ["syncserver", *sys.argv[1:]]
    runpy.run_module("syncserver", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
