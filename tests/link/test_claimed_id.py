"""A device whose id another secret claimed on a fresh server database takes a new id."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import msgspec
import pytest
from websockets.asyncio.client import connect

from app.link import DeviceStore, like_key
from syncserver import SyncServer, start_server

from .helpers import OpenDevice, eventually

OTHER_SECRET = "o" * 43


async def _claim(url: str, device_id: int) -> None:
    """Say hello as ``device_id`` with a secret that is not the device's (first use wins)."""
    hello = {"type": "hello", "device_id": device_id, "device_secret": OTHER_SECRET}
    async with connect(url) as ws:
        await ws.send(json.dumps(hello))
        reply = json.loads(await ws.recv())
    assert reply["type"] == "snapshot"


def _writer(server: SyncServer, key: str) -> tuple[object, int] | None:
    """The value of ``key`` on ``server`` and the id of the device that wrote it."""
    for entry in server.state().values:
        if entry.key == key:
            value = entry.value
            if isinstance(value, msgspec.Raw):  # values travel undecoded
                value = msgspec.json.decode(value)
            return value, entry.device_id
    return None


async def test_a_device_whose_id_was_claimed_on_a_fresh_database_comes_back_under_a_new_id(
    open_device: OpenDevice, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Closed 1008 "this device id has another secret", the device persists a new id and
    secret, reconnects under them, and its offline tap reaches the server."""
    first = await start_server(
        port=0, db_path=tmp_path / "first.sqlite3", require_device_secrets=True
    )
    port = int(first.url.rsplit(":", 1)[1])
    session = await open_device("A", [first.url])
    old_id = session.device_id
    await eventually(lambda: session.status.state == "online", session)
    await first.close()
    await eventually(lambda: session.status.state != "online", session)
    session.toggle_like("tea")  # offline: an unconfirmed intent

    # A fresh database, where another connection claims the device's id first.
    fresh = tmp_path / "fresh.sqlite3"
    claimant = await start_server(port=0, db_path=fresh, require_device_secrets=True)
    try:
        await _claim(claimant.url, old_id)
    finally:
        await claimant.close()
    caplog.set_level(logging.WARNING, logger="app.link.client")
    second = await start_server(port=port, db_path=fresh, require_device_secrets=True)
    try:
        session.client.retry_now()
        key = like_key("tea")
        await eventually(
            lambda: session.status.state == "online" and "tea" not in session.state.intents,
            session,
        )
        new_id = session.device_id
        assert new_id != old_id
        assert 0 < new_id < 2**53
        assert session.client.device_id == new_id
        assert _writer(second, key) == (True, new_id)
        warnings = [r for r in caplog.records if "another secret" in r.getMessage()]
        assert len(warnings) == 1, warnings
        await session.close()
        store = DeviceStore.for_device(tmp_path / "devices", "A")
        try:
            stored = await store.load()
        finally:
            await store.close()
        assert stored.device_id == new_id
        assert stored.device_secret is not None
    finally:
        await second.close()


async def test_a_wrong_token_closes_1008_without_a_new_device_id(
    open_device: OpenDevice, tmp_path: Path
) -> None:
    """Any other 1008 (here: a wrong token) leaves the device's id and secret alone."""
    server = await start_server(port=0, db_path=tmp_path / "s.sqlite3", token="right")
    try:
        session = await open_device("B", [server.url], token="wrong")
        old_id = session.device_id
        await eventually(
            lambda: session.status.attempt >= 3 and "1008" in (session.status.reason or ""),
            session,
        )
        assert session.device_id == old_id
        assert session.client.engine.device_id == old_id
    finally:
        await server.close()
