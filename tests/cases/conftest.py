"""Real processes for the end-to-end cases: syncserver and device processes, raw clients.

Everything talks the public way: ``python -m syncserver`` on port 0, devices
through ``app.link`` (in this process or in one of their own, see
``device.py``), and raw websocket JSON for what no honest client would send.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.syncserver_process import ROOT, spawn_syncserver
from tests.timeouts import TIMEOUT

_ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}

OBSERVER_ID = 4242
"""The device id raw reading clients say hello with (no device of the tests uses it)."""


class ServerProcess:
    """``python -m syncserver --port 0 ...``; the port is read from its first line."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.port = 0
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> str:
        self.process, self.port = await spawn_syncserver(
            ["--port", str(port), *self.args], _ENV, f"syncserver {' '.join(self.args)}"
        )
        return self.url

    async def terminate(self) -> int:
        """SIGTERM, as a service manager stops it; returns the exit code."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), TIMEOUT)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()


StartServer = Callable[..., Awaitable[ServerProcess]]


@pytest.fixture
async def start_server(tmp_path: Path) -> AsyncIterator[StartServer]:
    """Start syncserver processes (SQLite in tmp_path unless told otherwise); all are
    killed at the end."""
    started: list[ServerProcess] = []

    async def start(*args: str, db: str = "server.sqlite3") -> ServerProcess:
        if "--backend" not in args:
            args = ("--db", str(tmp_path / db), *args)
        server = ServerProcess(*args)
        started.append(server)
        await server.start()
        return server

    yield start
    for server in started:
        await server.kill()


class DeviceProcess:
    """``python -m tests.cases.device NAME DATA_DIR URL``: one device, one process."""

    def __init__(self, name: str, data_dir: Path, url: str) -> None:
        self.argv = (name, str(data_dir), url)
        self.process: asyncio.subprocess.Process | None = None
        self.first_line: dict[str, Any] = {}

    async def start(self, *commands: str) -> dict[str, Any]:
        """Spawn it with ``commands`` already waiting on its stdin; its first line."""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.cases.device", *self.argv,
            cwd=ROOT,
            env=_ENV,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert self.process.stdin is not None
        self.process.stdin.write("".join(f"{command}\n" for command in commands).encode())
        self.first_line = await self._read()
        return self.first_line

    async def next_line(self) -> dict[str, Any]:
        """The next line it says."""
        return await self._read()

    async def _read(self) -> dict[str, Any]:
        assert self.process is not None
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), TIMEOUT)
        if not line:
            raise RuntimeError(f"device process {self.argv[0]} exited without answering")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ask(self, command: str) -> dict[str, Any]:
        assert self.process is not None
        assert self.process.stdin is not None
        self.process.stdin.write(f"{command}\n".encode())
        await self.process.stdin.drain()
        return await self._read()

    async def settled(self, revision: int) -> dict[str, Any]:
        """Ask until the device is online, idle and has seen ``revision``; its state."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                state = await self.ask("state")
                if (
                    state["online"]
                    and state["newest_seen"] >= revision
                    and not state["in_flight"]
                    and not state["intents"]
                ):
                    return state
                await asyncio.sleep(0.05)  # poll interval, not a wait for an outcome

    async def kill(self) -> None:
        """SIGKILL: whatever the state file does not hold yet is gone."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    async def quit(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        assert self.process.stdin is not None
        self.process.stdin.write(b"quit\n")
        await self.process.stdin.drain()
        try:
            await asyncio.wait_for(self.process.wait(), TIMEOUT)
        except TimeoutError:
            await self.kill()


StartDevice = Callable[..., Awaitable[DeviceProcess]]


@pytest.fixture
async def start_device() -> AsyncIterator[StartDevice]:
    """Start device processes; all are stopped at the end."""
    started: list[DeviceProcess] = []

    async def start(name: str, data_dir: Path, url: str, *commands: str) -> DeviceProcess:
        device = DeviceProcess(name, data_dir, url)
        started.append(device)
        await device.start(*commands)
        return device

    yield start
    for device in started:
        await device.quit()


class RawClient:
    """A websocket speaking the protocol as plain JSON dicts, as any client could."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, **message: Any) -> None:
        await self.ws.send(json.dumps(message))

    async def receive(self) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
        return message

    async def receive_until(self, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Skip frames (pushes, other replies) until one matches ``wanted``."""
        while True:
            message = await self.receive()
            if wanted(message):
                return message

    async def reply_to(self, request_id: int | str) -> dict[str, Any]:
        return await self.receive_until(lambda m: m.get("request_id") == request_id)

    async def snapshot(self, since: int = 0) -> dict[str, Any]:
        """``hello since``, with every page of the answer merged into one snapshot."""
        await self.send(type="hello", device_id=OBSERVER_ID, since=since)
        merged: dict[str, Any] = {"values": []}
        while True:
            page = await self.receive_until(lambda m: m.get("type") == "snapshot")
            merged["values"] += page["values"]
            merged.update({k: v for k, v in page.items() if k != "values"})
            if not page.get("more", False):
                return merged


@contextlib.asynccontextmanager
async def raw_client(url: str, **options: Any) -> AsyncIterator[RawClient]:
    """A raw protocol client on ``url`` for the ``async with`` block."""
    # An unbounded queue: a client that stops reading (pushes it does not care about)
    # must still see the server's close frame, or closing waits out the close timeout.
    async with connect(url, compression=None, max_queue=None, **options) as ws:
        yield RawClient(ws)


async def registers(url: str) -> tuple[int, dict[str, tuple[Any, int]]]:
    """The server's revision and every register, as a fresh reader sees them."""
    async with connect(url, compression=None, max_size=None, max_queue=None) as ws:
        snapshot = await RawClient(ws).snapshot()
    return snapshot["revision"], {
        entry["key"]: (entry["value"], entry["server_revision"]) for entry in snapshot["values"]
    }


def wrongly_synced(state: dict[str, Any], held: dict[str, tuple[Any, int]]) -> list[str]:
    """The items a device shows as synced with a like the server does not hold."""
    wrong = []
    for item, (liked, phase, _) in state["items"].items():
        value, _ = held.get(f"like/{item}", (None, 0))
        if phase == "synced" and liked != bool(value):
            wrong.append(f"{item} shown synced as {liked}, the server holds {value!r}")
    return wrong


async def honest(device: DeviceProcess, url: str) -> list[str]:
    """Once the device has caught up with the server: what it shows wrongly as synced."""
    revision, _ = await registers(url)
    state = await device.settled(revision)
    _, held = await registers(url)
    return wrongly_synced(state, held)
