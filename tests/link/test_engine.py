"""The link engine driven with plain frames: no sockets, no loop, no clock."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.link import LinkEngine
from app.link.engine import CaughtUp, PushesReceived, ReplyReceived, SnapshotPage
from syncserver.protocol import Hello, Push, Set, decode_client_message


def _push(revision: int, key: str = "like/tea", device_id: int = 9) -> dict[str, Any]:
    return {
        "type": "push",
        "key": key,
        "value": True,
        "server_revision": revision,
        "local_revision": 1,
        "device_id": device_id,
    }


def _snapshot(
    revision: int,
    keys: list[str] | None = None,
    *,
    epoch: str = "e1",
    since: int = 0,
    more: bool = False,
) -> str:
    values = [
        {"key": key, "value": True, "server_revision": n + 1} for n, key in enumerate(keys or [])
    ]
    return json.dumps(
        {
            "type": "snapshot",
            "revision": revision,
            "values": values,
            "epoch": epoch,
            "since": since,
            "more": more,
        }
    )


def _frame(message: dict[str, Any]) -> str:
    return json.dumps(message)


def _sent(engine: LinkEngine) -> list[Any]:
    return [decode_client_message(frame) for frame in engine.data_to_send()]


def _online(engine: LinkEngine, revision: int = 0, *, epoch: str = "e1") -> None:
    engine.connected(0.0)
    engine.data_to_send()
    engine.receive(_snapshot(revision, epoch=epoch), 0.0)
    engine.events_received()


def test_connecting_says_hello_since_newest_seen_in_the_stored_epoch() -> None:
    """A new connection queues one hello carrying since, epoch and batch_pushes."""
    engine = LinkEngine(7, since=12, epoch="e1")
    engine.connected(0.0)
    (hello,) = _sent(engine)
    assert hello == Hello(7, 12, batch_pushes=True, epoch="e1")
    assert not engine.online


def test_online_only_after_the_last_snapshot_page() -> None:
    """Pages with more=true are handed out but the engine stays offline until the last."""
    engine = LinkEngine(7)
    engine.connected(0.0)
    engine.receive(_snapshot(5, ["like/a"], more=True), 0.0)
    engine.receive(_snapshot(5, ["like/b"], more=True), 0.0)
    assert not engine.online
    assert engine.newest_seen == 0
    pages = engine.events_received()
    assert [type(e) for e in pages] == [SnapshotPage, SnapshotPage]
    engine.receive(_snapshot(5, ["like/c"]), 0.0)
    *_, caught_up = engine.events_received()
    assert caught_up == CaughtUp(5, "e1", None, went_online=True)
    assert engine.online
    assert engine.newest_seen == 5


def test_pushes_between_pages_count_once_the_last_page_arrives() -> None:
    """A push arriving mid-snapshot is handed out; newest_seen waits for the last
    page, then continues through the unbroken run of pushes above the snapshot."""
    engine = LinkEngine(7)
    engine.connected(0.0)
    engine.receive(_snapshot(5, ["like/a"], more=True), 0.0)
    engine.receive(_frame(_push(6)), 0.0)
    engine.receive(_frame(_push(8)), 0.0)
    assert engine.newest_seen == 0
    engine.receive(_snapshot(5, ["like/b"]), 0.0)
    events = engine.events_received()
    assert isinstance(events[1], PushesReceived)
    assert engine.newest_seen == 6  # 7 is missing: 8 does not count


def test_pushes_before_the_first_page_count_after_the_snapshot() -> None:
    """Pushes that arrive before a resync's first page still extend the run after it,
    so a server that sends pushes while reading pages causes no second resync."""
    engine = LinkEngine(7)
    _online(engine, 3)
    engine.resync(0.0)
    engine.data_to_send()
    engine.receive(_frame(_push(5)), 0.0)
    engine.receive(_frame({"type": "pushes", "pushes": [_push(6), _push(7)]}), 0.0)
    engine.receive(_snapshot(4, ["like/a"]), 0.0)
    assert engine.newest_seen == 7
    assert engine.gaps_detected == 0


def test_consecutive_pushes_extend_the_unbroken_run() -> None:
    """newest_seen follows pushes that count up by one, a batch included."""
    engine = LinkEngine(7)
    _online(engine, 3)
    engine.receive(_frame(_push(4)), 0.0)
    engine.receive(_frame({"type": "pushes", "pushes": [_push(5), _push(6)]}), 0.0)
    assert engine.newest_seen == 6
    events = engine.events_received()
    assert [len(e.pushes) for e in events if isinstance(e, PushesReceived)] == [1, 2]
    assert engine.data_to_send() == []


def test_a_gap_is_detected_and_resynced_once() -> None:
    """A push past newest_seen+1 is handed out, counted as a gap and asks for a hello;
    further pushes while the resync is pending ask for nothing more."""
    engine = LinkEngine(7)
    _online(engine, 3)
    engine.receive(_frame(_push(6)), 0.0)
    engine.receive(_frame(_push(7)), 0.0)
    assert engine.gaps_detected == 1
    assert engine.newest_seen == 3
    (hello,) = _sent(engine)
    assert isinstance(hello, Hello)
    assert hello.since == 3
    engine.receive(_snapshot(7, since=3), 0.0)
    assert engine.newest_seen == 7


def test_the_heartbeat_says_hello_when_due_and_not_before() -> None:
    """An online engine resyncs every heartbeat seconds; ticks before that send nothing."""
    engine = LinkEngine(7, heartbeat=10.0)
    _online(engine)
    assert engine.heartbeat_due == 10.0
    engine.tick(9.9)
    assert engine.data_to_send() == []
    engine.tick(10.0)
    assert [type(m) for m in _sent(engine)] == [Hello]
    assert engine.heartbeat_due == 20.0
    engine.tick(20.0)  # the resync is still unanswered: no second hello, but time moves on
    assert engine.data_to_send() == []
    assert engine.heartbeat_due == 30.0


def test_a_snapshot_of_another_epoch_starts_a_new_history() -> None:
    """Another epoch: the first page says new_epoch, CaughtUp lists every key the new
    history holds (pages and pushes), and newest_seen drops to its revision (then
    follows the pushes that arrived between pages)."""
    engine = LinkEngine(7, since=40, epoch="old")
    engine.connected(0.0)
    engine.receive(_snapshot(2, ["like/a"], epoch="new", more=True), 0.0)
    engine.receive(_frame(_push(3, key="like/b")), 0.0)
    engine.receive(_snapshot(2, ["like/c"], epoch="new"), 0.0)
    events = engine.events_received()
    assert isinstance(events[0], SnapshotPage)
    assert events[0].new_epoch
    assert isinstance(events[2], SnapshotPage)
    assert not events[2].new_epoch
    assert events[-1] == CaughtUp(
        3, "new", frozenset({"like/a", "like/b", "like/c"}), went_online=True
    )
    assert engine.epoch == "new"
    assert engine.newest_seen == 3


def test_a_first_epoch_is_adopted_without_forgetting() -> None:
    """A device that never saw an epoch takes the first one as its own."""
    engine = LinkEngine(7, since=0)
    engine.connected(0.0)
    engine.receive(_snapshot(4, ["like/a"], epoch="e1"), 0.0)
    (page, caught_up) = engine.events_received()
    assert isinstance(page, SnapshotPage)
    assert not page.new_epoch
    assert caught_up == CaughtUp(4, "e1", None, went_online=True)


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        b'{"type": "push"}',
        '{"type": "push", "key": "like/tea"}',
        '{"type": "from_the_future", "x": 1}',
        "[" * 100_000 + "]" * 100_000,
        '{"type": "ack", "request_id": 1, "key": "k", "value": ' + "[" * 5000 + "]" * 5000 + "}",
    ],
    ids=["garbage", "binary", "missing-fields", "unknown-type", "deep-array", "deep-value"],
)
def test_a_frame_it_cannot_decode_is_dropped_and_changes_nothing(frame: str | bytes) -> None:
    """Undecodable frames (garbage, binary, unknown types, absurd nesting) are counted
    and dropped; the engine stays online and keeps working."""
    engine = LinkEngine(7)
    _online(engine, 1)
    engine.receive(frame, 0.0)
    assert engine.frames_dropped == 1
    assert engine.events_received() == []
    assert engine.data_to_send() == []
    assert engine.online
    engine.receive(_frame(_push(2)), 0.0)
    assert engine.newest_seen == 2


def test_replies_are_matched_to_requests_and_late_ones_dropped() -> None:
    """A set gets a fresh request id; its ack comes back as ReplyReceived once; a reply
    to a forgotten (timed-out) request is dropped."""
    engine = LinkEngine(7)
    _online(engine)
    first = engine.send_set("like/tea", True, 3)
    second = engine.send_get("like/jam")
    assert first != second
    (sent_set, _get) = _sent(engine)
    assert sent_set == Set(first, "like/tea", True, 3, 7)
    ack = {"type": "ack", "request_id": first, "key": "like/tea", "value": True}
    engine.receive(_frame({**ack, "server_revision": 1}), 0.0)
    engine.receive(_frame({**ack, "server_revision": 1}), 0.0)  # a duplicate
    engine.forget_request(second)
    value = {"type": "value", "request_id": second, "key": "like/jam", "value": None}
    engine.receive(_frame({**value, "server_revision": 0}), 0.0)
    (reply,) = engine.events_received()
    assert isinstance(reply, ReplyReceived)
    assert reply.request_id == first


def test_disconnecting_returns_the_requests_in_flight() -> None:
    """A dropped connection hands back the ids of unanswered requests and goes offline."""
    engine = LinkEngine(7)
    _online(engine)
    request_id = engine.send_set("like/tea", True, 1)
    assert engine.disconnected() == {request_id}
    assert not engine.online
    assert engine.heartbeat_due is None
    with pytest.raises(RuntimeError):
        engine.send_set("like/tea", True, 2)


def test_dropped_pushes_never_reach_the_device() -> None:
    """drop_push loses pushes as a flaky network would; the next one reveals the gap."""
    engine = LinkEngine(7, drop_push=lambda push: push.server_revision == 2)
    _online(engine, 1)
    engine.receive(_frame(_push(2)), 0.0)
    assert engine.events_received() == []
    engine.receive(_frame(_push(3)), 0.0)
    assert engine.gaps_detected == 1
    (event,) = engine.events_received()
    assert isinstance(event, PushesReceived)
    assert event.pushes == (Push("like/tea", True, 3, 1, 9),)


def test_a_hundred_thousand_keys_in_pages_bring_the_engine_online() -> None:
    """A catch-up of 100,000 keys split in pages hands out every entry and goes
    online exactly once, after the last page."""
    engine = LinkEngine(7)
    engine.connected(0.0)
    keys = [f"like/{n}" for n in range(100_000)]
    pages = [keys[start : start + 5_000] for start in range(0, len(keys), 5_000)]
    handed_out = 0
    for number, page in enumerate(pages, start=1):
        engine.receive(_snapshot(100_000, page, more=number < len(pages)), 0.0)
        events = engine.events_received()
        handed_out += sum(len(e.snapshot.values) for e in events if isinstance(e, SnapshotPage))
        assert engine.online == (number == len(pages))
    assert handed_out == 100_000
    assert events[-1] == CaughtUp(100_000, "e1", None, went_online=True)
