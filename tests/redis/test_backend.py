"""The Redis backend on its own: catching up from the log and past its retention,
loading while others write, prev per space, data from before spaces."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
import redis

from syncserver.backends import Write
from syncserver.backends import redis as redis_backend
from syncserver.backends.redis import RedisBackend
from syncserver.protocol import DEFAULT_SPACE
from tests.redis.conftest import RedisServer
from tests.timeouts import TIMEOUT


class Follower:
    """A RedisBackend whose reported writes are recorded; ``wait_for`` waits on a revision."""

    def __init__(self, url: str, **options: int) -> None:
        self.reported: list[Write] = []
        self.failed: list[Write] = []
        self._changed = asyncio.Event()
        self.backend = RedisBackend(url, self._commit, self._fail, **options)

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


@pytest.fixture
async def followers(redis_url: str) -> AsyncIterator[Callable[..., Follower]]:
    opened: list[Follower] = []

    def open_one(**options: int) -> Follower:
        follower = Follower(redis_url, **options)
        opened.append(follower)
        return follower

    yield open_one
    for follower in opened:
        await follower.backend.close()


async def write_many(
    writer: Follower, count: int, keys: int, spaces: tuple[str, ...] = (DEFAULT_SPACE,)
) -> None:
    """``count`` writes to ``keys`` keys, the nth in ``spaces[n % len(spaces)]``."""
    start = writer.backend.revision
    for n in range(count):
        space = spaces[n % len(spaces)]
        writer.backend.submit(Write(f"k{n % keys}", b"%d" % n, 0, n + 1, 7, space=space))
    await writer.wait_for(lambda: writer.backend.revision == start + count)


def registers(follower: Follower, space: str) -> dict[str, tuple[bytes, int]]:
    """A space's registers as key → (value, revision)."""
    found = follower.backend.registers(space)
    return {key: (write.value, write.revision) for key, write in found.items()}


def prev_chain(writes: list[Write], space: str) -> list[tuple[int, int]]:
    """``space``'s writes as (prev, revision), in the order reported."""
    return [(write.prev, write.revision) for write in writes if write.space == space]


def chained(pairs: list[tuple[int, int]], first_prev: int) -> bool:
    """Each write's prev is the revision before it, the first's ``first_prev``."""
    prevs = [prev for prev, _ in pairs]
    return prevs == [first_prev] + [revision for _, revision in pairs[:-1]]


async def test_a_process_that_missed_writes_catches_up_from_the_log(followers) -> None:
    """Writes made while a process was not following reach it in order, each once."""
    writer, reader = followers(), followers()
    await writer.backend.open()
    await reader.backend.open()
    await reader.pause()
    await write_many(writer, 50, keys=10)
    reader.resume()
    await reader.wait_for(lambda: reader.backend.revision == 50)
    assert [w.revision for w in reader.reported] == list(range(1, 51))
    assert [(w.key, w.value, w.local_revision, w.device_id) for w in reader.reported[:2]] == [
        ("k0", b"0", 1, 7),
        ("k1", b"1", 2, 7),
    ]
    assert reader.backend.values == writer.backend.values


async def test_a_process_behind_the_log_retention_reloads_every_register(followers) -> None:
    """Past the trimmed log, the process reloads every space and reports each changed
    key once, its prev the revision of the register before it in its space."""
    writer, reader = followers(log_retention=10), followers()
    await writer.backend.open()
    await reader.backend.open()
    await write_many(writer, 3, keys=3)
    await reader.wait_for(lambda: reader.backend.revision == 3)
    await reader.pause()
    # MAXLEN ~ 10 trims whole nodes of 100; even keys in default, odd ones in "a".
    await write_many(writer, 600, keys=20, spaces=(DEFAULT_SPACE, "a"))
    reader.reported.clear()
    reader.resume()
    await reader.wait_for(lambda: reader.backend.revision == 603)
    revisions = [w.revision for w in reader.reported]
    assert revisions == sorted(revisions)
    assert len(reader.reported) == 20, "one report per changed key"
    # k1 (revision 2) is the newest default register the reload left as it was.
    assert chained(prev_chain(reader.reported, DEFAULT_SPACE), first_prev=2)
    assert chained(prev_chain(reader.reported, "a"), first_prev=0)
    for space in (DEFAULT_SPACE, "a"):
        assert registers(reader, space) == registers(writer, space)
        assert reader.backend.head(space) == writer.backend.head(space)
    assert reader.backend.count == writer.backend.count == 21


async def test_writes_of_two_processes_chain_prev_per_space(followers) -> None:
    """Interleaved writes from two processes into two spaces: every process sees each
    space's writes with prev = the space's previous revision, the first 0."""
    one, two = followers(), followers()
    await one.backend.open()
    await two.backend.open()
    for n in range(200):
        writer = one if n % 3 else two
        space = "a" if n % 2 else "b"
        writer.backend.submit(Write(f"k{n % 7}", b"%d" % n, 0, n + 1, 7, space=space))
    await one.wait_for(lambda: one.backend.revision == 200)
    await two.wait_for(lambda: two.backend.revision == 200)
    for follower in (one, two):
        assert [w.revision for w in follower.reported] == list(range(1, 201))
        for space in ("a", "b"):
            pairs = prev_chain(follower.reported, space)
            assert len(pairs) == 100
            assert chained(pairs, first_prev=0)
            assert follower.backend.head(space) == pairs[-1][1]
    assert {s: one.backend.head(s) for s in "ab"} == {s: two.backend.head(s) for s in "ab"}
    assert one.backend.spaces == two.backend.spaces == 2
    assert registers(one, "a") != registers(one, "b")


async def test_a_process_started_during_writes_loads_exactly_the_registers(
    followers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading page by page while another process writes between the pages: the
    loaded registers plus the writes reported after them equal the writer's, and
    each revision after the load is reported once, in order."""
    monkeypatch.setattr(redis_backend, "SCAN_PAGE", 5)
    writer = followers()
    await writer.backend.open()
    # Registers over 64 bytes: Redis keeps the hashes as tables, so HSCAN pages.
    padding = "x" * 64
    for n in range(400):
        space = "a" if n % 2 else "b"
        writer.backend.submit(Write(f"k{n % 300}", b'"%s"' % padding.encode(), 0, n, 8, space))
    await writer.wait_for(lambda: writer.backend.revision == 400)
    reader = followers()
    scan = reader.backend._redis.hscan
    written = 0

    async def scan_after_a_write(*args: Any, **kwargs: Any) -> Any:
        nonlocal written
        space = "a" if written % 2 else "b"
        value = b'"late %d"' % written
        writer.backend.submit(Write(f"k{written % 300}", value, 0, written, 8, space=space))
        written += 1
        await writer.wait_for(lambda: writer.backend.revision == 400 + written)
        return await scan(*args, **kwargs)

    reader.backend._redis.hscan = scan_after_a_write
    await reader.backend.open()
    assert written > 20, "the load read many pages, each after a write"
    loaded_at = reader.backend.revision
    await reader.wait_for(lambda: reader.backend.revision == writer.backend.revision)
    assert [w.revision for w in reader.reported] == list(range(loaded_at + 1, 401 + written))
    for space in ("a", "b"):
        assert registers(reader, space) == registers(writer, space)
        assert reader.backend.head(space) == writer.backend.head(space)


async def test_data_from_before_spaces_loads_as_the_default_space(
    redis_url: str, followers
) -> None:
    """Registers and log entries without space or prev (written by hand, as an older
    optisync left them) load as ``default``; its head is the counter, so the next
    write there has prev 3, and a write in a new space prev 0."""
    old = redis.Redis.from_url(redis_url)
    try:
        for revision, key in enumerate(["a", "b", "c"], start=1):
            entry = f'["{key}",{revision},{revision},5,1,{revision}]'
            old.hset("optisync:registers", key, f"{revision} {entry}")
            old.xadd("optisync:log", {"w": entry}, id=f"{revision}-0")
        old.set("optisync:revision", 3)
        old.set("optisync:epoch", "old-epoch")
        process = followers()
        await process.backend.open()
        assert process.backend.epoch == "old-epoch"
        assert registers(process, DEFAULT_SPACE) == {"a": (b"1", 1), "b": (b"2", 2), "c": (b"3", 3)}
        assert process.backend.head(DEFAULT_SPACE) == 3
        assert old.hgetall("optisync:heads") == {b"default": b"3"}
        process.backend.submit(Write("a", b"10", 0, 4, 5))
        process.backend.submit(Write("a", b"11", 0, 5, 5, space="new"))
        await process.wait_for(lambda: process.backend.revision == 5)
        assert [(w.space, w.revision, w.prev) for w in process.reported] == [
            (DEFAULT_SPACE, 4, 3),
            ("new", 5, 0),
        ]
        assert old.hgetall("optisync:heads") == {b"default": b"4", b"new": b"5"}
        assert old.hget("optisync:registers:new", "a") is not None
    finally:
        old.close()


async def test_an_entry_from_before_spaces_in_the_log_follows_the_default_head(
    redis_url: str, followers
) -> None:
    """A six-field entry an older process logged is applied in ``default`` with
    that space's head as prev."""
    process = followers()
    await process.backend.open()
    await write_many(process, 2, keys=2)
    await process.pause()
    old = redis.Redis.from_url(redis_url)
    try:
        old.xadd("optisync:log", {"w": '["z",true,1,9,1,1]'}, id="3-0")
        old.set("optisync:revision", 3)
    finally:
        old.close()
    process.resume()
    await process.wait_for(lambda: process.backend.revision == 3)
    late = process.reported[-1]
    assert (late.key, late.space, late.revision, late.prev) == ("z", DEFAULT_SPACE, 3, 2)


async def test_open_fails_at_once_when_loading_fails(followers) -> None:
    """A Redis that answers the ping but fails while the registers load makes
    ``open()`` raise that error, with nothing left running."""
    process = followers()

    async def broken_scan(*args: Any, **kwargs: Any) -> Any:
        raise redis.ConnectionError("connection reset while loading")

    process.backend._redis.hscan = broken_scan
    with pytest.raises(redis.ConnectionError, match="while loading"):
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
        ours.backend.submit(Write("mine", b"1", 0, 1, 3))
        await ours.wait_for(lambda: ours.backend.revision == 1)
        await write_many(other, 5, keys=5)
        ours.backend.submit(Write("mine", b"2", 0, 2, 3))
        await ours.wait_for(lambda: ours.backend.revision == 2)
        assert [(w.key, w.revision) for w in ours.reported] == [("mine", 1), ("mine", 2)]
        assert other.backend.revision == 10
        assert "mine" not in other.backend.values
    finally:
        await other.backend.close()


async def test_a_process_applies_each_write_with_the_prev_it_carries(
    redis_url: str, followers
) -> None:
    """The prev Redis gave a write is the one reported, not one the process works
    out itself: an entry logged with prev 1 in a space whose head here is 2 keeps 1."""
    process = followers()
    await process.backend.open()
    await write_many(process, 2, keys=2, spaces=("a",))
    assert process.backend.head("a") == 2
    await process.pause()
    other = redis.Redis.from_url(redis_url)
    try:
        other.xadd("optisync:log", {"w": '["z",1,1,9,1,1,"a",1]'}, id="3-0")
        other.set("optisync:revision", 3)
    finally:
        other.close()
    process.resume()
    await process.wait_for(lambda: process.backend.revision == 3)
    late = process.reported[-1]
    assert (late.key, late.space, late.revision, late.prev) == ("z", "a", 3, 1)
