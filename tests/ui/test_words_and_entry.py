"""The demo's plain words, names and entry point, without a running server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app.__main__ import parse_args
from app.link import CatalogueItem, ConnectionStatus
from app.sync import (
    OptimisticApplied,
    PushApplied,
    PushHeld,
    PushIgnoredStale,
    RequestSent,
    ResponseApplied,
    SelfEchoAcknowledged,
    StaleResponseIgnored,
    SyncEvent,
    SyncFailed,
)
from app.ui.demo import device_name, extend_catalogue
from app.ui.device_window import status_text
from app.ui.directory import DeviceDirectory
from app.ui.timeline import describe, item_id_of
from tests.timeouts import TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = {
    "key": "like/coffee",
    "device_id": 1,
    "local_revision": 3,
    "server_revision": 7,
}


def _name(device_id: int) -> str:
    return {2: "Device B"}.get(device_id, "another device")


@pytest.mark.parametrize(
    ("event", "kind", "words"),
    [
        (OptimisticApplied(**BASE, value=True, coalesced=False), "tap", "showing ♥ liked now"),
        (OptimisticApplied(**BASE, value=False, coalesced=True), "tap", "request is in flight"),
        (RequestSent(**BASE, value=True, follow_up=False), "sent", "local rev 3"),
        (RequestSent(**BASE, value=True, follow_up=True), "follow-up", "Sent a follow-up"),
        (
            ResponseApplied(**BASE, response=True),
            "ack",
            "Ack: the server stored your write at rev 7",
        ),
        (
            PushApplied(**BASE, from_device_id=2, push_local_revision=1),
            "push",
            "Device B wrote this at rev 7",
        ),
        (
            PushApplied(**BASE, from_device_id=1, push_local_revision=3),
            "own-push",
            "Push of your own write, stored at rev 7",
        ),
        (
            PushHeld(**BASE, from_device_id=2, push_local_revision=1),
            "push",
            "Device B wrote this at rev 7 while your request is out: held back",
        ),
        (
            PushIgnoredStale(**BASE, push_revision=5, from_device_id=2),
            "stale",
            "Device B's write at rev 5): already at rev 7",
        ),
        (
            PushIgnoredStale(**BASE, push_revision=7, from_device_id=2),
            "stale",
            "second copy of Device B's write at rev 7 arrived late",
        ),
        (
            PushIgnoredStale(**BASE, push_revision=7, from_device_id=1),
            "stale",
            "The push of your write at rev 7 came after its ack",
        ),
        (SelfEchoAcknowledged(**BASE, push_local_revision=2), "echo", "not re-applied"),
        (
            StaleResponseIgnored(**BASE, response_revision=6),
            "stale",
            "arrived first by push",
        ),
        (SyncFailed(**BASE, error=TimeoutError("no ack"), requests=1), "failed", "server's value"),
    ],
)
def test_events_read_as_plain_words(event: SyncEvent, kind: str, words: str) -> None:
    """Each core event becomes a timeline entry of the right kind that says what happened."""
    entry = describe(event, _name, own_device_id=1)
    assert entry.kind == kind
    assert words in entry.text
    assert entry.item_id == "coffee"


def test_a_request_made_offline_says_it_waits() -> None:
    """Offline, a request is not "sent": the timeline says it waits for the connection."""
    entry = describe(RequestSent(**BASE, value=True, follow_up=False), _name, 1, online=False)
    assert entry.kind == "waiting"
    assert "sent when the connection is back" in entry.text
    assert "Sent ♥" not in entry.text


def test_unknown_writers_are_named_from_the_servers_list_or_another_device() -> None:
    """No "device #8110": a writer is a window's name, "Other device N" or "another device"."""
    directory = DeviceDirectory()
    directory.add(5, "Device A")
    directory.learn([5, 77, None])
    assert directory.name(5) == "Device A"
    assert directory.name(77) == "Other device 1"
    assert directory.name(8110) == "another device"


def test_only_like_keys_name_an_item() -> None:
    """Timeline entries are filtered by item; other keys belong to no item."""
    assert item_id_of("like/moon") == "moon"
    assert item_id_of("theme") is None
    assert item_id_of(("like", "moon")) is None


def test_connection_status_words() -> None:
    """Online, connecting, and offline with a countdown to the next attempt, short ones too."""
    assert status_text(ConnectionStatus("online")) == ("Online", "good")
    assert status_text(ConnectionStatus("connecting"))[1] == "warn"
    offline = ConnectionStatus("offline", retry_at=100.0, attempt=2)
    assert status_text(offline, now=88.0) == ("Offline · retry in 12 s", "bad")
    assert status_text(offline, now=97.2) == ("Offline · retry in 2.8 s", "bad")
    assert status_text(offline, now=99.6) == ("Offline · retry in 0.4 s", "bad")
    assert status_text(offline, now=100.5) == ("Offline · retrying…", "bad")


def test_device_names_are_stable_letters() -> None:
    """Device A, B, ... so a reopened device finds its persisted state by name."""
    assert [device_name(i) for i in (0, 1, 25, 26)] == [
        "Device A",
        "Device B",
        "Device Z",
        "Device 27",
    ]


def test_a_big_catalogue_cycles_the_icons_with_unique_ids() -> None:
    """--items 1000 repeats the catalogue's icons under new ids and numbered titles."""
    base = (CatalogueItem("a", "Apple", "a.svg"), CatalogueItem("b", "Bee", "b.svg"))
    items = extend_catalogue(base, 5)
    assert [item.id for item in items] == ["a", "b", "a-2", "b-2", "a-3"]
    assert items[4] == CatalogueItem("a-3", "Apple #3", "a.svg")
    assert extend_catalogue(base, 1) == base[:1]


def test_command_line_defaults() -> None:
    """Two devices, an embedded server and a latency that makes coalescing visible."""
    args = parse_args([])
    assert (args.devices, args.server, args.latency, args.items) == (2, [], 600, None)
    joined = parse_args(["--server", "ws://a:1", "--server", "ws://b:2", "--devices", "3"])
    assert joined.server == ["ws://a:1", "ws://b:2"]
    with pytest.raises(SystemExit):
        parse_args(["--items", "0"])


def test_screenshot_renders_every_window_and_exits(tmp_path: Path) -> None:
    """python -m app --screenshot writes a PNG, prints the server URL and exits cleanly."""
    target = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "app", "--screenshot", str(target), "--latency", "300"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=6 * TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "ws://127.0.0.1:" in done.stdout
    assert target.read_bytes().startswith(b"\x89PNG")
