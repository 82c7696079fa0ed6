"""A real redis-server (session-wide) and real syncserver processes on top of it.

Redis runs with the settings the Redis backend documents for durable acks:
``--appendonly yes --appendfsync always``, its AOF in a temporary directory,
so a restart on the same port and directory keeps every acked write. The
tests skip only when the ``redis-server`` binary is missing; ``.ci/run``
installs it, so CI never skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from tests.server.conftest import Client, Clients, clients
from tests.timeouts import TIMEOUT

__all__ = ["Client", "Clients", "clients"]

ROOT = Path(__file__).resolve().parents[2]
REDIS_SERVER = shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """``redis-server`` on a fixed port with its AOF in ``directory``."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--dir", str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + TIMEOUT
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        try:
            while True:
                with contextlib.suppress(redis.ConnectionError, redis.BusyLoadingError):
                    if client.ping():
                        return
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}")
                time.sleep(0.02)  # poll interval while it loads, not a wait for an outcome
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL, as a crash would; the AOF holds every acked write."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(TIMEOUT)

    def restart(self) -> None:
        self.kill()
        self.start()

    def flush(self) -> None:
        client = redis.Redis(port=self.port)
        try:
            client.flushall()
        finally:
            client.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(REDIS_SERVER, tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.kill()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The shared Redis, emptied for this test."""
    redis_server.flush()
    return redis_server.url()


class Instance:
    """``python -m syncserver --port 0 --backend redis://...`` in a subprocess."""

    def __init__(self, backend: str, *args: str) -> None:
        self.backend = backend
        self.args = args
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self) -> str:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "syncserver", "--port", "0", "--backend", self.backend,
            *self.args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            cwd=ROOT,
            env=env,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), TIMEOUT)).decode()
        assert "ws://" in line, f"syncserver did not start: {line!r}"
        self.url = line[line.index("ws://") :].split()[0]
        return self.url

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await asyncio.wait_for(self.proc.wait(), TIMEOUT)

    async def stop(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), TIMEOUT)


class Instances:
    """Starts syncserver processes on one Redis and kills what is left at the end."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.started: list[Instance] = []

    async def __call__(self, count: int, *args: str) -> list[Instance]:
        new = [Instance(self.backend, *args) for _ in range(count)]
        self.started += new
        await asyncio.gather(*(instance.start() for instance in new))
        return new

    async def close(self) -> None:
        for instance in self.started:
            await instance.kill()


@pytest.fixture
async def instances(redis_url: str) -> AsyncIterator[Instances]:
    started = Instances(redis_url)
    yield started
    await started.close()
