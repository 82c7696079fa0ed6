"""Run a module as ``__main__`` and tell its CPU time, exactly, on request.

    python -m tests.perf._probe MODULE [ARGS ...]

The kernel here counts a process's CPU time in ``/proc`` in 10 ms ticks,
too coarse for a few milliseconds per write. This runs MODULE (``syncserver``,
``tests.perf._bare``) unchanged, plus a thread that sleeps in a read of stdin:
for each read, it writes the process's CPU time
(``CLOCK_PROCESS_CPUTIME_ID``, every thread, in ns) as one line to the file
descriptor named by ``OPTISYNC_PERF_CPU_FD``. The thread costs nothing while
nobody asks.
"""

from __future__ import annotations

import os
import runpy
import sys
import threading
import time

__all__ = ["CPU_FD", "USAGE", "main"]

CPU_FD = "OPTISYNC_PERF_CPU_FD"
"""Environment variable naming the descriptor the answers go to."""


def _answer(fd: int) -> None:
    # os.read, not sys.stdin: a daemon thread must hold no buffer lock at exit.
    while os.read(0, 64):
        os.write(fd, b"%d\n" % time.process_time_ns())


USAGE = "usage: python -m tests.perf._probe MODULE [ARGS ...]"


def main() -> None:
    if sys.argv[1:2] in (["-h"], ["--help"]):
        print(USAGE + "\n\n" + (__doc__ or ""))
        return
    if len(sys.argv) < 2 or CPU_FD not in os.environ:
        print(f"{USAGE} (with {CPU_FD}=FD)", file=sys.stderr)
        sys.exit(2)
    fd = int(os.environ.pop(CPU_FD))
    threading.Thread(target=_answer, args=(fd,), name="cpu probe", daemon=True).start()
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
