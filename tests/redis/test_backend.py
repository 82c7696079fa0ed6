"""The Redis backend on its own: catching up from the log, and past its retention."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence

import pytest

from syncserver.backends import Write
from syncserver.backends.redis import RedisBackend
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


async def write_many(writer: Follower, count: int, keys: int) -> None:
    start = writer.backend.revision
    for n in range(count):
        writer.backend.submit(Write(f"k{n % keys}", b"%d" % n, 0, n + 1, 7))
    await writer.wait_for(lambda: writer.backend.revision == start + count)


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
    """Past the trimmed log, the process reloads the hash and reports each changed key once."""
    writer, reader = followers(log_retention=10), followers()
    await writer.backend.open()
    await reader.backend.open()
    await write_many(writer, 3, keys=3)
    await reader.wait_for(lambda: reader.backend.revision == 3)
    await reader.pause()
    await write_many(writer, 600, keys=20)  # MAXLEN ~ 10 trims whole nodes of 100
    reader.reported.clear()
    reader.resume()
    await reader.wait_for(lambda: reader.backend.revision == 603)
    revisions = [w.revision for w in reader.reported]
    assert revisions == sorted(revisions)
    assert len(reader.reported) == 20, "one report per changed key"
    # A reload reads registers, not the log: the writes' prev is not in them.
    assert _registers(reader.backend.values.values()) == _registers(writer.backend.values.values())
    assert _registers(reader.backend.changed_since(0)) == _registers(
        writer.backend.changed_since(0)
    )


def _registers(writes: Iterable[Write]) -> list[tuple[str, bytes, int, int, int, str]]:
    return sorted(
        (w.key, w.value, w.revision, w.local_revision, w.device_id, w.space) for w in writes
    )
