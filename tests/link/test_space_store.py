"""A device's state per space: the default space keeps the old file, other spaces their own."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from app.link import DEFAULT_SPACE, DeviceInUseError, DeviceSession, DeviceStore, MemoryStore
from app.link.store import StoredIntent, store_path
from syncserver import start_server

from .helpers import CATALOGUE, OpenDevice

# The state file's shape before spaces (one file per device name).
OLD_SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE registers (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, server_revision INTEGER NOT NULL
);
CREATE TABLE intents (
    key TEXT PRIMARY KEY, value TEXT NOT NULL,
    local_revision INTEGER NOT NULL, base_revision INTEGER NOT NULL
);
"""
SECRET = "s" * 43


async def _dead_url(tmp_path: Path) -> str:
    dead = await start_server(port=0, db_path=tmp_path / "dead.sqlite3")
    await dead.close()
    return dead.url


def _write_old_state_file(data_dir: Path, name: str) -> Path:
    """A state file as a device wrote it before spaces, at the name it had then."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"{name}-{hashlib.sha256(name.encode()).hexdigest()[:10]}.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.executescript(OLD_SCHEMA)
        db.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            [
                ("device_name", name),
                ("device_id", "4242"),
                ("device_secret", SECRET),
                ("newest_seen", "7"),
                ("epoch", "e-old"),
            ],
        )
        db.execute("INSERT INTO registers VALUES ('like/jam', ?, 5)", (json.dumps(True),))
        db.execute("INSERT INTO intents VALUES ('like/tea', ?, 3, -1)", (json.dumps(True),))
    return path


def _files(folder: Path, pattern: str = "*") -> list[str]:
    return sorted(path.name for path in folder.glob(pattern))


async def test_an_existing_state_file_opens_with_its_values_in_the_default_space(
    open_device: OpenDevice, tmp_path: Path
) -> None:
    """A device's file from before spaces is the default space's file: its id, secret,
    newest_seen, epoch, values and intents all come back."""
    data_dir = tmp_path / "devices"
    path = _write_old_state_file(data_dir, "A")
    assert store_path(data_dir, "A") == store_path(data_dir, "A", DEFAULT_SPACE) == path

    device = await open_device("A", [await _dead_url(tmp_path)])

    assert device.space == DEFAULT_SPACE
    assert device.device_id == 4242
    assert device.client.newest_seen.value == 7
    assert device.client.epoch == "e-old"
    assert device.client.engine.device_secret == SECRET
    assert device.state.liked("jam")
    assert device.state.revision("jam") == 5
    assert device.state.liked("tea")
    assert device.state.intents["tea"] == StoredIntent(True, 3, -1)
    assert _files(data_dir, "*.sqlite3") == [path.name]


async def test_a_device_keeps_separate_state_in_each_space(
    open_device: OpenDevice, tmp_path: Path
) -> None:
    """One device name open in two spaces at once: two files, two identities, and a
    choice made in one space is recorded in that space only."""
    dead_url = await _dead_url(tmp_path)
    home = await open_device("A", [dead_url])
    family = await open_device("A", [dead_url], space="family")
    assert family.space == "family"
    assert home.device_id != family.device_id
    family.toggle_like("fig")
    await home.close()
    await family.close()

    data_dir = tmp_path / "devices"
    assert store_path(data_dir, "A", "family") != store_path(data_dir, "A")
    assert DeviceStore.peek(data_dir, "A", "family").intents == {
        "like/fig": StoredIntent(True, 1, -1)
    }
    assert DeviceStore.peek(data_dir, "A").intents == {}
    again = await open_device("A", [dead_url], space="family")
    assert again.device_id == family.device_id
    assert again.state.liked("fig")


async def test_a_second_session_of_one_device_in_one_space_is_refused(
    open_device: OpenDevice, tmp_path: Path
) -> None:
    """The lock is per (device name, space): the same pair twice is DeviceInUseError."""
    dead_url = await _dead_url(tmp_path)
    await open_device("A", [dead_url], space="family")
    with pytest.raises(DeviceInUseError):
        await open_device("A", [dead_url], space="family")


def test_state_files_of_names_and_spaces_never_collide(tmp_path: Path) -> None:
    """Pairs whose names and spaces slug alike still get files of their own."""
    pairs = [("a", DEFAULT_SPACE), ("a", "b c"), ("a b", "c"), ("a", "b-c"), ("a-b", "c")]
    paths = {store_path(tmp_path, name, space) for name, space in pairs}
    assert len(paths) == len(pairs)


async def test_a_store_of_another_space_is_refused(tmp_path: Path) -> None:
    """A session for one space given the store of another fails before anything opens."""
    store = MemoryStore("A", space="work")
    with pytest.raises(ValueError, match="'work'"):
        await DeviceSession.open(
            "A", ["ws://127.0.0.1:9"], catalogue=CATALOGUE, store=store, space="family"
        )
    assert not store.in_use


async def test_a_bad_space_name_is_refused_before_the_state_file_is_touched(
    tmp_path: Path,
) -> None:
    """An empty space name is a ValueError and creates no file."""
    with pytest.raises(ValueError, match="space name"):
        await DeviceSession.open(
            "A", ["ws://127.0.0.1:9"], data_dir=tmp_path, catalogue=CATALOGUE, space=""
        )
    assert _files(tmp_path) == []
