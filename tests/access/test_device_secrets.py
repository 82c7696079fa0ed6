"""How the server records and checks device secrets (core and SQLite)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from syncserver import serve
from syncserver.access import secret_digest
from syncserver.backends import CommitCallback, FailureCallback
from syncserver.backends.memory import MemoryBackend
from syncserver.config import ServerConfig
from syncserver.core import ServerCore
from tests.timeouts import TIMEOUT

from .test_limits import ManualClock, Peer

SECRET = "s" * 43
OTHER = "o" * 43


def hello(device_id: int, secret: str | None) -> str:
    return json.dumps({"type": "hello", "device_id": device_id, "device_secret": secret})


class LateClaims(MemoryBackend):
    """A MemoryBackend whose secret checks answer when the test says (as Redis does)."""

    def __init__(self, on_commit: CommitCallback, on_failure: FailureCallback) -> None:
        super().__init__(on_commit, on_failure)
        self.waiting: list[Callable[[], None]] = []

    def claim_device(
        self, device_id: int, digest: bytes, done: Callable[[bytes | None], None]
    ) -> None:
        self.waiting.append(lambda: super(LateClaims, self).claim_device(device_id, digest, done))


async def test_frames_after_a_hello_wait_for_its_secret_check_then_run_in_order():
    """While the backend checks the secret nothing is answered; then the snapshot, then the rest."""
    core = ServerCore(LateClaims, ManualClock(), ServerConfig(require_device_secrets=True))
    backend = core.backend
    assert isinstance(backend, LateClaims)
    await backend.open()
    peer = Peer()
    conn = core.connect(peer)
    core.receive(conn, hello(5, SECRET))
    core.receive(conn, json.dumps({"type": "get", "request_id": 1, "key": "k"}))
    assert peer.messages == []
    backend.waiting.pop()()
    assert [message["type"] for message in peer.messages] == ["snapshot", "value"]
    assert backend.devices == {5: secret_digest(SECRET)}
    await backend.close()


async def test_a_secret_given_to_a_server_that_does_not_require_one_is_still_enforced():
    """Without --require-device-secrets the first secret is recorded, and a wrong one is refused."""
    core = ServerCore(MemoryBackend, ManualClock(), ServerConfig())
    await core.backend.open()
    first, second, bare = Peer(), Peer(), Peer()
    core.receive(core.connect(first), hello(5, SECRET))
    thief = core.connect(second)
    core.receive(thief, hello(5, OTHER))
    assert first.count("snapshot") == 1
    assert second.messages == []
    assert thief.closed
    core.receive(core.connect(bare), hello(5, None))  # not required: the id is not protected
    assert bare.count("snapshot") == 1
    await core.backend.close()


async def _close_code(url: str, frame: str) -> int:
    async with connect(url) as ws:
        await ws.send(frame)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


async def _snapshot(url: str, frame: str) -> None:
    async with connect(url) as ws:
        await ws.send(frame)
        reply: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert reply["type"] == "snapshot"


async def test_device_secrets_survive_a_server_restart(tmp_path: Path):
    """SQLite keeps the digests: after a restart the old secret works and another is refused."""
    db_path = tmp_path / "sync.sqlite3"
    async with serve(db_path=db_path, require_device_secrets=True) as server:
        await _snapshot(server.url, hello(5, SECRET))
    async with serve(db_path=db_path, require_device_secrets=True) as server:
        assert await _close_code(server.url, hello(5, OTHER)) == 1008
        await _snapshot(server.url, hello(5, SECRET))


async def test_every_hello_on_a_token_server_must_carry_the_token_not_only_the_first():
    """A resync hello without the token closes the connection (1008) like a first one."""
    core = ServerCore(MemoryBackend, ManualClock(), ServerConfig(token="t"))
    await core.backend.open()
    peer = Peer()
    conn = core.connect(peer)
    core.receive(conn, json.dumps({"type": "hello", "device_id": 5, "token": "t"}))
    assert peer.count("snapshot") == 1
    core.receive(conn, json.dumps({"type": "hello", "device_id": 5}))
    assert conn.closed
    assert peer.count("snapshot") == 1
    await core.backend.close()
