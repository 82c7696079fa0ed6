"""Fixtures for the conformance tests: this project's server as a subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.timeouts import TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
"""Subprocesses run this checkout's code."""


class RunningServer:
    """``python -m syncserver --port 0 ...`` in a subprocess, stopped with SIGTERM."""

    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process = process
        self.url = url

    @classmethod
    async def start(cls, *args: str) -> RunningServer:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "syncserver", "--port", "0", *args,
            stdout=asyncio.subprocess.PIPE, cwd=ROOT, env=ENV,
        )  # fmt: skip
        assert process.stdout is not None
        try:
            line = (await asyncio.wait_for(process.stdout.readline(), TIMEOUT)).decode()
            assert "ws://" in line, line
        except BaseException:
            process.kill()  # never leave a server behind a failed start
            await process.wait()
            raise
        return cls(process, line[line.index("ws://") :].split()[0])

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), TIMEOUT)


@pytest.fixture
async def chaos_server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """``python -m syncserver --port 0 --db TMP --allow-chaos``."""
    server = await RunningServer.start("--db", str(tmp_path / "sync.sqlite3"), "--allow-chaos")
    try:
        yield server
    finally:
        await server.stop()
