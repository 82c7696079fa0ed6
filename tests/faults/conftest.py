"""A real syncserver subprocess that the fault tests can SIGKILL and restart."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.timeouts import TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
_URL = re.compile(r"ws://127\.0\.0\.1:(\d+)")


class ServerProcess:
    """``python -m syncserver --port 0 --db DB``; kill() is SIGKILL, start() reuses the DB."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.port = 0
        self.process: asyncio.subprocess.Process | None = None
        self.kills = 0

    async def start(self) -> int:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "syncserver", "--port", "0", "--db", str(self.db),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        assert self.process.stdout is not None
        while True:
            line = await asyncio.wait_for(self.process.stdout.readline(), TIMEOUT)
            if not line:
                raise RuntimeError("syncserver exited before listening")
            found = _URL.search(line.decode())
            if found:
                self.port = int(found.group(1))
                return self.port

    async def terminate(self) -> int:
        """SIGTERM: the server drains, answers and closes; returns its exit code."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), TIMEOUT)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()
            self.kills += 1


@pytest.fixture
async def server_process(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    server = ServerProcess(tmp_path / "server.sqlite3")
    await server.start()
    try:
        yield server
    finally:
        await server.kill()
