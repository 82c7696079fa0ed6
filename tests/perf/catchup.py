"""Catch-up at scale: a server over a database of a million registers.

    python -m tests.perf.catchup [--quick] [--registers N] [--no-uvloop]

Set-up writes the registers straight into a fresh SQLite file (one
transaction, the server's own schema; quick mode: 100,000). Then:

* **server start**: from spawning ``python -m tests.perf.catchup --serve DB``
  (a ``SyncServer`` on that file plus a loop-stall monitor, in a process of
  its own, on the loop ``python -m syncserver`` would use: uvloop when it is
  installed, unless ``--no-uvloop``) to its listening line, interpreter
  start-up and imports included;
* **empty resync**: the server's own cost of answering an up-to-date
  ``hello since newest`` (``ServerCore.receive`` on the same file in this
  process, median of 2,000), and the wire round trip beside it (no target);
* **new device caught up**: ``hello since 0`` on a raw websocket until the
  snapshot's last page has arrived, and the **longest loop stall** in the
  server meanwhile (a task that sleeps 1 ms and records how late it wakes),
  with the loop thread's own CPU time over that same stretch beside it: the
  part of the stall the server caused, without the time the OS gave its CPU
  to other processes;
* **server RSS**: the server process' peak resident memory (``VmHWM``),
  start-up and the new device's catch-up included.

Each figure stands beside its target from the issue (the "ceiling" column),
so a ratio at most 1 meets it. On a machine busy with other work a stall
also counts the time the OS kept the server off the CPU: read it together
with the load average printed under the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import connect

from syncserver.loop import loop_name
from syncserver.loop import run as run_loop
from tests.perf.cli import bench_parser, progress, verdict
from tests.perf.registers import create_database, fill_registers
from tests.perf.report import Row, print_table

__all__ = ["bounded_registers", "main", "run"]

TARGET_EMPTY_RESYNC_MS = 0.1
TARGET_START_S = 1.0
TARGET_CAUGHT_UP_S = 10.0
TARGET_STALL_MS = 20.0
TARGET_RSS_MIB = 150.0


# -- the server process -------------------------------------------------------------


async def _serve(db: Path) -> None:
    """A sync server on ``db`` that answers ``stall`` (longest loop stall since the
    last ask, ms) and ``memory`` (VmRSS and VmHWM, KiB) on stdin."""
    from syncserver.server import SyncServer

    server = await SyncServer.start(db_path=db)
    print(f"listening {server.url} revision {server.revision}", flush=True)
    longest = longest_cpu = 0.0

    async def monitor() -> None:
        nonlocal longest, longest_cpu
        loop = asyncio.get_running_loop()
        while True:
            before, cpu_before = loop.time(), time.thread_time()
            await asyncio.sleep(0.001)
            longest = max(longest, loop.time() - before - 0.001)
            longest_cpu = max(longest_cpu, time.thread_time() - cpu_before)

    watcher = asyncio.create_task(monitor())
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        if line == "stall":
            print(f"{longest * 1000:.3f} {longest_cpu * 1000:.3f}", flush=True)
            longest = longest_cpu = 0.0
        elif line == "memory":
            print(_memory(), flush=True)
    watcher.cancel()
    await server.close()


def _memory() -> str:
    """This process' "VmRSS VmHWM" in KiB."""
    status = Path("/proc/self/status").read_text().splitlines()
    fields = dict(row.split(":", 1) for row in status if ":" in row)
    return " ".join(fields[name].split()[0] for name in ("VmRSS", "VmHWM"))


class _ServerProcess:
    def __init__(self, db: Path, use_uvloop: bool) -> None:
        self.started = time.perf_counter()
        loop = [] if use_uvloop else ["--no-uvloop"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.perf.catchup", "--serve", str(db), *loop],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )
        line = self._line()
        self.start_seconds = time.perf_counter() - self.started
        if not line.startswith("listening "):
            raise RuntimeError(f"the server did not start: {line!r}")
        self.url = line.split()[1]

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def ask(self, command: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._line()

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the measurements ---------------------------------------------------------------


async def _catch_up(url: str) -> tuple[float, int, int]:
    """A new device's full catch-up: seconds, pages and entries."""
    async with connect(url, max_size=None, compression=None) as ws:
        started = time.perf_counter()
        await ws.send(json.dumps({"type": "hello", "device_id": 1, "batch_pushes": True}))
        pages = entries = 0
        while True:
            page = json.loads(await ws.recv(decode=False))
            if page["type"] != "snapshot":
                continue
            pages += 1
            entries += len(page["values"])
            if not page["more"]:
                return time.perf_counter() - started, pages, entries


async def _round_trip(url: str, newest: int, epoch: str, count: int) -> float:
    """Median wire round trip of an up-to-date hello (ms)."""
    async with connect(url, compression=None) as ws:
        times = []
        for _ in range(count):
            started = time.perf_counter()
            await ws.send(
                json.dumps({"type": "hello", "device_id": 2, "since": newest, "epoch": epoch})
            )
            await ws.recv()
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def _empty_resync_cost(db: Path, count: int) -> tuple[float, str]:
    """The core's median cost (ms) of an up-to-date hello, and the epoch."""
    from collections.abc import Sequence
    from functools import partial

    from syncserver.backends import CommitCallback, FailureCallback
    from syncserver.backends.sqlite import SQLiteBackend
    from syncserver.config import ServerConfig
    from syncserver.core import ServerCore, Shared

    class Peer:
        frames = 0

        def send(self, frames: Sequence[bytes], shared: Shared | None = None) -> int:
            self.frames += len(frames)
            return 0

        def close(self, code: int, reason: str) -> None:
            pass

        def abort(self) -> None:
            pass

    def backend(path: Path, on_commit: CommitCallback, on_failure: FailureCallback) -> object:
        return SQLiteBackend(path, on_commit, on_failure)

    unlimited = ServerConfig(rate_limit=1e9, rate_burst=10**9)
    core = ServerCore(partial(backend, db), asyncio.get_running_loop(), unlimited)  # type: ignore[arg-type]
    await core.backend.open()
    try:
        peer = Peer()
        conn = core.connect(peer, "bench")
        epoch = core.backend.epoch
        hello = json.dumps(
            {"type": "hello", "device_id": 3, "since": core.revision, "epoch": epoch}
        )
        times = []
        for _ in range(count):
            started = time.perf_counter()
            core.receive(conn, hello)
            times.append(time.perf_counter() - started)
        assert peer.frames == count
        return statistics.median(times) * 1000, epoch
    finally:
        await core.backend.close()


def run(quick: bool = False, registers: int | None = None, use_uvloop: bool = True) -> list[Row]:
    count = registers if registers is not None else (100_000 if quick else 1_000_000)
    with tempfile.TemporaryDirectory(prefix="optisync-catchup-") as folder:
        db = Path(folder) / "registers.sqlite3"
        started = time.perf_counter()
        create_database(db)
        newest = fill_registers(db, count)
        setup = time.perf_counter() - started
        print(f"set-up: {count:,} registers written into {db.name} in {setup:.1f} s", flush=True)
        resync_ms, epoch = asyncio.run(_empty_resync_cost(db, 2000))
        server = _ServerProcess(db, use_uvloop)
        try:
            server.ask("stall")
            caught_up, pages, entries = asyncio.run(_catch_up(server.url))
            stall_ms, stall_cpu_ms = (float(v) for v in server.ask("stall").split())
            round_trip_ms = asyncio.run(_round_trip(server.url, newest, epoch, 200))
            _rss, peak = (int(v) for v in server.ask("memory").split())
        finally:
            server.stop()
    if entries != count:
        raise RuntimeError(f"the snapshot held {entries:,} registers, not {count:,}")
    label = f"{count // 1000:,}k registers, {loop_name(use_uvloop)}"
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    note = (f"load average {load} on {os.cpu_count()} cores during the run",)
    return [
        Row(
            f"empty resync, server cost ({label})",
            resync_ms,
            "ms",
            TARGET_EMPTY_RESYNC_MS,
            1.0,
            lower_is_better=True,
        ),
        Row(f"empty resync, wire round trip ({label})", round_trip_ms, "ms", None, None),
        Row(
            f"server start ({label})",
            server.start_seconds,
            "s",
            TARGET_START_S,
            1.0,
            lower_is_better=True,
        ),
        Row(
            f"new device caught up ({label}, {pages} pages)",
            caught_up,
            "s",
            TARGET_CAUGHT_UP_S,
            1.0,
            lower_is_better=True,
        ),
        Row(
            f"longest server loop stall during that catch-up ({loop_name(use_uvloop)})",
            stall_ms,
            "ms",
            TARGET_STALL_MS,
            1.0,
            lower_is_better=True,
            warnings=note,
        ),
        Row(
            "  its loop thread's CPU time between the same two ticks",
            stall_cpu_ms,
            "ms",
            TARGET_STALL_MS,
            1.0,
            lower_is_better=True,
        ),
        Row(
            f"server peak RSS ({label})",
            peak / 1024,
            "MiB",
            TARGET_RSS_MIB,
            1.0,
            lower_is_better=True,
        ),
    ]


def main() -> int:
    parser = bench_parser("python -m tests.perf.catchup", __doc__)
    parser.add_argument("--registers", type=bounded_registers, help="how many registers to write")
    parser.add_argument(
        "--no-uvloop",
        action="store_true",
        help="serve on asyncio's loop even with uvloop installed",
    )
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        run_loop(_serve(args.serve), use_uvloop=not args.no_uvloop)
        return 0
    with progress("catchup"):
        rows = run(quick=args.quick, registers=args.registers, use_uvloop=not args.no_uvloop)
    print_table("catch-up", rows)
    return verdict(rows)


def bounded_registers(text: str) -> int:
    """A ``--registers`` value: a whole number, at least 1."""
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return count


if __name__ == "__main__":
    sys.exit(main())
