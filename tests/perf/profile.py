"""Where the sync server's CPU per write goes, beside the bare relay's, under load.

    python -m tests.perf.profile [--quick]

Two loads of :mod:`tests.perf.server` whose ratio to the relay misses or
nears its target: push fan-out to 10 clients (8 of them writing, 16 sets in
flight each, a push frame per write) and 50 writers doing set→ack (a push
per write, ``synchronous=FULL``). Each runs on the bare relay and on the
sync server, pinned to one core as in :mod:`tests.perf.server`, and for each:

* the server's CPU per write in each of its threads (``/proc/PID/task``):
  the event loop, and the commit thread (SQLite's transaction and
  ``fdatasync``; the relay's log write and ``fdatasync``);
* a py-spy profile of the event-loop thread while it holds the GIL (so only
  CPU, not waiting; C code it calls, msgspec or uvloop's socket writes,
  counts with the Python line that called it), each sample put in the
  category of the innermost frame that names one (:data:`CATEGORIES`); a
  category's µs per write is its share of samples times the loop thread's
  CPU per write.

py-spy samples by stopping the process, which slows it: the rates printed
are not the benchmark's, but the shares and the CPU per write are. Needs
py-spy (``pip install '.[profile]'`` in a checkout) and permission to trace the
server processes.
"""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.perf._load import Load, LoadResult
from tests.perf.cli import bench_parser
from tests.perf.server import (
    FAN_OUT_WRITERS,
    WINDOW,
    Server,
    load_processes,
    relay_server,
    sync_server,
)

__all__ = ["CATEGORIES", "Profile", "category_of", "main", "run"]

CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "hand-off to the commit thread and back",
        ("concurrent/futures/", "asyncio/futures.py", "run_in_executor", "call_soon_threadsafe"),
    ),
    ("socket writes (transport.write)", ("write_frames (", "_write (tests/perf/_bare.py")),
    ("framing outgoing frames", ("Frame.serialize", "send_text (", "text_frame (", "data_to_send")),
    ("encoding acks and pushes (msgspec)", ("encode",)),
    ("decoding and validating sets (msgspec)", ("syncserver/protocol.py",)),
    ("reading and parsing frames (websockets)", ("websockets/",)),
    ("commit loop, event-loop side", ("syncserver/backends/", "_commit_loop (", "_persist (")),
    ("optisync core, limits, stats", ("syncserver/",)),
    ("relay's own handling", ("tests/perf/_bare.py",)),
    ("event loop and the rest", ("asyncio/", "Runner.run")),
)
"""(category, markers): a frame belongs to the first category one of whose
markers it contains; a sample to the category of its innermost such frame."""
OTHER = "event loop and the rest"
TICK = os.sysconf("SC_CLK_TCK")


def category_of(frames: list[str]) -> str:
    """The category of one sample's stack (outermost frame first)."""
    for frame in reversed(frames):
        for name, markers in CATEGORIES:
            if any(marker in frame for marker in markers):
                return name
    return OTHER


def _thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of ``pid`` (10 ms ticks: enough over seconds)."""
    cpu: dict[int, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except FileNotFoundError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu[int(tid)] = (int(fields[11]) + int(fields[12])) / TICK
    return cpu


@dataclass(frozen=True)
class Profile:
    """One server under one load: CPU per write by thread and by category."""

    writes: int
    loop_us: float
    commit_us: float
    other_threads_us: float
    shares: dict[str, float]
    """Category → share of the loop thread's samples."""

    def category_us(self, name: str) -> float:
        return self.shares.get(name, 0.0) * self.loop_us


def _shares(raw: Path, pid: int) -> dict[str, float]:
    counts: collections.Counter[str] = collections.Counter()
    prefix = f"thread ({pid})"
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if frames and frames[0].startswith(prefix):
            counts[category_of(frames[1:])] += int(count)
    total = sum(counts.values()) or 1
    return {name: count / total for name, count in counts.items()}


async def _profiled(
    server: Server, py_spy: str, operation: Callable[[], Awaitable[LoadResult]], writes_of: int
) -> Profile:
    pid = server.proc.pid
    with tempfile.TemporaryDirectory(prefix="optisync-profile-") as tmp:
        raw = Path(tmp) / "profile.txt"
        spy = await asyncio.create_subprocess_exec(
            *(py_spy, "record", "-p", str(pid), "-f", "raw", "-o", str(raw), "-r", "400"),
            *("--threads", "--gil"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await asyncio.sleep(1.0)  # py-spy attaches
            before = _thread_cpu(pid)
            result = await operation()
            after = _thread_cpu(pid)
        finally:
            spy.send_signal(signal.SIGINT)
            await asyncio.wait_for(spy.wait(), 60)
        shares = _shares(raw, pid)
    spent = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
    writes = max(1, result.ops // writes_of)
    loop = spent.pop(pid, 0.0)
    commit = max(spent.values(), default=0.0)
    rest = sum(spent.values()) - commit
    scale = 1e6 / writes
    return Profile(writes, loop * scale, commit * scale, rest * scale, shares)


async def _fan_out(load: Load, server: Server, total: int) -> Callable[[], Awaitable[LoadResult]]:
    devices = await load.connect(server.url, 10, batched=False)
    writers = devices[:FAN_OUT_WRITERS]
    per_writer = max(10, total // (10 * len(writers)))
    return lambda: load.fan_out(writers, per_writer, per_writer * len(writers), WINDOW)


async def _writers(
    load: Load, server: Server, seconds: float
) -> Callable[[], Awaitable[LoadResult]]:
    devices = await load.connect(server.url, 50, batched=False)
    return lambda: load.round_trips(devices, seconds)


async def _run(quick: bool, py_spy: str) -> list[tuple[str, Profile, Profile]]:
    seconds = 2.0 if quick else 6.0
    total = 200_000 if quick else 600_000
    Prepare = Callable[[Load, Server], Awaitable[Callable[[], Awaitable[LoadResult]]]]

    async def fan_out(load: Load, server: Server) -> Callable[[], Awaitable[LoadResult]]:
        return await _fan_out(load, server, total)

    async def writers(load: Load, server: Server) -> Callable[[], Awaitable[LoadResult]]:
        return await _writers(load, server, seconds)

    loads: tuple[tuple[str, int, Prepare], ...] = (
        ("push fan-out, 10 clients (per write: 10 deliveries)", 10, fan_out),
        ("set→ack, 50 writers, a push per write", 1, writers),
    )
    results = []
    async with load_processes() as load:
        for label, deliveries, prepare in loads:
            profiles = []
            for start in (relay_server, sync_server):
                async with start() as server:
                    operation = await prepare(load, server)
                    try:
                        profiles.append(await _profiled(server, py_spy, operation, deliveries))
                    finally:
                        await load.close_connections()
            results.append((label, profiles[0], profiles[1]))
    return results


def format_profiles(results: Iterable[tuple[str, Profile, Profile]]) -> str:
    """One markdown table per load: µs per write by thread and category."""
    sections = []
    for label, relay, ours in results:
        lines = [
            f"### {label}",
            "",
            "| where (server CPU per write) | optisync µs | relay µs | difference µs |",
            "|---|---:|---:|---:|",
        ]

        total = ours.loop_us + ours.commit_us + ours.other_threads_us
        total_relay = relay.loop_us + relay.commit_us + relay.other_threads_us
        figures = [
            ("**all threads**", total, total_relay),
            ("commit thread (transaction, fdatasync)", ours.commit_us, relay.commit_us),
            ("other threads", ours.other_threads_us, relay.other_threads_us),
            ("event-loop thread", ours.loop_us, relay.loop_us),
        ]
        figures += [
            (f"  {name}", ours.category_us(name), relay.category_us(name)) for name, _ in CATEGORIES
        ]
        lines += [
            f"| {name} | {mine:.1f} | {theirs:.1f} | {mine - theirs:+.1f} |"
            for name, mine, theirs in figures
        ]
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def run(quick: bool = False) -> str:
    """Profile both loads on the relay and the sync server; returns the tables."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise RuntimeError("py-spy is not installed (pip install '.[profile]' in a checkout)")
    return format_profiles(asyncio.run(_run(quick, py_spy)))


def main() -> int:
    args = bench_parser("python -m tests.perf.profile", __doc__).parse_args()
    try:
        print(run(args.quick), flush=True)
    except RuntimeError as exc:
        print(f"profile: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
