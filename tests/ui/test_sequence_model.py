"""The sequence diagram's drawing model, driven with plain core events (no Qt, no sockets)."""

from __future__ import annotations

from app.sync import (
    FollowUpScheduled,
    OptimisticApplied,
    PushApplied,
    PushIgnoredStale,
    RequestSent,
    ResponseApplied,
    SelfEchoAcknowledged,
    StaleResponseIgnored,
    SyncFailed,
    SyncFinished,
)
from app.ui.sequence import SERVER_LANE, Dot, SequenceModel
from app.ui.space_names import DEFAULT_SPACE

A, B = 11, 22
KEY = "like/coffee"


def _tap(model: SequenceModel, at: float, local: int, value: bool, coalesced: bool) -> None:
    model.feed(
        OptimisticApplied(
            key=KEY,
            device_id=A,
            local_revision=local,
            server_revision=0,
            value=value,
            coalesced=coalesced,
        ),
        at,
    )


def _sent(model: SequenceModel, at: float, local: int, value: bool, follow_up: bool) -> None:
    model.feed(
        RequestSent(
            key=KEY,
            device_id=A,
            local_revision=local,
            server_revision=0,
            value=value,
            follow_up=follow_up,
        ),
        at,
    )


def _model() -> SequenceModel:
    model = SequenceModel()
    model.add_lane(A, "Device A")
    model.add_lane(B, "Device B")
    return model


def _burst(model: SequenceModel) -> None:
    """Three taps: the first is sent, two coalesce into one follow-up, then both acks."""
    _tap(model, 0.0, 1, True, False)
    _sent(model, 0.001, 1, True, False)
    _tap(model, 0.05, 2, False, True)
    _tap(model, 0.10, 3, True, True)
    model.feed(
        FollowUpScheduled(
            key=KEY,
            device_id=A,
            local_revision=3,
            server_revision=0,
            sent_local_revision=1,
            value=True,
        ),
        0.6,
    )
    _sent(model, 0.6, 3, True, True)
    model.feed(
        ResponseApplied(key=KEY, device_id=A, local_revision=3, server_revision=2, response=True),
        1.2,
    )
    model.feed(
        SyncFinished(key=KEY, device_id=A, local_revision=3, server_revision=2, requests=2), 1.2
    )


def test_taps_become_dots_and_requests_become_set_arrows() -> None:
    """One tap and its request: a dot on the device lane, an arrow to the server carrying it."""
    model = _model()
    _tap(model, 0.0, 1, True, False)
    _sent(model, 0.0, 1, True, False)

    [dot] = model.dots()
    [arrow] = model.arrows()
    assert (dot.device_id, dot.value, dot.local_revision) == (A, True, 1)
    assert (arrow.kind, arrow.device_id, arrow.end) == ("set", A, None)
    assert arrow.dots == [dot.id]
    assert dot.request == arrow.id
    assert model.lanes[0].id == SERVER_LANE


def test_a_coalesced_burst_is_grouped_under_the_follow_up_that_carries_it() -> None:
    """Taps made while a request is in flight ride on one follow-up, linked to its ack."""
    model = _model()
    _burst(model)

    first, ack_1, follow_up, ack_2 = model.arrows()
    assert (first.kind, follow_up.kind) == ("set", "follow-up")
    assert len(first.dots) == 1
    assert len(follow_up.dots) == 2
    carried = [model.elements[d] for d in follow_up.dots]
    assert all(isinstance(dot, Dot) and dot.coalesced for dot in carried)
    assert ack_1.kind == "ack"
    assert ack_1.answers == first.id
    assert follow_up.follows == ack_1.id
    assert ack_2.answers == follow_up.id
    assert ack_2.server_revision == 2
    assert ack_1.value is True  # the value it acknowledges, not the one that moved on
    assert "follow-up" in ack_1.note
    assert "stored your write at rev 2" in ack_2.note
    assert follow_up.label == "♥ L3 rev 2"


def test_arrows_are_labelled_with_value_local_and_server_revision() -> None:
    """A confirmed request reads value, local and server revision; its commit is on the server."""
    model = _model()
    _tap(model, 0.0, 1, True, False)
    _sent(model, 0.0, 1, True, False)
    model.feed(
        ResponseApplied(key=KEY, device_id=A, local_revision=1, server_revision=7, response=True),
        0.6,
    )
    request, ack = model.arrows()
    [commit] = model.commits()
    assert request.label == "♥ L1 rev 7"
    assert ack.label == "ack ♥ L1 rev 7"
    assert commit.server_revision == 7
    assert commit.writer == A
    assert request.end == commit.at == ack.start


def test_the_ack_that_schedules_a_follow_up_learns_its_revision_from_the_feed() -> None:
    """Once the feed says which revision the first request got, its ack is labelled with it."""
    model = _model()
    _burst(model)
    model.server_writes([(KEY, True, 1, A, 1, DEFAULT_SPACE)], 0.3)
    first, ack_1, _follow_up, _ack_2 = model.arrows()
    assert first.server_revision == 1
    assert ack_1.label == "ack ♥ L1 rev 1"


def test_the_servers_feed_places_the_commit_and_ends_the_request_there() -> None:
    """A commit seen on the observer feed names its writer and ends that writer's request."""
    model = _model()
    _tap(model, 0.0, 1, True, False)
    _sent(model, 0.0, 1, True, False)
    model.server_writes([(KEY, True, 4, A, 1, DEFAULT_SPACE)], 0.3)
    [request] = model.arrows()
    [commit] = model.commits()
    assert request.end == 0.3
    assert request.server_revision == 4
    assert commit.writer == A


def test_pushes_stale_pushes_and_self_echoes_are_drawn_distinctly() -> None:
    """Each push outcome gets its own kind and an explanation for the hover."""
    model = _model()
    model.feed(
        PushApplied(
            key=KEY,
            device_id=B,
            local_revision=0,
            server_revision=5,
            from_device_id=A,
            push_local_revision=1,
        ),
        1.0,
    )
    model.feed(
        PushIgnoredStale(
            key=KEY,
            device_id=B,
            local_revision=0,
            server_revision=5,
            push_revision=5,
            from_device_id=A,
        ),
        1.1,
    )
    model.feed(
        SelfEchoAcknowledged(
            key=KEY, device_id=A, local_revision=3, server_revision=5, push_local_revision=1
        ),
        1.2,
    )
    model.feed(
        PushApplied(
            key=KEY,
            device_id=A,
            local_revision=3,
            server_revision=6,
            from_device_id=A,
            push_local_revision=3,
        ),
        1.3,
    )
    kinds = [arrow.kind for arrow in model.arrows()]
    assert kinds == ["push", "stale-push", "echo", "own-push"]
    push, stale, echo, own = model.arrows()
    assert "Device A wrote rev 5" in model.explain(push)
    assert "second copy of rev 5" in model.explain(stale)
    assert "not re-applied" in model.explain(echo)
    assert "Push of your own write, stored at rev 6" in model.explain(own)


def test_an_ignored_ack_is_explained() -> None:
    """An ack older than a push already applied is drawn as ignored and says which write won."""
    model = _model()
    _sent(model, 0.0, 1, True, False)
    model.feed(
        StaleResponseIgnored(
            key=KEY, device_id=A, local_revision=1, server_revision=9, response_revision=8
        ),
        0.5,
    )
    _, stale = model.arrows()
    assert stale.kind == "stale-ack"
    assert "newer write (rev 9)" in model.explain(stale)


def test_a_failed_request_is_answered_by_a_failed_arrow() -> None:
    """An injected failure ends the request with a failed arrow back to the device."""
    model = _model()
    _sent(model, 0.0, 1, True, False)
    model.feed(
        SyncFailed(
            key=KEY,
            device_id=A,
            local_revision=1,
            server_revision=0,
            error=RuntimeError("injected_failure"),
            requests=1,
        ),
        2.0,
    )
    _, failed = model.arrows()
    assert failed.kind == "failed"
    assert "injected_failure" in failed.note


def test_selecting_an_arrow_finds_the_same_write_on_every_lane() -> None:
    """The request, its commit, its ack, its taps and the push to another device are one write."""
    model = _model()
    _tap(model, 0.0, 1, True, False)
    _sent(model, 0.0, 1, True, False)
    model.feed(
        PushApplied(
            key=KEY,
            device_id=B,
            local_revision=0,
            server_revision=3,
            from_device_id=A,
            push_local_revision=1,
        ),
        0.3,
    )
    model.feed(
        ResponseApplied(key=KEY, device_id=A, local_revision=1, server_revision=3, response=True),
        0.6,
    )
    push = next(a for a in model.arrows() if a.kind == "push")
    related = model.related(push.id)
    kinds = {type(model.elements[i]).__name__ for i in related}
    assert kinds == {"Arrow", "Dot", "Commit"}
    assert {a.kind for a in model.arrows() if a.id in related} == {"set", "push", "ack"}
    commit = model.commits()[0]
    assert commit.at == 0.3  # the push reached B before the ack came back to A


def test_offline_requests_are_queued_until_the_reconnect() -> None:
    """A request made offline is drawn as waiting and leaves when the device is back online."""
    model = _model()
    model.set_online(A, False, 0.0)
    _sent(model, 1.0, 1, True, False)
    [request] = model.arrows()
    assert request.queued
    assert "offline" in request.note
    model.set_online(A, True, 5.0)
    assert not request.queued
    assert request.start == 5.0


def test_layout_spreads_bursts_and_cuts_idle_gaps() -> None:
    """Taps 1 ms apart are still min_step apart; a minute of nothing is a short break."""
    model = SequenceModel(px_per_second=100, min_step=8, max_gap=1.0)
    _tap(model, 0.0, 1, True, False)
    _tap(model, 0.001, 2, False, True)
    _tap(model, 60.0, 3, True, True)
    assert model.y(0.001) - model.y(0.0) == 8
    assert model.y(60.0) - model.y(0.001) < 100
    assert [round(b.seconds) for b in model.breaks] == [60]
    assert model.y(0.0005) == 4  # between events: interpolated


def test_filter_and_clear() -> None:
    """Elements can be read for one key only, and clearing forgets them all but keeps lanes."""
    model = _model()
    _burst(model)
    _tap(model, 2.0, 4, False, False)
    other = OptimisticApplied(
        key="like/book",
        device_id=B,
        local_revision=1,
        server_revision=0,
        value=True,
        coalesced=False,
    )
    model.feed(other, 2.1)
    assert {e.key for e in model.items("like/book")} == {"like/book"}
    assert model.keys() == ["like/book", KEY]
    model.clear()
    assert not list(model.items())
    assert len(model.lanes) == 3


def test_taps_that_return_to_the_value_in_flight_join_its_group() -> None:
    """Taps ending on the value already sent need no follow-up: they are grouped with it."""
    model = _model()
    _tap(model, 0.0, 1, True, False)
    _sent(model, 0.0, 1, True, False)
    _tap(model, 0.1, 2, False, True)
    _tap(model, 0.2, 3, True, True)
    model.feed(
        ResponseApplied(key=KEY, device_id=A, local_revision=3, server_revision=4, response=True),
        0.6,
    )
    model.feed(
        SyncFinished(key=KEY, device_id=A, local_revision=3, server_revision=4, requests=1), 0.6
    )
    [request, _ack] = model.arrows()
    assert len(request.dots) == 3
    assert "no follow-up was needed" in model.explain(model.elements[request.dots[-1]])


def test_the_late_push_of_a_devices_own_write_says_its_ack_came_first() -> None:
    """With push jitter, a writer's own push can follow its ack: drawn stale, and said why."""
    model = _model()
    model.feed(
        PushIgnoredStale(
            key=KEY,
            device_id=A,
            local_revision=1,
            server_revision=4,
            push_revision=4,
            from_device_id=A,
        ),
        1.0,
    )
    [late] = model.arrows()
    assert late.kind == "stale-push"
    assert "came after its ack" in model.explain(late)


def test_the_ack_and_the_push_of_ones_own_write_are_labelled_apart() -> None:
    """Same value and revisions, different words: "push ♥ L1 rev 6" and "ack ♥ L1 rev 6"."""
    model = _model()
    _tap(model, 0.0, 1, True, False)
    _sent(model, 0.0, 1, True, False)
    model.feed(
        PushApplied(
            key=KEY,
            device_id=A,
            local_revision=1,
            server_revision=6,
            from_device_id=A,
            push_local_revision=1,
        ),
        0.3,
    )
    model.feed(
        ResponseApplied(key=KEY, device_id=A, local_revision=1, server_revision=6, response=True),
        0.6,
    )
    labels = {arrow.kind: arrow.label for arrow in model.arrows()}
    assert labels["own-push"] == "push ♥ L1 rev 6"
    assert labels["ack"] == "ack ♥ L1 rev 6"
    assert labels["set"] == "♥ L1 rev 6"
