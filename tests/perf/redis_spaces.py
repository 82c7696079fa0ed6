"""The Redis backend's per-process costs: start-up over many registers, and a write
applied by a process none of whose devices is in the write's space.

    python -m tests.perf.redis_spaces [--quick] [--registers N] [--spaces S]

Set-up starts a throwaway ``redis-server`` and writes N registers (default
1,000,000; quick mode: 100,000) spread evenly over S spaces (default 100)
straight into it, in the backend's own format (hashes, heads, counter).

* **start-up**: a fresh process (``--open URL``) opens a ``RedisBackend`` on
  it: seconds from ``open()`` to loaded, its peak RSS, and the growth of its
  RSS per register (every process keeps a copy of every register);
* **apply, in-process**: a ``SyncServer`` on that Redis with no connection
  gets published messages handed to its backend (``_on_message``: decode,
  apply to the copy, the core's fan-out to a space nobody joined), one write
  per message and 1,000 per message: the event loop's time per write;
* **apply, whole process**: a ``python -m syncserver`` process with no
  connection follows while this process writes through its own backend (one
  write per script call, then group commits of 1,000): that process' CPU time
  (``/proc/PID/stat``, its idle ticking over the same time subtracted) per
  write. This is the cost every process pays for every write of every space:
  the figure the scale arithmetic uses.

No targets: figures to read, not pass/fail (a 2-core machine shared with other
work makes them noisy; the load average is printed under the table).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import redis

from tests.perf.cli import bench_parser, progress, verdict
from tests.perf.report import Row, print_table

__all__ = ["main", "run"]

ROOT = Path(__file__).resolve().parents[2]
TICKS = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def fill(url: str, registers: int, spaces: int) -> None:
    """``registers`` registers over ``spaces`` spaces, as the write script stores them."""
    from syncserver.backends.redis import registers_key

    client = redis.Redis.from_url(url)
    heads: dict[str, int] = {}
    pipe = client.pipeline(transaction=False)
    for index in range(registers):
        revision = index + 1
        space = f"space-{index % spaces}"
        key = f"item/{index:07d}"
        value = json.dumps({"n": index, "done": index % 2 == 0}, separators=(",", ":"))
        entry = json.dumps([key, 0, index, 7, 1, index, space, heads.get(space, 0)])
        entry = entry.replace(", 0, ", f", {value}, ", 1).replace(" ", "")
        pipe.hset(registers_key(space), key, f"{revision} {entry}")
        heads[space] = revision
        if index % 10_000 == 9_999:
            pipe.execute()
    for space, head in heads.items():
        pipe.hset("optisync:heads", space, head)
    pipe.set("optisync:revision", registers)
    pipe.execute()
    client.close()


async def _open(url: str) -> None:
    """Child process: open a backend on ``url``, print seconds, peak and added RSS."""
    from syncserver.backends.redis import RedisBackend

    before = _rss_kib("VmRSS")
    backend = RedisBackend(url, lambda writes: None, lambda writes, exc: None)
    started = time.perf_counter()
    await backend.open()
    seconds = time.perf_counter() - started
    print(json.dumps({
        "seconds": seconds, "peak_kib": _rss_kib("VmHWM"),
        "added_kib": _rss_kib("VmRSS") - before, "registers": backend.count,
    }))  # fmt: skip
    await backend.close()


def measure_start(url: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "tests.perf.redis_spaces", "--open", url],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _message(first: int, count: int, space: str) -> bytes:
    """One published message of ``count`` writes, as the write script builds it."""
    entries = ",".join(
        f'[{first + n},["k{n % 1000}",{{"n":{n}}},{n},9,2,{n},"{space}",{first + n - 1}]]'
        for n in range(count)
    )
    return b"[%s]" % entries.encode()


async def measure_in_process(url: str, writes: int, per_message: int) -> float:
    """µs of event-loop time per write of a followed space that no connection
    joined, handed to a server's backend as published messages."""
    from syncserver import serve
    from syncserver.backends.redis import RedisBackend, _decode_published

    async with serve(backend=url) as server:
        backend = server.core.backend
        assert isinstance(backend, RedisBackend)
        ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if not backend.follow("followed", ready.set_result):
            assert await ready
        followed = backend._followed["followed"]
        first = followed.head + 1
        messages = []
        for start in range(first, first + writes, per_message):
            messages.append(_decode_published(_message(start, per_message, "followed")))
        started = time.process_time()
        for message in messages:
            await backend._on_writes(followed, message)
        spent = time.process_time() - started
        assert backend.head("followed") == first + writes - 1
    return spent / writes * 1e6


async def measure_whole_process(url: str, writes: int, batch: int) -> float:
    """µs of a follower process' CPU per write made by another process."""
    from syncserver.backends import Write
    from syncserver.backends.redis import RedisBackend

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    follower = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "syncserver", "--port", "0", "--backend", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=ROOT, env=env,
    )  # fmt: skip
    committed = asyncio.Event()
    seen = 0

    def on_commit(done: Sequence[Write]) -> None:
        nonlocal seen
        seen += len(done)
        committed.set()

    writer = RedisBackend(url, on_commit, lambda failed, exc: None)
    try:
        assert follower.stdout is not None
        await asyncio.wait_for(follower.stdout.readline(), 600)
        await writer.open()
        idle_before, wall_before = _cpu_seconds(follower.pid), time.monotonic()
        await asyncio.sleep(2)
        idle_per_second = (_cpu_seconds(follower.pid) - idle_before) / (
            time.monotonic() - wall_before
        )
        cpu_before, wall_before = _cpu_seconds(follower.pid), time.monotonic()
        for start in range(0, writes, batch):
            target = seen + batch
            for n in range(start, start + batch):
                writer.submit(Write(f"k{n % 1000}", b"%d" % n, 0, n, 9, space="nobody-here"))
            while seen < target:
                committed.clear()
                await committed.wait()
        # The follower applied what this process applied once its CPU stops moving.
        await asyncio.sleep(0.5)
        spent = _cpu_seconds(follower.pid) - cpu_before
        wall = time.monotonic() - wall_before
    finally:
        await writer.close()
        follower.kill()
        await follower.wait()
    return (spent - idle_per_second * wall) / writes * 1e6


def run(quick: bool = False, registers: int | None = None, spaces: int = 100) -> list[Row]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    count = registers if registers is not None else (100_000 if quick else 1_000_000)
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as directory:
        server = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", directory],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            client = redis.Redis(port=port)
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)  # poll interval while it starts
            client.close()
            fill(url, count, spaces)
            start = measure_start(url)
            label = f"{count:,} registers in {spaces} spaces"
            rows.append(Row(f"start-up, {label}", start["seconds"], "s", None, None, True))
            rows.append(Row("peak RSS after start-up", start["peak_kib"] / 1024, "MiB", None, None))
            per_register = start["added_kib"] * 1024 / count
            rows.append(Row("RSS added per register", per_register, "B", None, None, True))
            writes = 2_000 if quick else 20_000
            for per_message in (1, 1000):
                spent = asyncio.run(measure_in_process(url, writes, per_message))
                name = f"apply in-process, {per_message} write(s)/message"
                rows.append(Row(name, spent, "µs/write", None, None, True))
            for batch in (1, 1000):
                total = writes // 10 if batch == 1 else writes
                spent = asyncio.run(measure_whole_process(url, total, batch))
                name = f"follower process CPU, {batch} write(s)/script call"
                rows.append(Row(name, spent, "µs/write", None, None, True))
        finally:
            server.kill()
            server.wait()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_parser("python -m tests.perf.redis_spaces", __doc__)
    parser.add_argument("--registers", type=int, help="registers to load (default 1,000,000)")
    parser.add_argument("--spaces", type=int, default=100, help="spaces they are spread over")
    parser.add_argument("--open", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.open:
        asyncio.run(_open(args.open))
        return 0
    if (args.registers is not None and args.registers < 1) or args.spaces < 1:
        print("--registers and --spaces must be at least 1", file=sys.stderr)
        return 2
    with progress("redis_spaces"):
        rows = run(quick=args.quick, registers=args.registers, spaces=args.spaces)
    print_table("Redis backend: start-up and per-write apply cost per process", rows)
    print(f"load average: {os.getloadavg()[0]:.2f}", flush=True)
    return verdict(rows)


if __name__ == "__main__":
    raise SystemExit(main())
