"""Checks: the messages, their fields, versions, epochs and device binding."""

from __future__ import annotations

import secrets
from typing import Any

from .peer import Message, Peer, expect
from .registry import Context, check

__all__ = ["PROTOCOL_VERSION", "expect_error", "expect_never_written", "expect_snapshot"]

PROTOCOL_VERSION = 1

_PUSH_FIELDS = {
    "type", "key", "value", "server_revision", "local_revision", "device_id", "space", "prev",
}  # fmt: skip


def expect_snapshot(snapshot: Message, since: int) -> None:
    """Every field a snapshot must carry, with its type."""
    revision = snapshot.get("revision")
    expect(
        type(revision) is int and revision >= 0, f"snapshot.revision is not an int: {revision!r}"
    )
    expect(
        snapshot.get("protocol") == PROTOCOL_VERSION,
        f"snapshot.protocol is {snapshot.get('protocol')!r}, expected {PROTOCOL_VERSION}",
    )
    epoch = snapshot.get("epoch")
    expect(isinstance(epoch, str) and epoch, f"snapshot.epoch is not a non-empty string: {epoch!r}")
    found = snapshot.get("since")
    expect(found == since, f"snapshot.since is {found!r}, not {since}")
    space = snapshot.get("space")
    expect(isinstance(space, str) and space, f"snapshot.space is not a space name: {space!r}")
    for page in snapshot.get("pages", [snapshot]):
        expect(isinstance(page.get("values"), list), "snapshot.values is not a list")
        expect(page.get("more", False) in (True, False), "snapshot.more is not a bool")
        for entry in page["values"]:
            expect(
                isinstance(entry.get("key"), str)
                and type(entry.get("server_revision")) is int
                and "value" in entry
                and type(entry.get("local_revision")) is int
                and type(entry.get("device_id")) is int,
                f"a snapshot entry lacks key/value/server_revision/local_revision/device_id: "
                f"{entry!r}",
            )


def expect_push(push: Message) -> None:
    fields = {name for name in push if not name.startswith("_")}
    expect(fields >= _PUSH_FIELDS, f"a push lacks fields: {sorted(_PUSH_FIELDS - fields)}")
    expect(type(push["server_revision"]) is int, "push.server_revision is not an int")


def expect_error(reply: Message, code: str, request_id: Any) -> None:
    """``reply`` is an error with ``code`` naming ``request_id`` (same JSON type)."""
    expect(
        reply.get("type") == "error" and reply.get("code") == code,
        f"expected error {code!r}, got {_short(reply)}",
    )
    echoed = reply.get("request_id")
    expect(
        echoed == request_id and type(echoed) is type(request_id),
        f"error {code!r} names request_id {echoed!r}, expected {request_id!r}",
    )
    expect(isinstance(reply.get("message"), str), "error.message is not a string")


async def expect_never_written(ctx: Context, key: str) -> None:
    """Nothing was stored under ``key`` (read on a connection of its own)."""
    peer, _ = await ctx.device()
    value = await peer.get(key)
    expect(
        value.get("type") == "value"
        and value.get("value") is None
        and value.get("server_revision") == 0,
        f"{key} was written although the request was refused: {_short(value)}",
    )


async def still_open(peer: Peer, key: str = "conformance/probe") -> None:
    """The connection still answers requests (an error never closes it)."""
    reply = await peer.get(key)
    expect(reply.get("type") == "value", f"a get after the error got {_short(reply)}")


def _short(message: Message) -> str:
    text = repr({k: v for k, v in message.items() if not k.startswith("_")})
    return text if len(text) < 200 else text[:200] + "…"


async def next_push(peer: Peer) -> Message:
    """The next push, whether sent alone or in a ``pushes`` frame."""
    while True:
        frame = await peer.recv_type("push", "pushes")
        if frame["type"] == "push":
            return frame
        pushes = frame.get("pushes")
        expect(isinstance(pushes, list) and pushes, f"a pushes frame without pushes: {frame!r}")
        assert isinstance(pushes, list)
        first, *rest = pushes
        peer.skipped[0:0] = rest
        return dict(first)


# -- hello and snapshot ----------------------------------------------------------


@check()
async def hello_is_answered_by_a_snapshot(ctx: Context) -> None:
    """A hello gets a snapshot: protocol 1, an epoch, since, revision, values with writers."""
    peer = await ctx.connect()
    expect_snapshot(await peer.hello(ctx.device_id()), since=0)


@check()
async def an_older_client_without_protocol_or_epoch_is_served(ctx: Context) -> None:
    """A hello with only device_id gets a protocol 1 snapshot; a set naming its device works."""
    peer = await ctx.connect()
    device_id = ctx.device_id()
    await peer.send({"type": "hello", "device_id": device_id})
    expect_snapshot(await peer.read_snapshot(), since=0)
    ack = await peer.set(ctx.key(), True, 3, device_id=device_id)
    expect(ack["type"] == "ack", f"an older client's set got {_short(ack)}")
    push = await next_push(peer)
    expect(push["device_id"] == device_id, "the push does not name the writer's device")


@check()
async def a_newer_client_gets_protocol_1_and_its_unknown_fields_are_ignored(ctx: Context) -> None:
    """hello protocol 2 gets snapshot protocol 1; unknown fields in any message are ignored."""
    peer = await ctx.connect()
    snapshot = await peer.hello(
        ctx.device_id(), protocol=2, capabilities={"compression": ["zstd"]}, x_future=[1, 2]
    )
    expect_snapshot(snapshot, since=0)
    key = ctx.key()
    ack = await peer.set(key, "v", 1, priority="high", ttl=30)
    expect(ack["type"] == "ack", f"a set with unknown fields got {_short(ack)}")
    value = await peer.request({"type": "get", "key": key, "consistency": "strong"}, "value")
    expect(value.get("value") == "v", f"a get with an unknown field got {_short(value)}")


@check()
async def a_set_is_acked_and_pushed_to_every_device_the_writer_included(ctx: Context) -> None:
    """set (without device_id) → ack to the writer, push naming the hello's device to all."""
    writer, writer_id = await ctx.device()
    other, _ = await ctx.device()
    key = ctx.key()
    ack = await writer.set(key, {"n": 1}, local_revision=5)
    expect(ack["type"] == "ack", f"the set got {_short(ack)}")
    expect(ack["key"] == key and ack["value"] == {"n": 1}, f"the ack is wrong: {_short(ack)}")
    revision = ack.get("server_revision")
    expect(type(revision) is int and revision >= 1, f"ack.server_revision {revision!r}")
    for peer in (writer, other):
        push = await next_push(peer)
        expect_push(push)
        expect(
            (push["key"], push["value"], push["server_revision"]) == (key, {"n": 1}, revision)
            and push["local_revision"] == 5
            and push["device_id"] == writer_id,
            f"the push does not match the write: {_short(push)}",
        )


@check()
async def request_ids_are_echoed_exactly(ctx: Context) -> None:
    """A request_id (string or int, any sign) comes back with its value and JSON type."""
    peer, _ = await ctx.device()
    for request_id in ("r-1", "", 0, -5, 2**63 - 1, "😀" * 128):
        reply = await peer.request(
            {
                "type": "set",
                "request_id": request_id,
                "key": ctx.key(),
                "value": 1,
                "local_revision": 1,
            },
            "ack",
        )
        expect(reply["type"] == "ack", f"request_id {request_id!r} got {_short(reply)}")
        echoed = reply["request_id"]
        expect(
            echoed == request_id and type(echoed) is type(request_id),
            f"request_id {request_id!r} came back as {echoed!r}",
        )


@check()
async def a_get_returns_the_newest_value_or_null_at_revision_0(ctx: Context) -> None:
    """get: a key never written is value null, server_revision 0; else the newest write."""
    peer, _ = await ctx.device()
    key = ctx.key()
    value = await peer.get(key)
    expect(
        value["type"] == "value"
        and value["key"] == key
        and value["value"] is None
        and value["server_revision"] == 0,
        f"an unwritten key read as {_short(value)}",
    )
    await peer.set(key, "a", 1)
    ack = await peer.set(key, "b", 2)
    value = await peer.get(key)
    expect(
        value["value"] == "b" and value["server_revision"] == ack["server_revision"],
        f"read {_short(value)} after the ack {_short(ack)}",
    )


@check()
async def revisions_are_global_and_increase_with_every_write(ctx: Context) -> None:
    """Writes to different keys get strictly increasing revisions from one counter."""
    peer, _ = await ctx.device()
    revisions = [(await peer.set(ctx.key(), n, 1))["server_revision"] for n in range(5)]
    expect(revisions == sorted(set(revisions)), f"revisions do not increase: {revisions}")


@check()
async def a_snapshot_since_r_holds_each_key_written_after_r_once_oldest_first(
    ctx: Context,
) -> None:
    """hello since R: each key written after R once, newest value, with its writer, oldest first."""
    peer, device_id = await ctx.device()
    first, second = ctx.key(), ctx.key()
    r1 = (await peer.set(first, 1, 1))["server_revision"]
    await peer.set(second, "old", 2)
    await peer.set(second, "new", 3)
    r3 = (await peer.set(first, 2, 4))["server_revision"]
    reader = await ctx.connect()
    reader_id = ctx.device_id()
    snapshot = await reader.hello(reader_id, since=r1)
    expect_snapshot(snapshot, since=r1)
    expect(snapshot["revision"] >= r3, "snapshot.revision is older than an acked write")
    entries = [e for e in snapshot["values"] if e["key"] in (first, second)]
    expect(
        [(e["key"], e["value"], e["local_revision"], e["device_id"]) for e in entries]
        == [(second, "new", 3, device_id), (first, 2, 4, device_id)],
        f"expected {second}=new then {first}=2 with their writer, got {entries}",
    )
    revisions = [e["server_revision"] for e in snapshot["values"]]
    expect(revisions == sorted(revisions), "snapshot values are not oldest first")
    expect(all(r > r1 for r in revisions), "the snapshot holds writes at or below since")
    after = await reader.hello(reader_id, since=snapshot["revision"])
    expect(
        not [e for e in after["values"] if e["key"] in (first, second)],
        "a snapshot since the newest revision repeats older writes",
    )


@check()
async def a_hello_with_another_epoch_is_answered_as_since_0(ctx: Context) -> None:
    """hello since R with a foreign epoch gets a full snapshot (since 0); its own epoch, since R."""
    peer, _ = await ctx.device()
    key = ctx.key()
    await peer.set(key, "kept", 1)
    reader, reader_id = await ctx.connect(), ctx.device_id()
    snapshot = await reader.hello(reader_id)
    epoch, revision = snapshot["epoch"], snapshot["revision"]
    same = await reader.hello(reader_id, since=revision, epoch=epoch)
    expect_snapshot(same, since=revision)
    expect(same["epoch"] == epoch, "the epoch changed between two hellos")
    foreign = await reader.hello(reader_id, since=revision, epoch="0" * 31 + "1")
    expect_snapshot(foreign, since=0)
    expect(
        any(e["key"] == key and e["value"] == "kept" for e in foreign["values"]),
        "the full snapshot after a foreign epoch lacks an earlier write",
    )


@check()
async def a_hello_since_above_the_revision_gets_an_empty_snapshot_at_the_revision(
    ctx: Context,
) -> None:
    """hello since far above the revision (its epoch, or none): one empty page, since as sent."""
    writer, _ = await ctx.device()
    written = (await writer.set(ctx.key(), 1, 1))["server_revision"]
    reader, reader_id = await ctx.connect(), ctx.device_id()
    epoch = (await reader.hello(reader_id))["epoch"]
    claimed = min(written + 10**12, 2**63 - 1)
    for extra in ({"epoch": epoch}, {}):
        snapshot = await reader.hello(reader_id, since=claimed, **extra)
        expect_snapshot(snapshot, since=claimed)
        revision = snapshot["revision"]
        expect(
            written <= revision < claimed,
            f"snapshot.revision is {revision}: not the server's own ({written} or above)",
        )
        expect(
            len(snapshot["pages"]) == 1 and snapshot["values"] == [],
            f"the snapshot holds {len(snapshot['values'])} entries in "
            f"{len(snapshot['pages'])} pages, not one empty page",
        )
    ack = await writer.set(ctx.key(), 2, 2)
    while (push := await next_push(reader))["server_revision"] < ack["server_revision"]:
        pass  # another client's write on a shared server
    expect(
        push["server_revision"] == ack["server_revision"],
        "a write after the empty snapshot was not pushed to the reader",
    )


# -- device binding ----------------------------------------------------------------


@check()
async def a_device_secret_keeps_other_connections_off_its_device_id(ctx: Context) -> None:
    """The first secret sent for an id is recorded: the same secret is let in again, another
    one is closed with 1008 before any reply."""
    device_id, secret = ctx.device_id(), secrets.token_urlsafe(32)
    first = await ctx.connect()
    expect_snapshot(await first.hello(device_id, device_secret=secret), since=0)
    again = await ctx.connect()
    expect_snapshot(await again.hello(device_id, device_secret=secret), since=0)
    thief = await ctx.connect()
    await thief.send(
        {
            "type": "hello",
            "device_id": device_id,
            "since": 0,
            "device_secret": secrets.token_urlsafe(32),
        }
    )
    code = await thief.wait_closed()
    expect(code == 1008, f"a hello with another secret closed with {code}, expected 1008")
    await still_open(first)


@check()
async def a_second_hello_resyncs_and_can_switch_to_batched_pushes(ctx: Context) -> None:
    """A second hello (same device) gets a snapshot and changes batch_pushes from then on."""
    peer, _ = await ctx.device(batch_pushes=False)
    writer, _ = await ctx.device()
    await writer.set(ctx.key(), 1, 1)
    expect((await peer.recv_type("push", "pushes"))["type"] == "push", "expected a push frame")
    device_id = ctx.device_id()
    peer2 = await ctx.connect()
    await peer2.hello(device_id)
    snapshot = await peer2.hello(device_id, batch_pushes=True)
    expect_snapshot(snapshot, since=0)
    await writer.set(ctx.key(), 2, 2)
    frame = await peer2.recv_type("push", "pushes")
    expect(frame["type"] == "pushes", f"after hello batch_pushes: true got {frame['type']}")


@check()
async def a_second_hello_with_another_device_id_is_refused(ctx: Context) -> None:
    """hello with another device_id on a bound connection: device_mismatch, binding unchanged."""
    peer, device_id = await ctx.device()
    await peer.send({"type": "hello", "device_id": device_id + 1, "since": 0})
    reply = await peer.recv_type("error", "snapshot")
    expect_error(reply, "device_mismatch", None)
    await peer.set(ctx.key(), 1, 1)
    push = await next_push(peer)
    expect(push["device_id"] == device_id, "the connection is no longer bound to its first hello")


@check()
async def a_set_naming_another_device_is_refused_and_writes_nothing(ctx: Context) -> None:
    """set.device_id other than the hello's: device_mismatch, request_id echoed, nothing stored."""
    peer, device_id = await ctx.device()
    key = ctx.key()
    reply = await peer.set(key, 1, 1, device_id=device_id + 1, request_id="m1")
    expect_error(reply, "device_mismatch", "m1")
    await still_open(peer)
    await expect_never_written(ctx, key)


@check()
async def set_and_get_before_hello_are_refused_with_hello_required(ctx: Context) -> None:
    """set/get before a hello: hello_required, request_id echoed, nothing stored."""
    peer = await ctx.connect()
    key = ctx.key()
    expect_error(await peer.set(key, 1, 1, request_id="h1"), "hello_required", "h1")
    expect_error(
        await peer.request({"type": "get", "key": key, "request_id": 9}, "value"),
        "hello_required",
        9,
    )
    await expect_never_written(ctx, key)


@check()
async def a_connection_gets_no_pushes_before_its_hello(ctx: Context) -> None:
    """No push reaches a connection before its hello; the hello's snapshot has the write."""
    silent = await ctx.connect()
    writer, _ = await ctx.device()
    key = ctx.key()
    await writer.set(key, 1, 1)
    # The write was pushed before its ack, so a push to `silent` would come first.
    await silent.send({"type": "get", "key": key, "request_id": "probe"})
    first = await silent.recv()
    expect_error(first, "hello_required", "probe")
    snapshot = await silent.hello(ctx.device_id())
    expect(any(e["key"] == key for e in snapshot["values"]), "the snapshot lacks the write")
