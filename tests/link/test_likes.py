"""The likes cubit and the session's seams, driven without a network."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from app.link import (
    DeviceInUseError,
    DeviceSession,
    Intent,
    KeyStatus,
    LikesCubit,
    LikesState,
    MemoryStore,
    SyncPhase,
    Transport,
    like_key,
)
from app.link.store import StoredState
from app.sync import DeviceContext
from syncserver.protocol import Ack, Push, Snapshot, SnapshotEntry, Value
from tests.timeouts import TIMEOUT

from .helpers import CATALOGUE, eventually


class HeldBackend:
    """Answers nothing until told: records every set it is asked for."""

    def __init__(self) -> None:
        self.sets: list[tuple[str, Any, int]] = []
        self.replies: list[asyncio.Future[Ack]] = []
        self.arrived = asyncio.Event()

    async def set(self, key: str, value: Any, local_revision: int) -> Ack:
        self.sets.append((key, value, local_revision))
        reply: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        self.replies.append(reply)
        self.arrived.set()
        return await reply

    async def get(self, key: str) -> Value:
        raise AssertionError("no reload expected")


def _push(item_id: str, revision: int, liked: bool = True) -> Push:
    return Push(like_key(item_id), liked, revision, 1, 42)


async def test_a_pushes_frame_is_one_state_change_and_one_emit() -> None:
    """Three pushes applied together reach subscribers as one new state."""
    cubit = LikesCubit(CATALOGUE, HeldBackend(), device=DeviceContext(7))
    emitted: list[LikesState] = []
    cubit.subscribe(emitted.append)
    cubit.apply_pushes([_push("tea", 1), _push("jam", 2), _push("fig", 3)])
    assert len(emitted) == 1
    assert [emitted[0].liked(i) for i in ("tea", "jam", "fig")] == [True, True, True]
    assert [cubit.server_revision(i) for i in ("tea", "jam", "fig")] == [1, 2, 3]


async def test_a_frame_touching_one_key_many_times_emits_one_state_with_its_final_status() -> None:
    """Five pushes for one key in one frame: one emit, the last value, the intent
    superseded, and the status the last push calls for (overridden by its writer)."""
    restored = {"tea": Intent(True, 1, -1)}
    cubit = LikesCubit(CATALOGUE, HeldBackend(), device=DeviceContext(7), intents=restored)
    assert cubit.state.status("tea").phase is SyncPhase.SAVING
    emitted: list[LikesState] = []
    cubit.subscribe(emitted.append)
    cubit.apply_pushes([_push("tea", rev, liked=rev % 2 == 0) for rev in range(1, 6)])
    assert len(emitted) == 1
    assert emitted[0] is cubit.state
    assert emitted[0].liked("tea") is False
    assert "tea" not in emitted[0].intents
    assert emitted[0].status("tea") == KeyStatus(SyncPhase.OVERRIDDEN, 42, 5)


async def test_a_frame_ends_where_its_pushes_applied_one_by_one_end() -> None:
    """News, a stale push, our own older echo and our newest echo in one frame give
    the state (values, intents, statuses) that applying them one at a time gives."""
    pushes = [
        _push("tea", 4),
        Push(like_key("jam"), False, 5, 2, 7),  # our older request's echo
        _push("tea", 3, liked=False),  # stale
        _push("fig", 6),
        Push(like_key("jam"), True, 7, 3, 7),  # our newest request's echo
        _push("fig", 8, liked=False),
    ]
    cubits = []
    for _ in range(2):
        restored = {"jam": Intent(True, 3, -1), "fig": Intent(True, 1, -1)}
        cubits.append(
            LikesCubit(CATALOGUE, HeldBackend(), device=DeviceContext(7), intents=restored)
        )
    by_frame, one_by_one = cubits
    emitted: list[LikesState] = []
    by_frame.subscribe(emitted.append)
    by_frame.apply_pushes(pushes)
    for push in pushes:
        one_by_one.apply_push(push)
    assert len(emitted) == 1
    assert by_frame.state == one_by_one.state
    assert by_frame.state.status("jam") == KeyStatus(SyncPhase.SYNCED, None, 7)
    assert by_frame.state.status("fig") == KeyStatus(SyncPhase.OVERRIDDEN, 42, 8)
    assert not by_frame.state.intents


async def test_a_frame_of_stale_pushes_emits_nothing() -> None:
    """Pushes at or below the known revisions change no value or status: no emit."""
    cubit = LikesCubit(CATALOGUE, HeldBackend(), device=DeviceContext(7), revisions={"like/tea": 9})
    before = cubit.state
    emitted: list[LikesState] = []
    cubit.subscribe(emitted.append)
    cubit.apply_pushes([_push("tea", 8), _push("tea", 9)])
    assert emitted == []
    assert cubit.state is before


async def test_the_state_read_inside_a_batch_shows_the_changes_so_far() -> None:
    """Reading ``state`` mid-batch gives values and statuses up to date; subscribers
    still hear of the batch once, at its end."""
    cubit = LikesCubit(CATALOGUE, HeldBackend(), device=DeviceContext(7))
    emitted: list[LikesState] = []
    cubit.subscribe(emitted.append)
    with cubit.batch():
        cubit.apply_push(_push("jam", 3))
        assert cubit.state.liked("jam")
        assert cubit.state.status("jam").server_revision == 3
        cubit.apply_push(_push("fig", 4))
        assert emitted == []
    assert len(emitted) == 1
    assert emitted[0].liked("jam")
    assert emitted[0].liked("fig")
    assert emitted[0].status("fig") == KeyStatus(SyncPhase.SYNCED, None, 4)


async def test_a_new_history_unsets_keys_it_never_wrote_in_one_emit() -> None:
    """forget_history, a snapshot, then caught_up: keys absent from the new history
    show not liked at revision 0, written keys show the snapshot's value."""
    cubit = LikesCubit(
        CATALOGUE,
        HeldBackend(),
        device=DeviceContext(7),
        liked={"tea": True, "jam": True},
        revisions={"like/tea": 3, "like/jam": 4},
    )
    cubit.forget_history()
    assert cubit.state.status("tea").server_revision == 0
    emitted: list[LikesState] = []
    cubit.subscribe(emitted.append)
    cubit.apply_snapshot(Snapshot(1, [SnapshotEntry(like_key("jam"), False, 1, 1, 42)]))
    cubit.caught_up({like_key("jam")})
    assert len(emitted) == 2
    state = cubit.state
    assert (state.liked("tea"), state.liked("jam")) == (False, False)
    assert state.status("tea") == KeyStatus(SyncPhase.SYNCED, None, 0)
    assert state.status("jam") == KeyStatus(SyncPhase.SYNCED, None, 1)
    assert cubit.server_revision("tea") == 0


async def test_the_device_context_is_the_one_owner_of_server_revisions() -> None:
    """Statuses show the revision the core recorded; the state keeps no copy of it."""
    cubit = LikesCubit(CATALOGUE, HeldBackend(), device=DeviceContext(7), revisions={"like/tea": 4})
    assert not hasattr(cubit.state, "revisions")
    assert cubit.device.server_revision(like_key("tea")) == 4
    assert cubit.state.status("tea").server_revision == 4
    cubit.apply_push(_push("tea", 9, liked=False))
    assert cubit.device.server_revision(like_key("tea")) == 9
    assert cubit.state.status("tea").server_revision == 9


async def test_an_intent_carries_the_local_revision_its_request_carries() -> None:
    """The intent recorded for a tap has the core's local revision, also after a
    restart restored a higher one: no guessing."""
    backend = HeldBackend()
    restored = {"tea": Intent(True, 5, 2)}
    cubit = LikesCubit(CATALOGUE, backend, device=DeviceContext(7), intents=restored)
    completion = cubit.toggle_like("tea")
    await asyncio.wait_for(backend.arrived.wait(), TIMEOUT)
    assert cubit.state.intents["tea"].local_revision == 6
    assert backend.sets == [("like/tea", False, 6)]
    backend.replies[0].set_result(Ack(1, "like/tea", False, 3))
    await asyncio.wait_for(completion, TIMEOUT)
    assert not cubit.state.intents


async def test_a_memory_store_keeps_only_what_was_flushed_across_a_crash() -> None:
    """MemoryStore: puts survive flush and close, not a crash; a second load while
    open raises DeviceInUseError."""
    store = MemoryStore("A")
    assert await store.load() == StoredState()
    with pytest.raises(DeviceInUseError):
        await store.load()
    store.put_device_id(11)
    store.put_intent("like/tea", Intent(True, 1, -1))
    await store.flush()
    store.put_value("like/jam", True, 3)
    store.crash()
    stored = await store.load()
    assert stored.device_id == 11
    assert stored.intents == {"like/tea": Intent(True, 1, -1)}
    assert stored.values == {}
    store.put_epoch("e1")
    store.put_newest_seen(3)
    await store.close()
    stored = await store.load()
    assert (stored.epoch, stored.newest_seen) == ("e1", 3)


class NoServer:
    """A transport factory for a network that is down."""

    def __init__(self) -> None:
        self.attempts = 0

    async def __call__(self, url: str) -> Transport:
        self.attempts += 1
        raise ConnectionRefusedError(f"nothing listens at {url}")


async def test_a_session_runs_on_a_memory_store_and_a_given_transport() -> None:
    """DeviceSession.open(store=, connect=): the id is flushed to the store before
    any connection, the link dials through the given transport, and a reopen from
    the store restores the unsent tap."""
    store = MemoryStore("A")
    network = NoServer()
    session = await DeviceSession.open(
        "A", ["mem://server"], store=store, connect=network, catalogue=CATALOGUE
    )
    assert store.durable.device_id == session.device_id
    session.toggle_like("tea")
    await eventually(lambda: session.status.attempt >= 1, session)
    assert network.attempts >= 1
    await session.close()
    again = await DeviceSession.open(
        "A", ["mem://server"], store=store, connect=network, catalogue=CATALOGUE
    )
    try:
        assert again.device_id == session.device_id
        assert again.state.liked("tea")
        assert "tea" in again.state.intents
    finally:
        await again.close()


async def test_the_echo_of_an_own_pending_intent_is_logged_as_confirmed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A push of this device's own write settles its intent as confirmed, not superseded."""
    restored = {"tea": Intent(True, 1, -1)}
    cubit = LikesCubit(CATALOGUE, HeldBackend(), device=DeviceContext(7), intents=restored)
    with caplog.at_level(logging.INFO, logger="app.link.likes"):
        cubit.apply_pushes([Push(like_key("tea"), True, 1, 1, 7)])
    assert "tea" not in cubit.state.intents
    words = [record.getMessage() for record in caplog.records]
    assert words == ["intent for like/tea confirmed at server revision 1"]


async def test_another_devices_write_over_a_pending_intent_is_logged_as_superseded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A push of another device's write over a pending intent says it superseded it, and by whom."""
    restored = {"tea": Intent(True, 1, -1)}
    cubit = LikesCubit(CATALOGUE, HeldBackend(), device=DeviceContext(7), intents=restored)
    with caplog.at_level(logging.INFO, logger="app.link.likes"):
        cubit.apply_pushes([_push("tea", 1, liked=False)])
    words = [record.getMessage() for record in caplog.records]
    assert words == ["intent for like/tea superseded by server revision 1 from device 42"]
