"""A real syncserver subprocess that the fault tests can SIGKILL and restart."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.syncserver_process import spawn_syncserver
from tests.timeouts import TIMEOUT


class ServerProcess:
    """``python -m syncserver --port 0 --db DB``; kill() is SIGKILL, start() reuses the DB."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.port = 0
        self.process: asyncio.subprocess.Process | None = None
        self.kills = 0

    async def start(self) -> int:
        self.process, self.port = await spawn_syncserver(
            ["--port", "0", "--db", str(self.db)],
            {**os.environ, "PYTHONUNBUFFERED": "1"},
            "syncserver",
        )
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
