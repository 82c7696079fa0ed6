"""The Redis backend: several syncserver processes share one Redis.

Theory of operation
-------------------
Redis assigns the order. Every batch of writes is one Lua script call, which
Redis runs atomically: it takes the next revisions from one counter
(``INCRBY``), gives each write its ``prev`` (its space's head before it, from
the ``heads`` hash) and moves that head, stores each register in its space's
hash, appends each write to a stream whose entry id is its revision, and
``PUBLISH``es the whole batch on one channel. Nothing else runs in between,
so revision order, log order and publish order are the same thing across
every server process, and every space's ``prev`` chain has no holes.

There is one channel and one stream for every space: each process receives
every write and hands it to the server (``on_commit``), which pushes it only
to its connections that joined the write's space. A process applies what
arrives strictly in revision order: it updates its in-memory copy of that
space's registers and its head, acks its own writes and reports everything.
A message that skips revisions (the subscription dropped, or Redis went away
and came back) makes the process read the missing revisions from the stream
first; if the stream no longer reaches back that far (see retention below),
it reloads every space's registers instead and reports the registers that
changed, newest revision per key, each with the revision of the register
before it in its space as ``prev``. A process also notices writes it made
whose publication it never received (a watchdog on its own script replies)
and reads them from the log.

Loading reads each space's hash a page at a time (``HSCAN``), so no single
Redis call grows with the database; the pages are not one snapshot, so the
load then reads the log written meanwhile and keeps the newest revision per
key, which gives the registers exactly as of the counter read at the end.

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
* ``optisync:log``: stream, entry id ``REVISION-0``, field ``w`` = ENTRY,
  trimmed with ``XADD ... MAXLEN ~ log_retention`` (default 100,000: at
  least the newest 100,000 writes are kept, a few more until Redis trims a
  whole node);
* ``optisync:devices``: hash, device id → the SHA-256 of its secret, set with
  HSETNX (the first process to record a device wins; records are never replaced);
* channel ``optisync:writes`` (database 0; ``optisync:writes:dbN`` for
  database N, as Redis' channels are shared by every database):
  ``"FIRST [ENTRY,...]"`` per script call.

ENTRY is the JSON array ``[key, value, local_revision, device_id, origin,
sequence, space, prev]``; ``origin`` and ``sequence`` let the writing process
recognise its own writes when they come back. Data from before spaces (no
``heads`` hash, six-field entries) is the space ``default``: the first
process to find a counter but no ``heads`` records the counter as
``default``'s head, and a six-field entry gets its space's head as ``prev``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import secrets
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, cast

import msgspec
import redis.asyncio as redis_asyncio
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError, ResponseError

from ..protocol import DEFAULT_SPACE
from . import MAX_BATCH, ChangePage, CommitCallback, FailureCallback, Write
from .ordered import RevisionLog, SpaceLogs

__all__ = [
    "DEFAULT_LOG_RETENTION",
    "LOST_LOG_INTERVAL",
    "RedisBackend",
    "channel_name",
    "registers_key",
]

logger = logging.getLogger(__name__)

DEFAULT_LOG_RETENTION: Final = 100_000
"""Writes the stream keeps at least; older clients get a full snapshot."""

MAX_BATCH_BYTES: Final = 1024 * 1024
"""Most bytes of keys and values in one script call (and one published message)."""

CATCH_UP_PAGE: Final = 1000
"""Log entries read per ``XRANGE`` when catching up."""

SCAN_PAGE: Final = 5000
"""Registers asked for per ``HSCAN`` when loading."""

FREEZE_AT: Final = 100_000
"""Registers from which a load moves every object out of the garbage collector's reach."""

WATCHDOG_INTERVAL: Final = 0.25
"""Seconds without a message after which the process checks for missed writes."""

LOST_LOG_INTERVAL: Final = 30.0
"""Seconds between two "lost the Redis subscription" warnings while Redis stays down."""

_PREFIX: Final = "optisync:"
_REGISTERS: Final = _PREFIX + "registers"

# KEYS: counter, heads, log. ARGV: channel, retention, the default space's
# name, then per write: space, its registers hash, key, and ENTRY without its
# last field (prev) and closing bracket. A counter without heads is data from
# before spaces: all of it the default space's.
_WRITE_SCRIPT: Final = """
if redis.call('EXISTS', KEYS[2]) == 0 then
  local counter = tonumber(redis.call('GET', KEYS[1]) or '0')
  if counter > 0 then redis.call('HSET', KEYS[2], ARGV[3], counter) end
end
local n = (#ARGV - 3) / 4
local last = redis.call('INCRBY', KEYS[1], n)
local first = last - n + 1
local heads = {}
local entries = {}
for i = 1, n do
  local at = 4 * i
  local space = ARGV[at]
  local revision = string.format('%d', first + i - 1)
  local prev = heads[space]
  if prev == nil then prev = redis.call('HGET', KEYS[2], space) or '0' end
  heads[space] = revision
  local entry = ARGV[at + 3] .. ',' .. prev .. ']'
  redis.call('HSET', ARGV[at + 1], ARGV[at + 2], revision .. ' ' .. entry)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], revision .. '-0', 'w', entry)
  entries[i] = entry
end
for space, head in pairs(heads) do redis.call('HSET', KEYS[2], space, head) end
local message = string.format('%d', first) .. ' [' .. table.concat(entries, ',') .. ']'
redis.call('PUBLISH', ARGV[1], message)
return first
"""

# KEYS: counter, heads, epoch. ARGV: an epoch to use if there is none yet, the
# default space's name. The epoch, the counter and the spaces, read atomically
# (data from before spaces given its default head, as the write script would).
_START_SCRIPT: Final = """
redis.call('SETNX', KEYS[3], ARGV[1])
local counter = redis.call('GET', KEYS[1]) or '0'
if redis.call('EXISTS', KEYS[2]) == 0 and tonumber(counter) > 0 then
  redis.call('HSET', KEYS[2], ARGV[2], counter)
end
return {counter, redis.call('HKEYS', KEYS[2]), redis.call('GET', KEYS[3])}
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
_decode_entries = msgspec.json.Decoder(list[Entry]).decode
_encode = msgspec.json.Encoder().encode


def channel_name(db: int) -> str:
    """The write channel of database ``db``: Redis' channels are not per database,
    so another database's deployment on the same Redis must not share it."""
    return _PREFIX + "writes" if db == 0 else f"{_PREFIX}writes:db{db}"


def registers_key(space: str) -> str:
    """The hash that holds ``space``'s registers."""
    return _REGISTERS if space == DEFAULT_SPACE else f"{_REGISTERS}:{space}"


class _Loaded:
    """Every space's registers as of one revision, read from Redis."""

    __slots__ = ("epoch", "registers", "revision", "superseded")

    def __init__(
        self,
        revision: int,
        registers: dict[str, dict[str, Write]],
        epoch: str,
        superseded: list[Write],
    ) -> None:
        self.revision = revision
        self.registers = registers
        self.epoch = epoch
        self.superseded = superseded
        """This process' writes read while loading that a newer write replaced."""


class RedisBackend:
    """Registers in Redis, shared by every syncserver process that names it."""

    def __init__(
        self,
        url: str,
        on_commit: CommitCallback,
        on_failure: FailureCallback,
        *,
        log_retention: int = DEFAULT_LOG_RETENTION,
    ) -> None:
        if log_retention < 1:
            raise ValueError("log_retention must be at least 1")
        self.url = url
        self.log_retention = log_retention
        self._on_commit = on_commit
        self._on_failure = on_failure
        self._redis: redis_asyncio.Redis = redis_asyncio.Redis.from_url(
            url,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
            socket_connect_timeout=5,
            health_check_interval=10,
        )
        self._counter = _PREFIX + "revision"
        self._epoch_key = _PREFIX + "epoch"
        self._heads_key = _PREFIX + "heads"
        self._log = _PREFIX + "log"
        self._channel = channel_name(
            int(self._redis.connection_pool.connection_kwargs.get("db", 0))
        )
        self._devices_key = _PREFIX + "devices"
        self._devices: dict[int, bytes] = {}
        """Device secrets' digests this process has seen recorded (never replaced)."""
        self._claims: set[asyncio.Task[None]] = set()
        self._write_script = self._redis.register_script(_WRITE_SCRIPT)
        self._start_script = self._redis.register_script(_START_SCRIPT)
        self._origin = secrets.randbits(62)
        self._sequence = itertools.count(1)
        self._revision = 0
        self._epoch = ""
        self._copy = SpaceLogs()
        """This process' copy of every space's registers, as of :attr:`revision`."""
        self._queue: list[Write] = []
        self._pending: dict[int, Write] = {}
        """This process' writes sent to Redis and not yet back through the subscription."""
        self._known = 0
        """The newest revision a script call of this process returned."""
        self._wakeup = asyncio.Event()
        self._nudge = asyncio.Event()
        self._ready = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None
        self._follower: asyncio.Task[None] | None = None
        self._closing = False
        self.subscription_failures = 0
        """How often following the write channel failed (Redis down, say)."""

    # -- what the server reads ---------------------------------------------

    @property
    def revision(self) -> int:
        """The newest revision this process has applied and handed to ``on_commit``."""
        return self._revision

    @property
    def epoch(self) -> str:
        """The shared database's epoch, as of the last (re)load."""
        return self._epoch

    @property
    def values(self) -> Mapping[str, Write]:
        """Every register of the default space as of :attr:`revision`."""
        return self._copy.values(DEFAULT_SPACE)

    @property
    def count(self) -> int:
        """How many registers there are, in every space."""
        return self._copy.count

    @property
    def spaces(self) -> int:
        """How many spaces have registers."""
        return len(self._copy.logs)

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
        """The newest revision in ``space`` this process has applied (0: none)."""
        return self._copy.head(space)

    def registers(self, space: str) -> Mapping[str, Write]:
        """Every register of ``space`` as of :attr:`revision`."""
        return self._copy.values(space)

    def get(self, space: str, key: str) -> Write | None:
        """One register, from this process' copy."""
        return self._copy.get(space, key)

    def newest(self) -> Iterator[Write]:
        """Every space's registers, newest first."""
        return self._copy.newest()

    def changed_since(self, since: int, space: str = DEFAULT_SPACE) -> list[Write]:
        """Every register of ``space`` written after revision ``since``, oldest first."""
        log = self._copy.logs.get(space)
        return [] if log is None else list(log.after(since))

    def read_changes(
        self,
        space: str,
        after: int,
        upto: int | None,
        budget: int,
        done: Callable[[ChangePage | None], None],
    ) -> None:
        """A page of this process' copy of ``space``, at once (see ``Backend``)."""
        done(self._copy.page(space, after, upto, budget, self._revision))

    # -- lifecycle ----------------------------------------------------------

    async def open(self) -> None:
        """Connect, load every register, then follow the write channel."""
        await self._redis.ping()
        await self._check_durability()
        follower = self._follower = asyncio.create_task(
            self._follow_loop(), name="syncserver-redis-follow"
        )
        ready = asyncio.create_task(self._ready.wait())
        try:
            # Until loaded, or until loading failed (the follower then ends with why).
            await asyncio.wait((ready, follower), return_when=asyncio.FIRST_COMPLETED)
            if not self._ready.is_set():
                follower.result()
        except BaseException:
            ready.cancel()
            follower.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await follower
            await self._redis.aclose()
            raise
        self._committer = asyncio.create_task(self._commit_loop(), name="syncserver-redis-commit")

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
                        self._nudge.set()
                        await asyncio.sleep(0.01)
        if self._follower is not None:
            self._follower.cancel()
            # Ended with an error only when open() failed, which raised it already.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._follower
        for claim in list(self._claims):
            claim.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await claim
        await self._redis.aclose()

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
        task = asyncio.get_running_loop().create_task(self._claim(device_id, digest, done))
        self._claims.add(task)
        task.add_done_callback(self._claims.discard)

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
                args: list[str | bytes | int] = [self._channel, self.log_retention, DEFAULT_SPACE]
                origin = self._origin
                for write, sequence in zip(batch, sequences, strict=True):
                    self._pending[sequence] = write
                    head = (
                        write.key,
                        msgspec.Raw(write.value),
                        write.local_revision,
                        write.device_id,
                        origin,
                        sequence,
                        write.space,
                    )
                    args += (write.space, registers_key(write.space), write.key, _encode(head)[:-1])
                try:
                    first = int(
                        await self._write_script(
                            keys=[self._counter, self._heads_key, self._log], args=args
                        )
                    )
                except (RedisError, OSError) as exc:
                    lost = (self._pending.pop(sequence, None) for sequence in sequences)
                    failed = [write for write in lost if write is not None]
                    if failed:
                        self._on_failure(failed, exc)
                    continue
                for offset, write in enumerate(batch):
                    if not write.revision:
                        write.revision = first + offset
                self._known = max(self._known, first + len(batch) - 1)
            if self._closing:
                return

    # -- following the write stream ----------------------------------------

    async def _follow_loop(self) -> None:
        delay = 0.05
        lost_logged: float | None = None
        lost_since_logged = 0
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                # Subscribed first, then read: nothing published meanwhile is missed.
                if not self._ready.is_set():
                    self._use(await self._load(), report=False)
                    self._ready.set()
                else:
                    await self._catch_up()
                    logger.info("following Redis again at revision %d", self._revision)
                delay = 0.05
                lost_logged = None
                while True:
                    message = await pubsub.get_message(timeout=WATCHDOG_INTERVAL)
                    if message is None:
                        if self._known > self._revision or self._nudge.is_set():
                            self._nudge.clear()
                            await self._catch_up()
                        continue
                    data = message.get("data")
                    if isinstance(data, bytes):
                        await self._on_message(data)
            except (RedisError, OSError) as exc:
                if not self._ready.is_set():
                    raise  # open() fails with it: nothing loaded to serve from
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
                if not self._ready.is_set():
                    raise
                logger.exception("could not follow Redis; retrying in %.2f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _on_message(self, data: bytes) -> None:
        head, _, payload = data.partition(b" ")
        first = int(head)
        entries = _decode_entries(payload)
        last = first + len(entries) - 1
        if last <= self._revision:
            return
        if first > self._revision + 1:
            await self._catch_up()
            if last <= self._revision:
                return
        skip = self._revision + 1 - first
        self._apply(self._revision + 1, entries[skip:] if skip else entries)

    def _apply(self, first: int, entries: list[Entry]) -> None:
        """Hand revisions ``first``, ``first + 1``, ... to the server."""
        writes: list[Write] = []
        copy = self._copy
        heads = copy.heads
        revision = first
        for entry in entries:
            # An entry from before spaces follows its space's head.
            prev = entry.prev if entry.prev >= 0 else heads.get(entry.space, 0)
            write = self._write(entry, revision, prev)
            copy.put(write)
            writes.append(write)
            revision += 1
        self._revision = revision - 1
        self._report(writes)

    def _write(
        self, entry: Entry, revision: int, prev: int, adopted: list[Write] | None = None
    ) -> Write:
        """The write ``entry`` stands for: this process' own object if it made it
        (then also added to ``adopted``)."""
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
        if adopted is not None:
            adopted.append(write)
        return write

    def _report(self, writes: list[Write]) -> None:
        if not writes:
            return
        try:
            self._on_commit(writes)
        except Exception:
            logger.exception("on_commit failed after revision %d", self._revision)

    async def _read_log(self, start: int, end: int) -> list[Entry] | None:
        """Revisions ``start`` … at most ``end`` from the log, one page; None if
        the log no longer reaches back to ``start``."""
        rows: list[tuple[bytes, dict[bytes, bytes]]] = await self._redis.xrange(  # type: ignore[assignment]
            self._log, min=f"{start}-0", max=f"{end}-0", count=CATCH_UP_PAGE
        )
        entries: list[Entry] = []
        for index, (entry_id, fields) in enumerate(rows):
            if int(entry_id.partition(b"-")[0]) != start + index:
                break
            entries.append(_decode_entry(fields[b"w"]))
        return entries or None

    async def _catch_up(self) -> None:
        """Apply every revision Redis has beyond ours, from the log or the registers."""
        counter = int(await self._redis.get(self._counter) or 0)
        if counter < self._revision:
            logger.error(
                "Redis' revision %d is behind this server's %d: Redis lost acknowledged "
                "writes (was it restarted without its append-only file?); reloading",
                counter,
                self._revision,
            )
            await self._reload()
            return
        while self._revision < counter:
            start = self._revision + 1
            entries = await self._read_log(start, counter)
            if entries is None:
                await self._reload()
                return
            self._apply(start, entries)

    async def _load(self) -> _Loaded:
        """Every space's registers as of the counter, a page at a time (see the
        module docstring); starts again if the log written meanwhile is trimmed."""
        adopted: list[Write] = []
        while True:
            counter_raw, spaces_raw, epoch = await self._start_script(
                keys=[self._counter, self._heads_key, self._epoch_key],
                args=[secrets.token_hex(16), DEFAULT_SPACE],
            )
            start = int(counter_raw)
            registers: dict[str, dict[str, Write]] = {}
            for space in sorted({*map(_text, spaces_raw), DEFAULT_SPACE}):
                found = await self._scan(space, adopted)
                if found:
                    registers[space] = found
            end = int(await self._redis.get(self._counter) or 0)
            revision = start
            while revision < end:
                entries = await self._read_log(revision + 1, end)
                if entries is None:
                    break
                for entry in entries:
                    revision += 1
                    _keep_newer(registers, self._write(entry, revision, 0, adopted))
            if revision >= end:
                return _Loaded(end, registers, _text(epoch), _superseded(registers, adopted))
            logger.warning("Redis' log was trimmed while loading the registers; loading again")

    async def _scan(self, space: str, adopted: list[Write]) -> dict[str, Write]:
        """One space's hash, read with HSCAN (writes meanwhile may or may not show)."""
        found: dict[str, dict[str, Write]] = {space: {}}
        cursor = 0
        while True:
            reply = await self._redis.hscan(registers_key(space), cursor, count=SCAN_PAGE)
            cursor, page = cast("tuple[int, dict[bytes, bytes]]", reply)
            for stored in page.values():
                head, _, raw = stored.partition(b" ")
                write = self._write(_decode_entry(raw), int(head), 0, adopted)
                write.space = space
                _keep_newer(found, write)
            if cursor == 0:
                return found[space]

    def _use(self, loaded: _Loaded, *, report: bool) -> list[Write]:
        """Make ``loaded`` this process' copy. If ``report``: the writes after
        :attr:`revision` (and this process' writes a newer one replaced, still
        owed an ack) in revision order, each with the revision of the one
        before it in its space as ``prev``."""
        since = self._revision
        superseded: dict[str, list[Write]] = {}
        for write in loaded.superseded:
            superseded.setdefault(write.space, []).append(write)
        for sequence, write in list(self._pending.items()):
            if write.revision and write.revision <= loaded.revision:
                del self._pending[sequence]
                superseded.setdefault(write.space, []).append(write)
        changed: list[Write] = []
        copy = SpaceLogs()
        for space, found in loaded.registers.items():
            ordered = sorted(
                itertools.chain(found.values(), superseded.pop(space, ())), key=_revision
            )
            prev = 0
            for write in ordered:
                write.prev = prev
                prev = write.revision
            if report:
                changed += (write for write in ordered if write.revision > since)
            log = copy.logs[space] = RevisionLog(found.values())
            copy.heads[space] = max(write.revision for write in found.values())
            copy.count += len(log.values)
        for writes in superseded.values():  # a space whose registers Redis lost
            changed += (write for write in writes if write.revision > since)
        changed.sort(key=_revision)
        self._copy = copy
        self._revision = loaded.revision
        self._epoch = loaded.epoch
        if copy.count >= FREEZE_AT:
            # The copy lives as long as the process: keep the cyclic collector
            # from walking it in every full collection (with a million registers
            # that made applying a write 35 µs instead of 2). Refcounting still
            # frees registers that newer writes replace. Process-wide, hence
            # only for a copy big enough to matter.
            gc.freeze()
        return changed

    async def _reload(self) -> None:
        """Load every register again and report the ones that changed."""
        previous = self._epoch
        changed = self._use(await self._load(), report=True)
        logger.warning("reloaded every register from Redis at revision %d", self._revision)
        if previous != self._epoch and not changed:
            # Nothing to push, but the server must hear of the new history.
            self._on_commit([])
        self._report(changed)


def _superseded(registers: dict[str, dict[str, Write]], adopted: list[Write]) -> list[Write]:
    """This process' own writes, read while loading, that a newer write replaced;
    the others take the place of the plain copy of themselves a later read made."""
    superseded: list[Write] = []
    for write in adopted:
        space = registers.get(write.space, {})
        current = space.get(write.key)
        if current is not None and current.revision == write.revision:
            space[write.key] = write
        else:
            superseded.append(write)
    return superseded


def _keep_newer(registers: dict[str, dict[str, Write]], write: Write) -> None:
    """Put ``write`` in its space's registers unless a newer write to its key is there."""
    space = registers.get(write.space)
    if space is None:
        space = registers[write.space] = {}
    known = space.get(write.key)
    if known is None or known.revision < write.revision:
        space[write.key] = write


def _revision(write: Write) -> int:
    return write.revision


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
