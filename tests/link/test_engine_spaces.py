"""The link engine in a space, driven with plain frames: joins, isolation, gaps by ``prev``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.link import DEFAULT_SPACE, LinkEngine
from app.link.engine import (
    NOT_SERVED,
    CaughtUp,
    PushesReceived,
    ReplyReceived,
    SnapshotPage,
    SpaceRefused,
)
from syncserver.protocol import MAX_SPACE_LENGTH, Get, Hello, Set, decode_client_message

SPACE = "family"


def _push(
    revision: int,
    prev: int | None,
    *,
    space: str = SPACE,
    key: str = "like/tea",
) -> dict[str, Any]:
    push: dict[str, Any] = {
        "type": "push",
        "key": key,
        "value": True,
        "server_revision": revision,
        "local_revision": 1,
        "device_id": 9,
        "space": space,
    }
    if prev is not None:
        push["prev"] = prev
    return push


def _pushes(*pushes: dict[str, Any]) -> str:
    return json.dumps({"type": "pushes", "pushes": list(pushes)})


def _snapshot(revision: int, *, space: str = SPACE, more: bool = False) -> str:
    return json.dumps(
        {
            "type": "snapshot",
            "revision": revision,
            "values": [{"key": "like/jam", "value": True, "server_revision": revision}],
            "epoch": "e1",
            "more": more,
            "space": space,
        }
    )


def _sent(engine: LinkEngine) -> list[Any]:
    return [decode_client_message(frame) for frame in engine.data_to_send()]


def _online(revision: int, *, space: str = SPACE) -> LinkEngine:
    engine = LinkEngine(7, since=revision, epoch="e1", space=space)
    engine.connected(0.0)
    engine.data_to_send()
    engine.receive(_snapshot(revision, space=space), 0.0)
    engine.events_received()
    assert engine.online
    return engine


def _pushed(engine: LinkEngine) -> list[int]:
    return [
        push.server_revision
        for event in engine.events_received()
        if isinstance(event, PushesReceived)
        for push in event.pushes
    ]


def test_hello_set_and_get_name_the_engines_space() -> None:
    """Every frame the engine sends says its space: the hello joins it, requests go to it."""
    engine = LinkEngine(7, since=3, epoch="e1", space=SPACE)
    engine.connected(0.0)
    engine.receive(_snapshot(3), 0.0)
    engine.send_set("like/tea", True, 1)
    engine.send_get("like/tea")
    hello, set_, get = _sent(engine)
    assert hello == Hello(7, 3, batch_pushes=True, epoch="e1", space=SPACE)
    assert isinstance(set_, Set)
    assert set_.space == SPACE
    assert isinstance(get, Get)
    assert get.space == SPACE


def test_an_engine_without_a_space_joins_the_default_space() -> None:
    """Without ``space`` the engine lives in the protocol's default space, as before spaces."""
    engine = LinkEngine(7)
    engine.connected(0.0)
    (hello,) = _sent(engine)
    assert engine.space == DEFAULT_SPACE == "default"
    assert hello.space == DEFAULT_SPACE


@pytest.mark.parametrize("space", ["", "x" * (MAX_SPACE_LENGTH + 1)])
def test_a_space_name_outside_the_protocols_limits_is_refused(space: str) -> None:
    """An empty or too long space name is a ValueError before anything is sent."""
    with pytest.raises(ValueError, match="space name"):
        LinkEngine(7, space=space)


def test_a_push_whose_prev_was_seen_continues_the_run_past_other_spaces_revisions() -> None:
    """Revisions other spaces took are skipped without a gap: prev names the space's
    previous write, and newest_seen moves to the push's revision."""
    engine = _online(4)
    engine.receive(_pushes(_push(9, 4), _push(15, 9)), 0.0)
    assert engine.newest_seen == 15
    assert engine.gaps_detected == 0
    assert _sent(engine) == []


def test_a_missed_push_in_the_space_is_detected_by_its_successors_prev() -> None:
    """A push whose prev is above newest_seen means a write of the space was lost: it is
    applied anyway and the engine asks its space for everything after newest_seen."""
    engine = _online(4)
    engine.receive(json.dumps(_push(12, 9)), 0.0)  # the push of 9 never came
    assert _pushed(engine) == [12]
    assert engine.gaps_detected == 1
    assert engine.newest_seen == 4
    (hello,) = _sent(engine)
    assert hello == Hello(7, 4, batch_pushes=True, epoch="e1", space=SPACE)


def test_pushes_of_other_spaces_are_dropped_and_never_look_like_gaps() -> None:
    """A frame mixing spaces hands out only this space's pushes and moves newest_seen by
    them alone; another space's write, whatever its revision, is neither applied nor a gap."""
    engine = _online(4)
    engine.receive(
        _pushes(_push(5, 0, space="work"), _push(6, 4), _push(8, 5, space="work"), _push(9, 6)),
        0.0,
    )
    assert _pushed(engine) == [6, 9]
    assert engine.newest_seen == 9
    engine.receive(json.dumps(_push(20, 19, space="work")), 0.0)
    assert _pushed(engine) == []
    assert engine.newest_seen == 9
    assert engine.gaps_detected == 0
    assert engine.foreign_dropped == 3
    assert _sent(engine) == []


def test_a_repeated_push_with_prev_changes_nothing() -> None:
    """A push seen twice (a duplicated frame) is no gap and never moves newest_seen back."""
    engine = _online(4)
    engine.receive(_pushes(_push(6, 4), _push(8, 6)), 0.0)
    engine.receive(json.dumps(_push(6, 4)), 0.0)
    assert engine.newest_seen == 8
    assert engine.gaps_detected == 0


def test_pushes_remembered_during_a_catch_up_count_through_prev_until_one_does_not_fit() -> None:
    """After the last page, newest_seen walks the pushes that arrived meanwhile in revision
    order while each one's prev is covered, and stops at the first that is not."""
    engine = LinkEngine(7, epoch="e1", space=SPACE)
    engine.connected(0.0)
    engine.data_to_send()
    engine.receive(_snapshot(4, more=True), 0.0)
    # Out of order on purpose: the walk sorts by revision. 3 is covered by the snapshot.
    engine.receive(_pushes(_push(9, 6), _push(3, 1), _push(6, 4), _push(14, 11)), 0.0)
    engine.receive(_snapshot(4), 0.0)
    assert engine.newest_seen == 9  # 14 follows 11, which never came
    *_, caught_up = engine.events_received()
    assert caught_up == CaughtUp(9, "e1", None, went_online=True)
    assert engine.gaps_detected == 0


def test_pushes_remembered_during_a_gap_resync_continue_past_the_snapshot() -> None:
    """Pushes that arrive while a gap's resync is pending extend the run after its
    snapshot, so the resync costs no second one."""
    engine = _online(4)
    engine.receive(json.dumps(_push(12, 9)), 0.0)
    engine.data_to_send()
    engine.receive(_pushes(_push(13, 12), _push(17, 13)), 0.0)
    engine.receive(_snapshot(12), 0.0)
    assert engine.newest_seen == 17
    assert engine.gaps_detected == 1
    assert _sent(engine) == []


def test_a_push_without_prev_falls_back_to_consecutive_revisions() -> None:
    """A server older than spaces sends no prev: a push must be newest_seen + 1, and
    one that skips a revision is a gap, as before spaces."""
    engine = _online(4, space=DEFAULT_SPACE)
    engine.receive(json.dumps(_push(5, None, space=DEFAULT_SPACE)), 0.0)
    assert engine.newest_seen == 5
    assert engine.gaps_detected == 0
    engine.receive(json.dumps(_push(7, None, space=DEFAULT_SPACE)), 0.0)
    assert engine.newest_seen == 5
    assert engine.gaps_detected == 1
    (hello,) = _sent(engine)
    assert hello.since == 5


def test_pushes_without_prev_during_a_catch_up_count_only_consecutively() -> None:
    """With an older server, the walk after the last page takes only the unbroken run."""
    engine = LinkEngine(7, epoch="e1")
    engine.connected(0.0)
    engine.receive(_snapshot(4, space=DEFAULT_SPACE, more=True), 0.0)
    revisions = (5, 6, 8)
    engine.receive(_pushes(*(_push(r, None, space=DEFAULT_SPACE) for r in revisions)), 0.0)
    engine.receive(_snapshot(4, space=DEFAULT_SPACE), 0.0)
    assert engine.newest_seen == 6


def test_snapshot_pages_of_another_space_are_dropped() -> None:
    """A page of another space neither applies nor brings the engine online; as the
    answer to its hello it says the server does not serve the space (an older server)."""
    engine = LinkEngine(7, space=SPACE)
    engine.connected(0.0)
    engine.receive(_snapshot(5, space=DEFAULT_SPACE), 0.0)
    assert engine.events_received() == [
        SpaceRefused(SPACE, NOT_SERVED, "the server answered with a snapshot of space 'default'")
    ]
    assert not engine.online
    assert engine.foreign_dropped == 1
    engine.receive(_snapshot(5), 0.0)
    assert [type(event) for event in engine.events_received()] == [SnapshotPage, CaughtUp]
    assert engine.online


def test_replies_of_another_space_are_dropped() -> None:
    """An ack, value or error naming another space never answers this engine's request."""
    engine = _online(4)
    request_id = engine.send_set("like/tea", True, 1)
    for reply in (
        {"type": "ack", "request_id": request_id, "key": "like/tea", "value": True,
         "server_revision": 5, "space": "work"},
        {"type": "error", "request_id": request_id, "code": "not_joined", "message": "no",
         "space": "work"},
    ):  # fmt: skip
        engine.receive(json.dumps(reply), 0.0)
    assert engine.events_received() == []
    ack = {"type": "ack", "request_id": request_id, "key": "like/tea", "value": True,
           "server_revision": 5, "space": SPACE}  # fmt: skip
    engine.receive(json.dumps(ack), 0.0)
    (event,) = engine.events_received()
    assert isinstance(event, ReplyReceived)
    assert event.reply.server_revision == 5  # type: ignore[union-attr]


def test_a_hello_refused_for_the_space_is_reported() -> None:
    """``forbidden`` for this space (request_id null) becomes SpaceRefused; the same
    error about another space is dropped."""
    engine = LinkEngine(7, space=SPACE)
    engine.connected(0.0)
    for space in ("work", SPACE):
        error = {"type": "error", "request_id": None, "code": "forbidden",
                 "message": "not in the list", "space": space}  # fmt: skip
        engine.receive(json.dumps(error), 0.0)
    assert engine.events_received() == [SpaceRefused(SPACE, "forbidden", "not in the list")]
    assert not engine.online


# -- a property: gap detection by prev against a model server ------------------------

_WRITE = st.tuples(st.just("write"), st.sampled_from([SPACE, "work"]), st.booleans())
_SERVE = st.just(("serve", "", False))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_WRITE, _WRITE, _SERVE), max_size=40))
def test_newest_seen_never_passes_a_missed_write_and_gaps_are_never_false(
    steps: list[tuple[str, str, bool]],
) -> None:
    """Writes in two spaces, some pushes of the engine's space lost, resyncs answered in
    two pages with pushes between them: newest_seen never claims a write of its space
    the device has not got, a gap is only ever reported when one is missing, and with
    nothing lost none is reported and newest_seen reaches the space's head."""
    engine = LinkEngine(7, epoch="e1", space=SPACE)
    engine.connected(0.0)
    writes: list[tuple[int, str]] = []  # (revision, space) in commit order
    heads: dict[str, int] = {}
    got: set[int] = set()  # revisions of SPACE the device applied or a snapshot covered
    answering: int | None = None  # the revision of the snapshot being sent, after page 1

    def hello_pending() -> bool:
        return any(json.loads(frame)["type"] == "hello" for frame in engine.data_to_send())

    waiting_hello = hello_pending()
    for kind, space, lost in steps:
        gaps = engine.gaps_detected
        if kind == "write":
            revision = len(writes) + 1
            prev = heads.get(space, 0)
            writes.append((revision, space))
            heads[space] = revision
            if not (lost and space == SPACE):
                engine.receive(json.dumps(_push(revision, prev, space=space)), 0.0)
                if space == SPACE:
                    got.add(revision)
        elif answering is not None:  # the last page
            engine.receive(_snapshot(answering), 0.0)
            got.update(r for r, s in writes if s == SPACE and r <= answering)
            answering = None
        elif waiting_hello:  # the first page, read now
            answering = len(writes)
            engine.receive(_snapshot(answering, more=True), 0.0)
            waiting_hello = False
        waiting_hello |= hello_pending()
        mine = {r for r, s in writes if s == SPACE}
        assert {r for r in mine if r <= engine.newest_seen} <= got
        if engine.gaps_detected > gaps:
            assert mine - got, "a gap was reported with nothing of the space missing"
    if all(not lost or space != SPACE for kind, space, lost in steps if kind == "write"):
        assert engine.gaps_detected == 0
        if engine.online and answering is None and not waiting_hello:
            assert engine.newest_seen >= heads.get(SPACE, 0)
