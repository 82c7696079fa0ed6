"""Fixtures for the sync server tests: real servers on port 0, plain websockets clients."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from syncserver import SyncServer, serve
from tests.timeouts import TIMEOUT

ROOT = Path(__file__).resolve().parents[2]


class Client:
    """A plain websockets client that speaks the protocol as dicts.

    ``set`` and ``get`` say hello first (as the set's device, or device 1)
    when this client has not; tests of what happens before a hello send raw
    frames with ``send``.
    """

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.device_id: int | None = None
        """The device of this client's last hello."""
        self.skipped: list[dict[str, Any]] = []
        """Messages recv_type passed over, handed out first by later calls."""

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(message if isinstance(message, str | bytes) else json.dumps(message))

    async def recv(self) -> dict[str, Any]:
        if self.skipped:
            return self.skipped.pop(0)
        return await self._read()

    async def _read(self) -> dict[str, Any]:
        frame = await asyncio.wait_for(self.ws.recv(), TIMEOUT)
        message: dict[str, Any] = json.loads(frame)
        return message

    async def recv_type(self, kind: str) -> dict[str, Any]:
        """The next message of this type (others are kept for later calls)."""
        for index, message in enumerate(self.skipped):
            if message["type"] == kind:
                return self.skipped.pop(index)
        while True:
            message = await self._read()
            if message["type"] == kind:
                return message
            self.skipped.append(message)

    async def hello(self, device_id: int = 1, since: int = 0, **extra: Any) -> dict[str, Any]:
        """Say hello; returns the snapshot (its pages joined into one)."""
        self.device_id = device_id
        await self.send({"type": "hello", "device_id": device_id, "since": since, **extra})
        return await self.read_snapshot()

    async def read_snapshot(self) -> dict[str, Any]:
        """The next snapshot, its pages joined into one."""
        snapshot = await self.recv_type("snapshot")
        while snapshot["more"]:
            page = await self.recv_type("snapshot")
            snapshot["values"].extend(page["values"])
            snapshot["more"] = page["more"]
        return snapshot

    async def ensure_hello(self, device_id: int = 1) -> None:
        """Say hello as ``device_id`` unless this client already did."""
        if self.device_id is None:
            await self.hello(device_id=device_id)

    async def set(
        self,
        key: str,
        value: Any,
        request_id: Any = "r",
        local_revision: int = 1,
        device_id: int | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Send a set and return its ack (pushes received meanwhile are kept)."""
        await self.set_nowait(key, value, request_id, local_revision, device_id, **extra)
        return await self.recv_type("ack")

    async def set_nowait(
        self,
        key: str,
        value: Any,
        request_id: Any = "r",
        local_revision: int = 1,
        device_id: int | None = None,
        **extra: Any,
    ) -> None:
        """Send a set without waiting for anything (but a first hello);
        ``device_id`` defaults to this client's device (or 1); ``extra`` fields
        (``space``) go into the frame."""
        if device_id is None:
            device_id = self.device_id if self.device_id is not None else 1
        await self.ensure_hello(device_id)
        await self.send(
            {
                "type": "set",
                "request_id": request_id,
                "key": key,
                "value": value,
                "local_revision": local_revision,
                "device_id": device_id,
                **extra,
            }
        )

    async def get(self, key: str, request_id: Any = "g", **extra: Any) -> dict[str, Any]:
        await self.ensure_hello()
        await self.send({"type": "get", "request_id": request_id, "key": key, **extra})
        return await self.recv_type("value")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "sync.sqlite3"


@pytest.fixture
async def server(db_path: Path) -> AsyncIterator[SyncServer]:
    async with serve(db_path=db_path) as running:
        yield running


@pytest.fixture
async def chaos_server(db_path: Path) -> AsyncIterator[SyncServer]:
    async with serve(db_path=db_path, allow_chaos=True, observe_interval=0.01) as running:
        yield running


class Clients:
    """Opens clients to a URL and closes them all at the end of the test."""

    def __init__(self) -> None:
        self._open: list[ClientConnection] = []

    async def __call__(self, url: str) -> Client:
        ws = await asyncio.wait_for(connect(url, max_queue=None), TIMEOUT)
        self._open.append(ws)
        return Client(ws)

    async def close(self) -> None:
        await asyncio.gather(*(ws.close() for ws in self._open))


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    opened = Clients()
    yield opened
    await opened.close()


class ServerProcess:
    """``python -m syncserver`` in a subprocess; ``url`` is read from its first line."""

    def __init__(self, db: Path, *args: str) -> None:
        self.db = db
        self.args = args
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self, port: int = 0) -> str:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "syncserver",
            "--port",
            str(port),
            "--db",
            str(self.db),
            *self.args,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env=env,
        )
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), TIMEOUT)).decode()
        assert "ws://" in line, line
        self.url = line[line.index("ws://") :].split()[0]
        return self.url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        return await asyncio.wait_for(self.proc.wait(), TIMEOUT)


@pytest.fixture
async def server_process(db_path: Path) -> AsyncIterator[ServerProcess]:
    process = ServerProcess(db_path)
    yield process
    if process.proc is not None:
        await process.stop(signal.SIGKILL)
