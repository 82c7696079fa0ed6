"""The Redis backend on its own: following only the spaces asked for, catching up
from the revision index, snapshot pages and lookups read from Redis, prev per
space, data from before spaces and before the index."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, cast

import msgspec
import pytest
import redis

from syncserver.backends import ChangePage, Write
from syncserver.backends.redis import RedisBackend, channel_name, registers_key
from syncserver.protocol import DEFAULT_SPACE
from tests.redis.conftest import RedisServer
from tests.timeouts import TIMEOUT


class Follower:
    """A RedisBackend whose reported writes are recorded; ``wait_for`` waits on a revision."""

    def __init__(self, url: str) -> None:
        self.reported: list[Write] = []
        self.failed: list[Write] = []
        self._changed = asyncio.Event()
        self.backend = RedisBackend(url, self._commit, self._fail)

    def _commit(self, writes: Sequence[Write]) -> None:
        self.reported += writes
        self._changed.set()

    def _fail(self, writes: Sequence[Write], exc: BaseException) -> None:
        self.failed += writes
        self._changed.set()

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not condition():
                await self._changed.wait()
                self._changed.clear()

    async def pause(self) -> None:
        """Stop following the channel, as a process cut off from Redis would."""
        follower = self.backend._follower
        assert follower is not None
        follower.cancel()
        with pytest.raises(asyncio.CancelledError):
            await follower

    def resume(self) -> None:
        self.backend._follower = asyncio.create_task(self.backend._follow_loop())

    async def follow(self, *spaces: str) -> None:
        """Follow ``spaces`` as a connection joining them would, until each is ready."""
        for space in spaces:
            ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            if not self.backend.follow(space, ready.set_result):
                assert await asyncio.wait_for(ready, TIMEOUT), f"could not follow {space}"

    async def page(
        self, space: str, after: int = 0, upto: int | None = None, budget: int = 1 << 20
    ) -> ChangePage:
        """One snapshot page, as the server reads it."""
        read: asyncio.Future[ChangePage | None] = asyncio.get_running_loop().create_future()
        self.backend.read_changes(space, after, upto, budget, read.set_result)
        page = await asyncio.wait_for(read, TIMEOUT)
        assert page is not None
        return page

    async def lookup(self, space: str, key: str) -> Write | None:
        found: asyncio.Future[Write | None] = asyncio.get_running_loop().create_future()
        self.backend.lookup(space, key, found.set_result, lambda: found.set_exception(OSError()))
        return await asyncio.wait_for(found, TIMEOUT)


@pytest.fixture
async def followers(redis_url: str) -> AsyncIterator[Callable[..., Follower]]:
    opened: list[Follower] = []

    def open_one() -> Follower:
        follower = Follower(redis_url)
        opened.append(follower)
        return follower

    yield open_one
    for follower in opened:
        await follower.backend.close()


async def write_many(
    writer: Follower, count: int, keys: int, spaces: tuple[str, ...] = (DEFAULT_SPACE,)
) -> None:
    """``count`` writes to ``keys`` keys, the nth in ``spaces[n % len(spaces)]``; the
    writer follows the spaces (as its connections would) and sees its writes back."""
    await writer.follow(*spaces)
    start = len(writer.reported)
    for n in range(count):
        space = spaces[n % len(spaces)]
        writer.backend.submit(Write(f"k{n % keys}", b"%d" % n, 0, n + 1, 7, space=space))
    await writer.wait_for(lambda: len(writer.reported) == start + count)


def registers(url: str, space: str) -> dict[str, tuple[Any, int]]:
    """A space's registers in Redis as key → (value, revision)."""
    client = redis.Redis.from_url(url)
    try:
        stored = cast("dict[bytes, bytes]", client.hgetall(registers_key(space)))
    finally:
        client.close()
    found = {}
    for key, value in stored.items():
        revision, _, entry = value.partition(b" ")
        found[key.decode()] = (msgspec.json.decode(entry)[1], int(revision))
    return found


def prev_chain(writes: list[Write], space: str) -> list[tuple[int, int]]:
    """``space``'s writes as (prev, revision), in the order reported."""
    return [(write.prev, write.revision) for write in writes if write.space == space]


def chained(pairs: list[tuple[int, int]], first_prev: int) -> bool:
    """Each write's prev is the revision before it, the first's ``first_prev``."""
    prevs = [prev for prev, _ in pairs]
    return prevs == [first_prev] + [revision for _, revision in pairs[:-1]]


async def test_a_process_receives_only_the_writes_of_the_spaces_it_follows(followers) -> None:
    """Redis fans out per space: a process following ``a`` gets a's writes, in
    order with prev chained, and never one of ``b``."""
    writer, reader = followers(), followers()
    await writer.backend.open()
    await reader.backend.open()
    await reader.follow("a")
    await write_many(writer, 40, keys=5, spaces=("a", "b"))
    await reader.wait_for(lambda: reader.backend.head("a") == writer.backend.head("a"))
    assert {w.space for w in reader.reported} == {"a"}
    pairs = prev_chain(reader.reported, "a")
    assert len(pairs) == 20
    assert chained(pairs, first_prev=0)
    assert reader.backend.followed == ["a"]
    assert reader.backend.head("b") == 0
    assert (writer.backend.count, writer.backend.spaces) == (10, 2), "counted as written"


async def test_a_process_stops_receiving_a_space_nobody_follows_any_more(followers) -> None:
    """Once the last user of a space leaves, the process unsubscribes: later writes
    of that space no longer reach it."""
    writer, reader = followers(), followers()
    await writer.backend.open()
    await reader.backend.open()
    await reader.follow("a", "b")
    await write_many(writer, 2, keys=2, spaces=("a", "b"))
    await reader.wait_for(lambda: len(reader.reported) == 2)
    reader.backend.unfollow("a")
    assert reader.backend.followed == ["b"]
    await write_many(writer, 4, keys=2, spaces=("a", "b"))
    await reader.wait_for(lambda: reader.backend.head("b") == writer.backend.head("b"))
    assert [w.space for w in reader.reported] == ["a", "b", "b", "b"]


async def test_a_process_that_missed_writes_catches_up_from_the_index(followers) -> None:
    """Writes made while a process was cut off reach it from the revision index:
    the newest write per key, in revision order, prev chained from its head."""
    writer, reader = followers(), followers()
    await writer.backend.open()
    await reader.backend.open()
    await reader.follow(DEFAULT_SPACE)
    await write_many(writer, 3, keys=3)
    await reader.wait_for(lambda: reader.backend.head(DEFAULT_SPACE) == 3)
    await reader.pause()
    await write_many(writer, 50, keys=10)
    reader.reported.clear()
    reader.resume()
    await reader.wait_for(lambda: reader.backend.head(DEFAULT_SPACE) == 53)
    assert [w.revision for w in reader.reported] == list(range(44, 54))
    assert chained(prev_chain(reader.reported, DEFAULT_SPACE), first_prev=3)
    assert [(w.key, w.value, w.local_revision, w.device_id) for w in reader.reported[:2]] == [
        ("k0", b"40", 41, 7),
        ("k1", b"41", 42, 7),
    ]


async def test_a_write_whose_publication_was_lost_is_still_reported_to_its_writer(
    followers,
) -> None:
    """A process' own write committed while its subscription was down, then replaced
    by another process' write, is still reported (its writer is owed an ack),
    before the newer write."""
    one, two = followers(), followers()
    await one.backend.open()
    await two.backend.open()
    await one.follow("a")
    await two.follow("a")
    await one.pause()
    mine = Write("k", b"1", 0, 1, 7, space="a")
    one.backend.submit(mine)
    await two.wait_for(lambda: len(two.reported) == 1)  # committed and published
    await write_many(two, 1, keys=1, spaces=("a",))
    one.resume()
    await one.wait_for(lambda: one.backend.head("a") == 2)
    assert one.reported[0] is mine
    assert [(w.revision, w.prev, w.value) for w in one.reported] == [(1, 0, b"1"), (2, 1, b"0")]
    assert one.backend.queued == 0


async def test_writes_of_two_processes_chain_prev_per_space(followers) -> None:
    """Interleaved writes from two processes into two spaces: every process sees each
    space's writes with prev = the space's previous revision, the first 0."""
    one, two = followers(), followers()
    await one.backend.open()
    await two.backend.open()
    await one.follow("a", "b")
    await two.follow("a", "b")
    for n in range(200):
        writer = one if n % 3 else two
        space = "a" if n % 2 else "b"
        writer.backend.submit(Write(f"k{n % 7}", b"%d" % n, 0, n + 1, 7, space=space))
    await one.wait_for(lambda: len(one.reported) == 200)
    await two.wait_for(lambda: len(two.reported) == 200)
    for follower in (one, two):
        assert sorted(w.revision for w in follower.reported) == list(range(1, 201))
        for space in ("a", "b"):
            pairs = prev_chain(follower.reported, space)
            assert len(pairs) == 100
            assert chained(pairs, first_prev=0)
            assert follower.backend.head(space) == pairs[-1][1]
    three = followers()
    await three.backend.open()
    assert (three.backend.spaces, three.backend.count) == (2, 14)


async def test_a_snapshot_page_comes_from_the_index_in_revision_order(
    redis_url: str, followers
) -> None:
    """A page holds the space's registers written after ``after``, oldest first,
    read at the space's head, without reading other spaces; a later page reads
    only up to the snapshot's revision."""
    process = followers()
    await process.backend.open()
    await write_many(process, 30, keys=10, spaces=("a", "b"))
    page = await process.page("a")
    revisions = [msgspec.json.decode(entry)["server_revision"] for entry in page.entries]
    assert revisions == sorted(w.revision for w in process.reported if w.space == "a")[-5:]
    assert (page.read_at, page.complete, page.last) == (29, True, 29)
    assert {key: revision for key, (_, revision) in registers(redis_url, "a").items()} == {
        msgspec.json.decode(entry)["key"]: msgspec.json.decode(entry)["server_revision"]
        for entry in page.entries
    }
    first = await process.page("a", budget=1)
    assert (len(first.entries), first.complete, first.last) == (1, False, revisions[0])
    rest = await process.page("a", after=first.last, upto=25)
    later = [msgspec.json.decode(entry)["server_revision"] for entry in rest.entries]
    assert later == [r for r in revisions[1:] if r <= 25]


async def test_a_first_page_read_ahead_of_the_process_waits_for_its_pushes(followers) -> None:
    """A first page read at a head this process has not reported yet is handed over
    once it has, exactly then: the head equals the page's revision."""
    writer, reader = followers(), followers()
    await writer.backend.open()
    await reader.backend.open()
    await reader.follow("a")
    await reader.pause()
    await write_many(writer, 6, keys=3, spaces=("a",))
    handed: list[tuple[int, int]] = []
    delivered = asyncio.Event()

    def deliver(page: ChangePage | None) -> None:
        assert page is not None
        handed.append((page.read_at, reader.backend.head("a")))
        delivered.set()

    read = reader.backend._read
    was_read = asyncio.Event()

    async def read_and_tell(*args: Any) -> Any:
        try:
            return await read(*args)
        finally:
            was_read.set()

    reader.backend._read = read_and_tell
    reader.backend.read_changes("a", 0, None, 1 << 20, deliver)
    await asyncio.wait_for(was_read.wait(), TIMEOUT)
    assert handed == []
    reader.resume()
    await asyncio.wait_for(delivered.wait(), TIMEOUT)
    assert handed == [(6, 6)]


async def test_a_lookup_reads_one_register_from_redis(followers) -> None:
    """``get`` reads the register in Redis, whether or not the process follows its space."""
    writer, reader = followers(), followers()
    await writer.backend.open()
    await reader.backend.open()
    await write_many(writer, 3, keys=2, spaces=("a",))
    found = await reader.lookup("a", "k0")
    assert found is not None
    assert (found.key, found.value, found.revision, found.space) == ("k0", b"2", 3, "a")
    assert await reader.lookup("a", "nothing") is None
    assert await reader.lookup("b", "k0") is None


async def test_data_from_before_spaces_and_the_index_is_indexed_once(
    redis_url: str, followers
) -> None:
    """Registers without space, prev, index or count (as an older optisync left
    them) are the default space: the first process indexes them by revision and
    counts them; the next write there has prev 3, one in a new space prev 0."""
    old = redis.Redis.from_url(redis_url)
    try:
        for revision, key in enumerate(["a", "b", "c"], start=1):
            entry = f'["{key}",{revision},{revision},5,1,{revision}]'
            old.hset("optisync:registers", key, f"{revision} {entry}")
        old.set("optisync:revision", 3)
        old.set("optisync:epoch", "old-epoch")
        process = followers()
        await process.backend.open()
        assert process.backend.epoch == "old-epoch"
        assert (process.backend.count, process.backend.spaces) == (3, 1)
        assert old.get("optisync:layout") == b"2"
        assert old.zrange("optisync:changes", 0, -1, withscores=True) == [
            (b"a", 1.0),
            (b"b", 2.0),
            (b"c", 3.0),
        ]
        assert old.hgetall("optisync:heads") == {b"default": b"3"}
        page = await process.page(DEFAULT_SPACE, after=1)
        assert [msgspec.json.decode(e)["key"] for e in page.entries] == ["b", "c"]
        await process.follow(DEFAULT_SPACE, "new")
        process.backend.submit(Write("a", b"10", 0, 4, 5))
        process.backend.submit(Write("a", b"11", 0, 5, 5, space="new"))
        await process.wait_for(lambda: len(process.reported) == 2)
        assert [(w.space, w.revision, w.prev) for w in process.reported] == [
            (DEFAULT_SPACE, 4, 3),
            ("new", 5, 0),
        ]
        assert old.hgetall("optisync:heads") == {b"default": b"4", b"new": b"5"}
        assert old.get("optisync:count") == b"4"
    finally:
        old.close()


async def test_writes_to_a_database_not_yet_indexed_are_refused_and_change_nothing(
    redis_url: str, followers
) -> None:
    """While the index is being built no write goes in: the writer hears of the
    failure and the counter and registers stay as they were."""
    process = followers()
    await process.backend.open()
    await write_many(process, 1, keys=1)
    old = redis.Redis.from_url(redis_url)
    try:
        old.delete("optisync:layout")
        process.backend.submit(Write("k0", b"9", 0, 2, 7))
        await process.wait_for(lambda: len(process.failed) == 1)
        assert old.get("optisync:revision") == b"1"
        assert registers(redis_url, DEFAULT_SPACE) == {"k0": (0, 1)}
    finally:
        old.close()


async def test_open_fails_at_once_when_subscribing_fails(followers) -> None:
    """A Redis that answers the ping but fails the subscription makes ``open()``
    raise that error, with nothing left running."""
    process = followers()

    class BrokenPubSub:
        async def subscribe(self, *channels: str) -> None:
            raise redis.ConnectionError("connection reset while subscribing")

        async def aclose(self) -> None:
            pass

    process.backend._redis.pubsub = BrokenPubSub
    with pytest.raises(redis.ConnectionError, match="while subscribing"):
        await asyncio.wait_for(process.backend.open(), TIMEOUT)
    follower = process.backend._follower
    assert follower is not None
    assert follower.done()


async def test_deployments_in_two_databases_of_one_redis_do_not_see_each_other(
    redis_server: RedisServer, followers
) -> None:
    """Redis' channels are shared by its databases: writes in database 1 never reach
    a process on database 0, which sees only its own revisions."""
    other = Follower(redis_server.url(1))
    await other.backend.open()
    try:
        ours = followers()
        await ours.backend.open()
        await write_many(other, 5, keys=5)
        await write_many(ours, 1, keys=1)
        await write_many(other, 5, keys=5)
        await write_many(ours, 1, keys=1)
        assert [(w.key, w.revision) for w in ours.reported] == [("k0", 1), ("k0", 2)]
        assert other.backend.revision == 10
    finally:
        await other.backend.close()


async def test_a_process_applies_each_write_with_the_prev_it_carries(
    redis_url: str, followers
) -> None:
    """The prev Redis gave a write is the one reported, not one the process works
    out itself: a write published with prev 1 in a space whose head here is 2 keeps 1."""
    process = followers()
    await process.backend.open()
    await write_many(process, 2, keys=2, spaces=("a",))
    assert process.backend.head("a") == 2
    other = redis.Redis.from_url(redis_url)
    try:
        other.publish(channel_name(0, "a"), '[[3,["z",1,1,9,1,1,"a",1]]]')
    finally:
        other.close()
    await process.wait_for(lambda: process.backend.head("a") == 3)
    late = process.reported[-1]
    assert (late.key, late.space, late.revision, late.prev) == ("z", "a", 3, 1)


async def test_close_ends_while_the_last_spaces_are_being_unsubscribed(followers) -> None:
    """Closing right after the last users of several spaces left (their
    unsubscription in flight, as when a server stops after its devices
    disconnected) ends: stopping the subscription task is not lost in it."""
    follower = followers()
    await follower.backend.open()
    spaces = [f"s{n}" for n in range(10)]
    await follower.follow(*spaces)
    for space in spaces:
        follower.backend.unfollow(space)
    closing = asyncio.create_task(follower.backend.close())
    done, _ = await asyncio.wait({closing}, timeout=TIMEOUT)
    assert closing in done, "close() did not end"
