"""A device's state survives restarts; a damaged state file never stops it."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from app.link import DeviceStore, SyncPhase
from app.link.store import StoredIntent, store_path
from syncserver import SyncServer, start_server
from syncserver.protocol import Push
from tests.timeouts import TIMEOUT

from .helpers import OpenDevice, eventually


async def _dead_url(tmp_path: Path) -> str:
    dead = await start_server(port=0, db_path=tmp_path / "dead.sqlite3")
    await dead.close()
    return dead.url


async def test_reopening_restores_values_revisions_and_device_id_before_connecting(
    server: SyncServer, open_device: OpenDevice, tmp_path: Path
) -> None:
    """Closing and reopening a device shows its likes at once, even with no server."""
    a = await open_device("A", [server.url])
    await a.toggle_like("jam")
    device_id = a.device_id
    await a.close()

    again = await open_device("A", [await _dead_url(tmp_path)])

    assert again.device_id == device_id
    assert again.state.liked("jam")
    assert again.state.revision("jam") == 1
    assert again.client.newest_seen.value == 1
    assert again.state.status("jam").phase is SyncPhase.SYNCED
    assert not again.state.intents


async def test_an_unsent_intent_is_delivered_after_a_restart(
    open_device: OpenDevice, tmp_path: Path
) -> None:
    """A like made offline and closed with the app is shown on reopen and sent once online."""
    dead_url = await _dead_url(tmp_path)
    a = await open_device("A", [dead_url])
    a.toggle_like("tea")
    assert a.state.status("tea").phase is SyncPhase.SAVING
    await a.close()
    assert DeviceStore.peek(tmp_path / "devices", "A").intents == {
        "like/tea": StoredIntent(True, 1, -1)
    }

    async with _server_at(dead_url, tmp_path) as server:
        again = await open_device("A", [server.url])
        assert again.state.liked("tea")  # restored before any network
        assert again.state.status("tea").phase is SyncPhase.SAVING
        await eventually(lambda: not again.state.intents, again)
        assert again.state.status("tea").phase is SyncPhase.SYNCED
        assert again.state.revision("tea") == 1
        value = await again.client.get("like/tea")
        assert value.value is True
        await again.flush()
        assert not DeviceStore.peek(tmp_path / "devices", "A").intents


async def test_an_unsent_intent_loses_to_a_newer_server_write(
    open_device: OpenDevice, tmp_path: Path
) -> None:
    """An offline intent superseded meanwhile by another device's write is dropped,
    and the device shows that write as overriding its choice."""
    dead_url = await _dead_url(tmp_path)
    a = await open_device("A", [dead_url])
    a.toggle_like("tea")
    await a.close()

    async with _server_at(dead_url, tmp_path) as server:
        b = await open_device("B", [server.url])
        await b.toggle_like("tea")
        await b.toggle_like("tea")  # server: tea = False at revision 2
        again = await open_device("A", [server.url])
        await eventually(lambda: not again.state.intents, again)
        assert not again.state.liked("tea")
        assert again.state.revision("tea") == 2
        assert again.state.status("tea").phase is SyncPhase.OVERRIDDEN
        assert (await again.client.get("like/tea")).server_revision == 2  # nothing was re-sent


async def test_catch_up_copy_of_our_own_older_write_keeps_the_newer_intent(
    server: SyncServer, open_device: OpenDevice
) -> None:
    """A write whose echo and ack never arrived comes back in the catch-up snapshot;
    it is recognised as this device's own, so the user's newer tap is still sent."""
    dropped = asyncio.Event()

    def drop_first_tea(push: Push) -> bool:
        if push.key == "like/tea" and not dropped.is_set():
            dropped.set()
            return True
        return False

    a = await open_device("A", [server.url], drop_push=drop_first_tea, heartbeat=None)
    await eventually(lambda: a.status.state == "online", a)
    server.chaos.set_ack_delay(5.0)  # the first write commits; its ack lags
    a.toggle_like("tea")
    await asyncio.wait_for(dropped.wait(), TIMEOUT)
    a.toggle_like("tea")  # the user changes their mind; the app closes before the ack
    await a.close()
    server.chaos.set_ack_delay(0)

    again = await open_device("A", [server.url])
    await eventually(lambda: not again.state.intents and server.revision == 2, again)
    assert not again.state.liked("tea")
    assert (await again.client.get("like/tea")).value is False


async def test_a_corrupt_state_file_means_a_clean_start_with_a_warning(
    server: SyncServer, open_device: OpenDevice, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Garbage in the state file is moved aside with a warning; the device starts clean."""
    data_dir = tmp_path / "devices"
    data_dir.mkdir()
    path = store_path(data_dir, "A")
    path.write_bytes(b"this is not a database" * 100)

    with caplog.at_level(logging.WARNING, logger="app.link.store"):
        a = await open_device("A", [server.url], data_dir=data_dir)

    assert any("unreadable" in r.getMessage() for r in caplog.records)
    assert list(data_dir.glob(f"{path.name}.corrupt-*"))
    assert not any(item.liked for item in a.state.items)
    await a.toggle_like("fig")
    await a.flush()
    stored = DeviceStore.peek(data_dir, "A")
    assert stored.device_id == a.device_id
    assert stored.values == {"like/fig": True}


async def test_store_coalesces_writes_and_reads_them_back(tmp_path: Path) -> None:
    """Many puts end as the latest value per key after one flush and a reopen."""
    store, stored = await DeviceStore.open(tmp_path, "dev")
    assert stored.device_id is None
    store.put_device_id(42)
    for revision in range(1, 200):
        store.put_value("like/tea", revision % 2 == 0, revision)
        store.put_newest_seen(revision)
    store.put_intent("like/jam", StoredIntent(True, 3, 7))
    store.put_intent("like/fig", StoredIntent(False, 1, 0))
    store.put_intent("like/fig", None)
    await store.close()

    store, stored = await DeviceStore.open(tmp_path, "dev")
    await store.close()
    assert stored.device_id == 42
    assert stored.newest_seen == 199
    assert stored.values == {"like/tea": False}
    assert stored.revisions == {"like/tea": 199}
    assert stored.intents == {"like/jam": StoredIntent(True, 3, 7)}


class _server_at:
    """A server listening on the port of ``url`` (which was closed before)."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self._port = int(url.rsplit(":", 1)[1])
        self._db = tmp_path / "server.sqlite3"
        self._server: SyncServer | None = None

    async def __aenter__(self) -> SyncServer:
        self._server = await start_server(port=self._port, db_path=self._db)
        return self._server

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        await self._server.close()


async def test_data_dir_may_be_given_as_a_string(
    server: SyncServer, open_device: OpenDevice, tmp_path: Path
) -> None:
    """``data_dir="..."`` works like a Path: the state file lands in that folder."""
    folder = tmp_path / "as-text"
    device = await open_device("Texty", [server.url], data_dir=str(folder))
    await device.flush()
    assert store_path(folder, "Texty").exists()
