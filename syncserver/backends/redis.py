"""The Redis backend: several syncserver processes share one Redis.

Theory of operation
-------------------
Redis holds everything; a process holds no copy of the registers. It follows
only the spaces its connections joined (:meth:`RedisBackend.follow`), reads
snapshots and ``get`` answers from Redis, and so starts at once and stays
small whatever the size of the database.

Writes. Every batch of writes is one Lua script call, which Redis runs
atomically: it takes the next revisions from one counter (``INCRBY``), gives
each write its ``prev`` (its space's head before it, from the ``heads``
hash) and moves that head, stores the register in its space's hash, indexes
it by revision in its space's sorted set (the ``changes`` index), and
``PUBLISH``es the batch's writes of each space on that space's channel.
Nothing else runs in between, so every space's ``prev`` chain has no holes
and a channel's messages come in revision order.

Following a space. A process subscribes to the space's channel; once Redis
confirms the subscription it reads the space's head, and from then on applies
what arrives on the channel in revision order: a write whose ``prev`` is
the space's head follows on; one whose ``prev`` is newer reveals missed
writes (the subscription dropped, Redis went away and came back), so the
process reads the space's registers written since its head from the index,
newest write per key, and reports them first. Every confirmation of an
already followed space (a resubscription) does the same catch-up. A process
also notices writes it made whose publication it never received (a watchdog
on its own script replies and on snapshot reads ahead of it) and catches up
the same way. Writes of spaces it does not follow never reach it: Redis fans
out per space.

Reads. A snapshot page is one script call per up to :data:`READ_PAGE`
registers: the space's head and the registers after a revision, from the
index, as of one instant. A first page read at a head this process has not
applied yet is handed over once it has (the pushes it still owes come after
the page, as the server's rule for snapshots wants). ``get`` is one ``HGET``.

Writes are grouped like SQLite's group commit: while one script call is in
flight, new writes queue up, and the next call carries all of them (up to
:data:`MAX_BATCH` writes or 1 MiB).

Acks: a process acks its own write when the write comes back through the
subscription. Redis sends that message, like every reply, only after the
script's effects are in the append-only file, and with ``appendfsync
always`` it fsyncs that file before answering anyone. So the promise matches
SQLite's ``synchronous=FULL``: an acked write survives a crash of Redis and
of its machine. With ``appendfsync everysec`` (Redis' default) up to a
second of acked writes can be lost when the machine (not just Redis) dies;
without ``appendonly yes`` a Redis restart loses everything since the last
RDB snapshot. The backend logs a warning at start when Redis is not set up
for the full promise.

Keys (all under ``optisync:`` in the URL's database):

* ``optisync:epoch``: the database's epoch, set with SETNX by the first
  process that finds none (a Redis that lost its data gets a new one);
* ``optisync:revision``: the counter, the newest revision ever assigned;
* ``optisync:heads``: hash, space → the revision of its newest write;
* ``optisync:registers`` (space ``default``) and
  ``optisync:registers:SPACE`` (every other space): hash, key →
  ``"REVISION ENTRY"``;
* ``optisync:changes`` and ``optisync:changes:SPACE``: sorted set, key
  scored by its register's revision (the index a catch-up reads);
* ``optisync:count``: how many registers there are in every space;
* ``optisync:layout``: ``2`` once the index and the count exist;
* ``optisync:devices``: hash, device id → the SHA-256 of its secret, set with
  HSETNX (the first process to record a device wins; records are never replaced);
* channel ``optisync:writes:DB:SPACE`` per space (DB: the URL's database
  number, as Redis' channels are shared by every database):
  ``[[REVISION,ENTRY],...]`` per script call that wrote to the space.

ENTRY is the JSON array ``[key, value, local_revision, device_id, origin,
sequence, space, prev]``; ``origin`` and ``sequence`` let the writing process
recognise its own writes when they come back.

Older databases. Data from before spaces (no ``heads`` hash, six-field
entries) is the space ``default``. Data from before the index (no
``layout``) is indexed by the first process that starts on it, once, a page
of registers at a time; writes wait meanwhile (the script refuses them, the
writers get ``unavailable`` and retry). Processes of earlier versions cannot
follow this layout: upgrade every process together.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, Final, cast

import msgspec
import redis.asyncio as redis_asyncio
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError, ResponseError

from ..protocol import DEFAULT_SPACE
from . import MAX_BATCH, ChangePage, CommitCallback, FailureCallback, Write
from .ordered import encode_entry

__all__ = [
    "LOST_LOG_INTERVAL",
    "READ_PAGE",
    "RedisBackend",
    "changes_key",
    "channel_name",
    "registers_key",
]

logger = logging.getLogger(__name__)

MAX_BATCH_BYTES: Final = 1024 * 1024
"""Most bytes of keys and values in one script call (and one published message)."""

READ_PAGE: Final = 1000
"""Registers read per script call (a snapshot page or a catch-up)."""

INDEX_PAGE: Final = 5000
"""Registers indexed per ``HSCAN`` when an older database gets its index."""

RECENT: Final = 2000
"""Writes kept for the observer feed (the newest this process applied)."""

WATCHDOG_INTERVAL: Final = 0.25
"""Seconds a followed space may stay behind a revision known to exist before
the process reads what it missed."""

STATS_INTERVAL: Final = 1.0
"""Seconds between two reads of the register and space counts."""

LOST_LOG_INTERVAL: Final = 30.0
"""Seconds between two "lost the Redis subscription" warnings while Redis stays down."""

LAYOUT: Final = "2"
"""The layout this version writes (the revision index and the count)."""

_PREFIX: Final = "optisync:"
_REGISTERS: Final = _PREFIX + "registers"
_CHANGES: Final = _PREFIX + "changes"

# KEYS: counter, heads, count, layout. ARGV: the channel prefix, then per write:
# space, its registers hash, its changes index, key, and ENTRY without its last
# field (prev) and closing bracket. Returns the first revision, then the
# register and space counts after the batch.
_WRITE_SCRIPT: Final = """
if redis.call('GET', KEYS[4]) ~= '2' then
  return redis.error_reply('OPTISYNC_INDEXING the database is being indexed; retry')
end
local n = (#ARGV - 1) / 5
local last = redis.call('INCRBY', KEYS[1], n)
local first = last - n + 1
local heads = {}
local published = {}
local order = {}
local added = 0
for i = 1, n do
  local at = 2 + 5 * (i - 1)
  local space = ARGV[at]
  local revision = string.format('%d', first + i - 1)
  local prev = heads[space]
  if prev == nil then
    prev = redis.call('HGET', KEYS[2], space) or '0'
    published[space] = {}
    order[#order + 1] = space
  end
  heads[space] = revision
  local entry = ARGV[at + 4] .. ',' .. prev .. ']'
  added = added + redis.call('HSET', ARGV[at + 1], ARGV[at + 3], revision .. ' ' .. entry)
  redis.call('ZADD', ARGV[at + 2], revision, ARGV[at + 3])
  local list = published[space]
  list[#list + 1] = '[' .. revision .. ',' .. entry .. ']'
end
local count = redis.call('INCRBY', KEYS[3], added)
for _, space in ipairs(order) do
  redis.call('HSET', KEYS[2], space, heads[space])
  redis.call('PUBLISH', ARGV[1] .. space, '[' .. table.concat(published[space], ',') .. ']')
end
return {first, count, redis.call('HLEN', KEYS[2])}
"""

# KEYS: counter, heads, epoch, layout. ARGV: an epoch to use if there is none
# yet, the default space's name. A counter without heads is data from before
# spaces: all of it the default space's. A database without a counter needs
# no index.
_START_SCRIPT: Final = """
redis.call('SETNX', KEYS[3], ARGV[1])
local counter = redis.call('GET', KEYS[1]) or '0'
if tonumber(counter) == 0 and not redis.call('GET', KEYS[4]) then
  redis.call('SET', KEYS[4], '2')
end
if redis.call('EXISTS', KEYS[2]) == 0 and tonumber(counter) > 0 then
  redis.call('HSET', KEYS[2], ARGV[2], counter)
end
return {counter, redis.call('GET', KEYS[3]), redis.call('GET', KEYS[4]) or ''}
"""

# KEYS: heads, the space's changes index, its registers, epoch. ARGV: space,
# after, upto ('': the head), count. The head and the registers written after
# ``after`` (at most ``upto``), oldest first, as of one instant.
_READ_SCRIPT: Final = """
local head = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local upto = head
if ARGV[3] ~= '' then upto = tonumber(ARGV[3]) end
local epoch = redis.call('GET', KEYS[4]) or ''
local keys = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[2], upto, 'LIMIT', 0, ARGV[4])
if #keys == 0 then return {head, {}, epoch} end
return {head, redis.call('HMGET', KEYS[3], unpack(keys)), epoch}
"""


class Entry(msgspec.Struct, array_like=True, frozen=True):
    """A write as stored and published (see the module docstring)."""

    key: str
    value: msgspec.Raw
    local_revision: int
    device_id: int
    origin: int
    sequence: int
    space: str = DEFAULT_SPACE
    prev: int = -1
    """-1: an entry from before spaces, which recorded no ``prev``."""


_decode_entry = msgspec.json.Decoder(Entry).decode
_decode_published = msgspec.json.Decoder(list[tuple[int, Entry]]).decode
_encode = msgspec.json.Encoder().encode


def channel_name(db: int, space: str) -> str:
    """The write channel of ``space`` in database ``db``: Redis' channels are not
    per database, so another database's deployment on the same Redis must not share it."""
    return f"{_PREFIX}writes:{db}:{space}"


def registers_key(space: str) -> str:
    """The hash that holds ``space``'s registers."""
    return _REGISTERS if space == DEFAULT_SPACE else f"{_REGISTERS}:{space}"


def changes_key(space: str) -> str:
    """The sorted set that indexes ``space``'s registers by revision."""
    return _CHANGES if space == DEFAULT_SPACE else f"{_CHANGES}:{space}"


class _Space:
    """One space this process follows."""

    __slots__ = (
        "behind_since",
        "head",
        "known",
        "name",
        "ready",
        "returned",
        "users",
        "waiting",
        "waits",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.users = 0
        """Connections that joined it (plus one while this process has writes of it in flight)."""
        self.ready = False
        """Subscribed, and the head read after the subscription."""
        self.head = 0
        """The newest revision of the space this process reported."""
        self.known = 0
        """The newest revision of the space this process knows Redis holds."""
        self.behind_since: float | None = None
        self.returned = 0
        """This process' writes of it that came back since the last report."""
        self.waiting: list[Callable[[bool], None]] = []
        """Users waiting for it to be ready."""
        self.waits: list[tuple[int, Callable[[], None]]] = []
        """Snapshot pages to hand over once the head reaches their revision."""


class RedisBackend:
    """Registers in Redis, shared by every syncserver process that names it."""

    def __init__(self, url: str, on_commit: CommitCallback, on_failure: FailureCallback) -> None:
        self.url = url
        self._on_commit = on_commit
        self._on_failure = on_failure
        self._redis: redis_asyncio.Redis = redis_asyncio.Redis.from_url(
            url,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
            socket_connect_timeout=5,
            health_check_interval=10,
        )
        self._db = int(self._redis.connection_pool.connection_kwargs.get("db", 0))
        self._channel_prefix = channel_name(self._db, "")
        self._counter = _PREFIX + "revision"
        self._epoch_key = _PREFIX + "epoch"
        self._heads_key = _PREFIX + "heads"
        self._count_key = _PREFIX + "count"
        self._layout_key = _PREFIX + "layout"
        self._devices_key = _PREFIX + "devices"
        self._devices: dict[int, bytes] = {}
        """Device secrets' digests this process has seen recorded (never replaced)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._write_script = self._redis.register_script(_WRITE_SCRIPT)
        self._start_script = self._redis.register_script(_START_SCRIPT)
        self._read_script = self._redis.register_script(_READ_SCRIPT)
        self._origin = secrets.randbits(62)
        self._sequence = itertools.count(1)
        self._revision = 0
        self._epoch = ""
        self._count = 0
        self._spaces_total = 0
        self._followed: dict[str, _Space] = {}
        self._recent: OrderedDict[tuple[str, str], Write] = OrderedDict()
        self._queue: list[Write] = []
        self._pending: dict[int, Write] = {}
        """This process' writes sent to Redis and not yet back through the subscription."""
        self._pubsub: PubSub | None = None
        self._subscribed: dict[str, _Space] = {}
        """The spaces asked of the current subscription (a space followed anew is asked again)."""
        self._wakeup = asyncio.Event()
        self._resubscribe = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None
        self._follower: asyncio.Task[None] | None = None
        self._subscriber: asyncio.Task[None] | None = None
        self._following = asyncio.Event()
        """Subscribed to Redis now."""
        self._reported = asyncio.Event()
        """Set whenever writes were reported (``close`` waits for its own)."""
        self._opened = False
        self._stats_at = 0.0
        self._closing = False
        self._stopping = False
        """Set as the tasks are cancelled: redis-py can swallow a cancellation that
        arrives mid-command, so the loops also end on this."""
        self.subscription_failures = 0
        """How often following the write channels failed (Redis down, say)."""

    # -- what the server reads ---------------------------------------------

    @property
    def revision(self) -> int:
        """The newest revision this process knows was assigned (its own writes,
        and what it applied of the spaces it follows)."""
        return self._revision

    @property
    def epoch(self) -> str:
        """The shared database's epoch."""
        return self._epoch

    @property
    def count(self) -> int:
        """How many registers there are, in every space: as of this process' last
        write, or of the last look (every second) if others wrote since."""
        return self._count

    @property
    def spaces(self) -> int:
        """How many spaces have registers (as up to date as :attr:`count`)."""
        return self._spaces_total

    @property
    def followed(self) -> list[str]:
        """The spaces this process follows."""
        return list(self._followed)

    @property
    def queued(self) -> int:
        """Writes not yet back through the subscription (or failed)."""
        return len(self._queue) + len(self._pending)

    def describe(self) -> str:
        """The Redis URL without its password."""
        parts = urllib.parse.urlsplit(self.url)
        netloc = parts.hostname or ""
        if parts.port is not None:
            netloc = f"{netloc}:{parts.port}"
        return "redis " + urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    def head(self, space: str) -> int:
        """The newest revision of ``space`` this process reported (0: none, or not followed)."""
        followed = self._followed.get(space)
        return 0 if followed is None else followed.head

    def reported(self, space: str) -> int:
        """:meth:`head`: each space comes in its own order."""
        return self.head(space)

    def newest(self) -> Iterator[Write]:
        """The newest writes this process applied (at most :data:`RECENT`), newest first."""
        return reversed(list(self._recent.values()))

    # -- following spaces ------------------------------------------------------

    def follow(self, space: str, done: Callable[[bool], None]) -> bool:
        """Subscribe to ``space``'s channel unless followed already (see ``Backend``)."""
        followed = self._followed.get(space)
        if followed is None:
            if not self._following.is_set():
                # Not subscribed to Redis now: say so rather than wait for it.
                asyncio.get_running_loop().call_soon(done, False)
                return False
            followed = self._followed[space] = _Space(space)
            self._resubscribe.set()
        followed.users += 1
        if followed.ready:
            return True
        followed.waiting.append(done)
        return False

    def unfollow(self, space: str) -> None:
        """One user fewer; unsubscribe once none is left."""
        followed = self._followed.get(space)
        if followed is not None:
            followed.users -= 1
            self._drop_if_unused(followed)

    def _drop_if_unused(self, followed: _Space) -> None:
        unused = followed.users <= 0 and not followed.waiting and not followed.waits
        if unused and self._followed.get(followed.name) is followed:
            del self._followed[followed.name]
            self._resubscribe.set()

    # -- reads -----------------------------------------------------------------

    def lookup(
        self,
        space: str,
        key: str,
        done: Callable[[Write | None], None],
        failed: Callable[[], None],
    ) -> None:
        """``HGET`` the register (see ``Backend``)."""
        self._spawn(self._lookup(space, key, done, failed))

    async def _lookup(
        self,
        space: str,
        key: str,
        done: Callable[[Write | None], None],
        failed: Callable[[], None],
    ) -> None:
        try:
            stored = cast("bytes | None", await self._redis.hget(registers_key(space), key))
        except (RedisError, OSError) as exc:
            logger.warning("could not read %r from Redis: %s", key, exc)
            failed()
            return
        done(None if stored is None else _stored_write(stored, space))

    def read_changes(
        self,
        space: str,
        after: int,
        upto: int | None,
        budget: int,
        done: Callable[[ChangePage | None], None],
    ) -> None:
        """Read a page from the space's index (see ``Backend``)."""
        self._spawn(self._read_page(space, after, upto, budget, done))

    async def _read_page(
        self,
        space: str,
        after: int,
        upto: int | None,
        budget: int,
        done: Callable[[ChangePage | None], None],
    ) -> None:
        entries: list[bytes] = []
        size = 0
        last = after
        read_at: int | None = None  # the head the page's first read saw
        try:
            while True:
                head, rows, _ = await self._read(space, last, read_at if upto is None else upto)
                if read_at is None:
                    read_at = head
                for stored in rows:
                    entry = encode_entry(_stored_write(stored, space))
                    if entries and size + len(entry) + 1 > budget:
                        page = ChangePage(entries, last, False, read_at)
                        self._hand_over(space, page, upto, done)
                        return
                    entries.append(entry)
                    size += len(entry) + 1
                    last = int(stored.partition(b" ")[0])
                if len(rows) < READ_PAGE:
                    break
        except (RedisError, OSError) as exc:
            logger.error("could not read %r's registers after revision %d: %s", space, after, exc)
            done(None)
            return
        self._hand_over(space, ChangePage(entries, last, True, read_at or 0), upto, done)

    def _hand_over(
        self,
        space: str,
        page: ChangePage,
        upto: int | None,
        done: Callable[[ChangePage | None], None],
    ) -> None:
        """Give ``done`` a snapshot's first page once this process reported every
        write up to the revision it was read at (they are on their way through
        the subscription), before any newer one; later pages at once."""
        followed = self._followed.get(space)
        if upto is not None or followed is None or followed.head >= page.read_at:
            done(page)
        else:
            followed.waits.append((page.read_at, lambda: done(page)))
            followed.waits.sort(key=_first)
            followed.known = max(followed.known, page.read_at)

    async def _read(self, space: str, after: int, upto: int | None) -> tuple[int, list[bytes], str]:
        reply = await self._read_script(
            keys=[self._heads_key, changes_key(space), registers_key(space), self._epoch_key],
            args=[space, after, "" if upto is None else upto, READ_PAGE],
        )
        head, rows, epoch = cast("tuple[int, list[bytes | None], bytes]", reply)
        return int(head), [row for row in rows if row is not None], _text(epoch)

    # -- lifecycle ----------------------------------------------------------

    async def open(self) -> None:
        """Connect, index an older database if need be, start following."""
        await self._redis.ping()
        await self._check_durability()
        await self._start()
        follower = self._follower = asyncio.create_task(
            self._follow_loop(), name="syncserver-redis-follow"
        )
        following = asyncio.create_task(self._following.wait())
        try:
            # Until subscribed, or until that failed (the follower then ends with why).
            await asyncio.wait((following, follower), return_when=asyncio.FIRST_COMPLETED)
            if not self._following.is_set():
                follower.result()
        except BaseException:
            following.cancel()
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
            await self._redis.aclose()
            raise
        self._opened = True
        self._committer = asyncio.create_task(self._commit_loop(), name="syncserver-redis-commit")
        self._subscriber = asyncio.create_task(
            self._subscribe_loop(), name="syncserver-redis-subscribe"
        )

    async def _start(self) -> None:
        """Read the epoch and the counter; index the database once if it has no index."""
        while True:
            counter, epoch, layout = await self._start_script(
                keys=[self._counter, self._heads_key, self._epoch_key, self._layout_key],
                args=[secrets.token_hex(16), DEFAULT_SPACE],
            )
            self._epoch = _text(epoch)
            self._revision = max(self._revision, int(counter))
            if _text(layout) == LAYOUT:
                await self._read_stats()
                return
            await self._index()

    async def _index(self) -> None:
        """Build the revision index and the count of a database from before them;
        one process does it while the others wait for it."""
        lock = _PREFIX + "indexing"
        if not await self._redis.set(lock, self._origin, nx=True, ex=60):
            logger.info("waiting for another process to index the Redis database")
            await asyncio.sleep(0.5)  # polling another process' progress, not a test wait
            return
        logger.warning("indexing the Redis database by revision (once, for this version)")
        count = 0
        for space in sorted({*map(_text, await self._redis.hkeys(self._heads_key)), DEFAULT_SPACE}):
            cursor = 0
            while True:
                reply = await self._redis.hscan(registers_key(space), cursor, count=INDEX_PAGE)
                cursor, page = cast("tuple[int, dict[bytes, bytes]]", reply)
                if page:
                    scores = {key: int(stored.partition(b" ")[0]) for key, stored in page.items()}
                    await self._redis.zadd(changes_key(space), scores)
                await self._redis.expire(lock, 60)
                if cursor == 0:
                    break
            count += await self._redis.hlen(registers_key(space))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._count_key, count)
            pipe.set(self._layout_key, LAYOUT)
            pipe.delete(lock)
            await pipe.execute()
        logger.warning("indexed %d registers", count)

    async def _read_stats(self) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(self._count_key)
            pipe.hlen(self._heads_key)
            count, spaces = await pipe.execute()
        self._count = int(count or 0)
        self._spaces_total = int(spaces)

    async def _check_durability(self) -> None:
        try:
            config = await self._redis.config_get("append*")
        except ResponseError:
            return  # CONFIG is often disabled on managed Redis; nothing to check then.
        settings = {_text(k): _text(v) for k, v in config.items()}
        if settings.get("appendonly") != "yes" or settings.get("appendfsync") != "always":
            logger.warning(
                "Redis runs with appendonly=%s appendfsync=%s: acknowledged writes can be "
                "lost in a crash; use appendonly yes and appendfsync always for the same "
                "promise as SQLite synchronous=FULL",
                settings.get("appendonly"),
                settings.get("appendfsync"),
            )

    async def ping(self) -> None:
        """Raise unless Redis answers now (``GET /healthz`` asks)."""
        await self._redis.ping()

    async def close(self) -> None:
        """Send whatever is queued, stop following, disconnect."""
        self._closing = True
        self._wakeup.set()
        if self._committer is not None:
            await self._committer
        if self._pending and self._follower is not None and not self._follower.done():
            # Let the subscription deliver the last writes, so their acks go out.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    while self._pending:
                        self._reported.clear()
                        await self._reported.wait()
        self._stopping = True
        tasks = [t for t in (self._subscriber, self._follower, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        # Their errors were said already (or raised by open()); a cancellation
        # of close() itself still propagates.
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._redis.aclose()

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- device credentials -------------------------------------------------

    def claim_device(
        self, device_id: int, digest: bytes, done: Callable[[bytes | None], None]
    ) -> None:
        """Record ``digest`` for a device with HSETNX unless one is recorded;
        ``done`` gets the recorded digest (None: Redis could not be asked)."""
        known = self._devices.get(device_id)
        if known is not None:
            done(known)
            return
        self._spawn(self._claim(device_id, digest, done))

    async def _claim(
        self, device_id: int, digest: bytes, done: Callable[[bytes | None], None]
    ) -> None:
        field = str(device_id)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hsetnx(self._devices_key, field, digest)
                pipe.hget(self._devices_key, field)
                _, recorded = await pipe.execute()
        except Exception as exc:
            logger.warning("could not check device %d's secret in Redis: %s", device_id, exc)
            done(None)
            return
        self._devices[device_id] = bytes(recorded)
        done(bytes(recorded))

    # -- writes -------------------------------------------------------------

    def submit(self, write: Write) -> None:
        """Queue a write; ``on_commit`` reports it once Redis has it durably."""
        if self._closing:
            raise RuntimeError("the backend is closing")
        self._queue.append(write)
        self._wakeup.set()

    def _take_batch(self) -> list[Write]:
        queue = self._queue
        size = 0
        count = 0
        for write in queue:
            size += len(write.key) + len(write.value)
            if count and (count >= MAX_BATCH or size > MAX_BATCH_BYTES):
                break
            count += 1
        batch = queue[:count]
        del queue[:count]
        return batch

    async def _commit_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = self._take_batch()
                sequences = [next(self._sequence) for _ in batch]
                args: list[str | bytes | int] = [self._channel_prefix]
                origin = self._origin
                for write, sequence in zip(batch, sequences, strict=True):
                    self._pending[sequence] = write
                    self._hold(write.space)
                    head = (
                        write.key,
                        msgspec.Raw(write.value),
                        write.local_revision,
                        write.device_id,
                        origin,
                        sequence,
                        write.space,
                    )
                    space = write.space
                    args += (space, registers_key(space), changes_key(space), write.key)
                    args.append(_encode(head)[:-1])
                try:
                    first, count, spaces = await self._write_script(
                        keys=[self._counter, self._heads_key, self._count_key, self._layout_key],
                        args=args,
                    )
                except (RedisError, OSError) as exc:
                    lost = (self._pending.pop(sequence, None) for sequence in sequences)
                    failed = [write for write in lost if write is not None]
                    for write in batch:
                        self.unfollow(write.space)
                    if failed:
                        self._on_failure(failed, exc)
                    continue
                self._count, self._spaces_total = int(count), int(spaces)
                self._replied(batch, sequences, int(first))
            if self._closing:
                return

    def _replied(self, batch: list[Write], sequences: list[int], first: int) -> None:
        """Redis assigned the batch's revisions: note them for the watchdog; a
        write a catch-up already passed (a newer write replaced it before its
        publication arrived) is reported now, still owed its ack."""
        late: list[Write] = []
        for offset, (write, sequence) in enumerate(zip(batch, sequences, strict=True)):
            revision = first + offset
            if not write.revision:
                write.revision = revision
            followed = self._followed.get(write.space)
            if followed is None:
                continue
            followed.known = max(followed.known, revision)
            if followed.ready and revision <= followed.head and sequence in self._pending:
                del self._pending[sequence]
                write.prev = 0  # older than what the space's devices have: nothing to count
                late.append(write)
                followed.users -= 1
        self._revision = max(self._revision, first + len(batch) - 1)
        self._report(late)
        for write in late:
            followed = self._followed.get(write.space)
            if followed is not None:
                self._drop_if_unused(followed)

    def _hold(self, space: str) -> None:
        """Keep following ``space`` until this process' write to it comes back."""
        followed = self._followed.get(space)
        if followed is None:
            followed = self._followed[space] = _Space(space)
            self._resubscribe.set()
        followed.users += 1

    # -- following the write channels ---------------------------------------

    async def _subscribe_loop(self) -> None:
        """Keep the subscription to the followed spaces' channels in step."""
        while not self._stopping:
            await self._resubscribe.wait()
            self._resubscribe.clear()
            pubsub = self._pubsub
            if pubsub is None:
                continue  # the follower subscribes to every followed space when back
            wanted = dict(self._followed)
            added = [space for space, f in wanted.items() if self._subscribed.get(space) is not f]
            dropped = [space for space in self._subscribed if space not in wanted]
            self._subscribed = wanted
            try:
                if added:
                    await pubsub.subscribe(*(self._channel_prefix + space for space in added))
                if dropped:
                    await pubsub.unsubscribe(*(self._channel_prefix + space for space in dropped))
            except (RedisError, OSError):
                pass  # the follower loses the connection too and subscribes again

    async def _follow_loop(self) -> None:
        delay = 0.05
        lost_logged: float | None = None
        lost_since_logged = 0
        control = self._channel_prefix.rstrip(":")
        while not self._stopping:
            pubsub = self._redis.pubsub()
            try:
                # A channel that carries nothing keeps the subscription open while
                # no space is followed.
                await pubsub.subscribe(control)
                self._subscribed = dict(self._followed)
                if self._subscribed:
                    await pubsub.subscribe(*(self._channel_prefix + s for s in self._subscribed))
                self._pubsub = pubsub
                self._resubscribe.set()
                delay = 0.05
                lost_logged = None
                checked = asyncio.get_running_loop().time()
                while not self._stopping:
                    message = await pubsub.get_message(timeout=WATCHDOG_INTERVAL)
                    if message is not None:
                        await self._on_message(message, control)
                    now = asyncio.get_running_loop().time()
                    if message is None or now - checked >= WATCHDOG_INTERVAL:
                        checked = now
                        await self._watchdog(now)
            except (RedisError, OSError) as exc:
                self._pubsub = None
                self._lost()
                if not self._opened:
                    raise  # open() fails with it
                # While Redis is down this repeats every second: say it once
                # per LOST_LOG_INTERVAL, with how often it happened meanwhile.
                lost_since_logged += 1
                self.subscription_failures += 1
                now = asyncio.get_running_loop().time()
                if lost_logged is None or now - lost_logged >= LOST_LOG_INTERVAL:
                    logger.warning(
                        "lost the Redis subscription (%s); retrying (%d times since last said)",
                        exc,
                        lost_since_logged,
                    )
                    lost_logged, lost_since_logged = now, 0
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            except Exception:
                self._pubsub = None
                self._lost()
                if not self._opened:
                    raise
                logger.exception("could not follow Redis; retrying in %.2f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _lost(self) -> None:
        """The subscription is gone: spaces still starting fail their users;
        the others catch up when subscribed again."""
        self._following.clear()
        for followed in list(self._followed.values()):
            if not followed.ready:
                waiting, followed.waiting = followed.waiting, []
                followed.users -= len(waiting)
                self._drop_if_unused(followed)
                for done in waiting:
                    done(False)

    async def _on_message(self, message: dict[str, Any], control: str) -> None:
        kind = _text(message.get("type"))
        channel = _text(message.get("channel"))
        if channel == control:
            if kind == "subscribe":
                self._following.set()
            return
        space = channel.removeprefix(self._channel_prefix)
        followed = self._followed.get(space)
        if followed is None:
            return  # unsubscribed since
        if kind == "subscribe":
            if followed.ready:
                await self._catch_up(followed)  # resubscribed: read what was missed
            else:
                await self._start_following(followed)
        elif kind == "message" and followed.ready:
            data = message.get("data")
            if isinstance(data, bytes):
                await self._on_writes(followed, _decode_published(data))

    async def _start_following(self, followed: _Space) -> None:
        """Subscribed: everything after the head read now arrives on the channel."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hget(self._heads_key, followed.name)
            pipe.get(self._epoch_key)
            head, epoch = await pipe.execute()
        if _text(epoch or b"") != self._epoch:
            await self._history_changed()
            return
        followed.head = followed.known = max(followed.head, int(head or 0))
        followed.ready = True
        # This process' writes made before the subscription: the head covers them.
        owed = self._superseded(followed, followed.head)
        for write in owed:
            write.prev = 0
        self._report(owed)
        followed.users -= followed.returned
        followed.returned = 0
        waiting, followed.waiting = followed.waiting, []
        for done in waiting:
            done(True)
        self._drop_if_unused(followed)

    async def _on_writes(self, followed: _Space, published: list[tuple[int, Entry]]) -> None:
        writes: list[Write] = []
        head = followed.head
        for revision, entry in published:
            if revision <= head:
                continue
            if entry.prev > head:
                # The writes in between never arrived: read them first.
                self._advance(followed, writes)
                writes = []
                await self._catch_up(followed)
                head = followed.head
                if revision <= head:
                    continue
            writes.append(self._write(followed, entry, revision, entry.prev))
            head = revision
        self._advance(followed, writes)

    def _advance(self, followed: _Space, writes: list[Write]) -> None:
        """Report ``writes`` (the space's next ones, in order); hand over each
        waiting page as the head passes its revision, before any newer write."""
        if not writes:
            return
        waits = followed.waits
        start = 0
        for index, write in enumerate(writes):
            if waits and waits[0][0] < write.revision:
                self._report_space(followed, writes[start:index])
                start = index
                while waits and waits[0][0] < write.revision:
                    waits.pop(0)[1]()
        self._report_space(followed, writes[start:])
        while waits and waits[0][0] <= followed.head:
            waits.pop(0)[1]()
        self._drop_if_unused(followed)

    def _report_space(self, followed: _Space, writes: list[Write]) -> None:
        if not writes:
            return
        followed.head = writes[-1].revision
        followed.known = max(followed.known, followed.head)
        followed.behind_since = None
        self._revision = max(self._revision, followed.head)
        recent = self._recent
        for write in writes:
            place = (write.space, write.key)
            recent.pop(place, None)
            recent[place] = write
        while len(recent) > RECENT:
            recent.popitem(last=False)
        self._report(writes)
        returned, followed.returned = followed.returned, 0
        followed.users -= returned  # the holds of this process' writes that came back

    def _write(self, followed: _Space, entry: Entry, revision: int, prev: int) -> Write:
        """The write ``entry`` stands for: this process' own object if it made it."""
        write = self._pending.pop(entry.sequence, None) if entry.origin == self._origin else None
        if write is None:
            return Write(
                key=entry.key,
                value=bytes(entry.value),
                revision=revision,
                local_revision=entry.local_revision,
                device_id=entry.device_id,
                space=entry.space,
                prev=prev,
            )
        write.revision = revision
        write.prev = prev
        followed.returned += 1
        return write

    def _report(self, writes: list[Write]) -> None:
        if not writes:
            return
        self._reported.set()
        try:
            self._on_commit(writes)
        except Exception:
            logger.exception("on_commit failed after revision %d", writes[-1].revision)

    async def _watchdog(self, now: float) -> None:
        """Catch up a space that stays behind a revision known to exist; read the counts."""
        for followed in list(self._followed.values()):
            if not followed.ready or followed.known <= followed.head:
                followed.behind_since = None
            elif followed.behind_since is None:
                followed.behind_since = now
            elif now - followed.behind_since >= WATCHDOG_INTERVAL:
                await self._catch_up(followed)
        if now - self._stats_at >= STATS_INTERVAL:
            self._stats_at = now
            await self._read_stats()

    async def _catch_up(self, followed: _Space) -> None:
        """Report the space's registers written since its head, from the index:
        the newest write per key, each with the one before it as ``prev``."""
        while True:
            head, rows, epoch = await self._read(followed.name, followed.head, None)
            if epoch != self._epoch or head < followed.head:
                await self._history_changed()
                return
            writes: list[Write] = []
            last = followed.head
            for stored in rows:
                revision_text, _, raw = stored.partition(b" ")
                entry = _decode_entry(raw)
                write = self._write(followed, entry, int(revision_text), last)
                write.space = followed.name
                writes.append(write)
                last = write.revision
            if len(rows) < READ_PAGE:
                writes += self._superseded(followed, head)
                writes.sort(key=_revision)
                prev = followed.head
                for write in writes:
                    write.prev = prev
                    prev = write.revision
                self._advance(followed, writes)
                if head > followed.head:  # the newest write is the head's
                    followed.head = head
                return
            self._advance(followed, writes)

    def _superseded(self, followed: _Space, head: int) -> list[Write]:
        """This process' writes of the space up to ``head`` that a newer write
        replaced before their publication arrived: committed, owed an ack."""
        owed = [
            sequence
            for sequence, write in self._pending.items()
            if write.space == followed.name and 0 < write.revision <= head
        ]
        followed.returned += len(owed)
        return [self._pending.pop(sequence) for sequence in owed]

    async def _history_changed(self) -> None:
        """Redis lost its data (or was replaced): start over with its new epoch;
        this process' writes in flight have an unknown outcome."""
        counter, epoch, _ = await self._start_script(
            keys=[self._counter, self._heads_key, self._epoch_key, self._layout_key],
            args=[secrets.token_hex(16), DEFAULT_SPACE],
        )
        logger.error(
            "Redis' history changed (epoch %s, revision %s): it lost acknowledged writes "
            "(was it restarted without its append-only file?); starting over",
            _text(epoch),
            _text(counter),
        )
        self._epoch = _text(epoch)
        self._revision = int(counter)
        pending, self._pending = list(self._pending.values()), {}
        for followed in self._followed.values():
            followed.head = followed.known = 0
            followed.ready = False
            waits, followed.waits = followed.waits, []
            for _, deliver in waits:
                deliver()
            followed.users = max(0, followed.users - sum(w.space == followed.name for w in pending))
        if pending:
            self._on_failure(pending, RedisError("Redis lost its data"))
        self._on_commit([])  # the server hears of the new history and closes every connection
        for followed in list(self._followed.values()):
            await self._start_following(followed)


def _stored_write(stored: bytes, space: str) -> Write:
    revision, _, raw = stored.partition(b" ")
    entry = _decode_entry(raw)
    return Write(
        entry.key, bytes(entry.value), int(revision), entry.local_revision, entry.device_id, space
    )


def _first(wait: tuple[int, Callable[[], None]]) -> int:
    return wait[0]


def _revision(write: Write) -> int:
    return write.revision


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
