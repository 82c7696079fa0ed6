"""Checks: spaces (PROTOCOL.md, "Spaces"): isolation, prev, joining, the default space,
and the refused hellos (access, the per-connection limit) on servers the kit starts."""

from __future__ import annotations

import json

from .messages import expect_error, expect_push, next_push
from .peer import Message, Peer, expect
from .registry import Context, check

__all__: list[str] = []


async def _join(peer: Peer, device_id: int, space: str) -> Message:
    snapshot = await peer.hello(device_id, space=space)
    expect(
        snapshot.get("space") == space,
        f"a hello for space {space!r} got a snapshot of {snapshot.get('space')!r}",
    )
    for page in snapshot["pages"]:
        expect(page.get("space") == space, f"a snapshot page of {space!r} names another space")
    return snapshot


async def _own_push(peer: Peer, space: str, key: str) -> Message:
    """The next push on ``peer``, which must be of ``space`` and ``key``."""
    push = await next_push(peer)
    expect_push(push)
    expect(
        (push.get("space"), push.get("key")) == (space, key),
        f"a device in {space!r} was pushed {push.get('key')!r} of space {push.get('space')!r}",
    )
    return push


@check()
async def a_device_sees_only_the_spaces_it_joined(ctx: Context) -> None:
    """The same key in two spaces: pushes, snapshots and gets each stay in their space."""
    first, second = ctx.space("a"), ctx.space("b")
    key = ctx.key()
    one, two = await ctx.connect(), await ctx.connect()
    id_one, id_two = ctx.device_id(), ctx.device_id()
    await _join(one, id_one, first)
    await _join(two, id_two, second)
    ack = await one.set(key, "one", space=first)
    expect(ack.get("type") == "ack", f"a set in a joined space got {ack.get('type')!r}")
    expect(ack.get("space") == first, f"ack.space is {ack.get('space')!r}, not {first!r}")
    await _own_push(one, first, key)
    await two.set(key, "two", space=second)
    # Frames on a connection are ordered: a leak of the first write would come first.
    pushed = await _own_push(two, second, key)
    expect(pushed.get("value") == "two", f"the push in {second!r} holds {pushed.get('value')!r}")
    value = await two.request({"type": "get", "key": key, "space": second}, "value")
    expect(
        (value.get("value"), value.get("space")) == ("two", second),
        f"a get in {second!r} read {value.get('value')!r} of {value.get('space')!r}",
    )
    fresh = await ctx.connect()
    snapshot = await _join(fresh, ctx.device_id(), second)
    values = {entry["key"]: entry["value"] for entry in snapshot["values"]}
    expect(values == {key: "two"}, f"a snapshot of {second!r} holds {values!r}")


@check()
async def prev_names_the_previous_write_of_the_same_space(ctx: Context) -> None:
    """Writes alternating between two spaces: each push's prev is its space's last revision."""
    first, second = ctx.space("a"), ctx.space("b")
    peer = await ctx.connect()
    device_id = ctx.device_id()
    await _join(peer, device_id, first)
    await _join(peer, device_id, second)
    spaces = (first, second, first, first, second)
    pushes = []
    for index, space in enumerate(spaces):
        key = ctx.key()
        await peer.set(key, index, space=space)
        pushes.append(await _own_push(peer, space, key))
    newest = {first: 0, second: 0}
    for push in pushes:
        space, revision, prev = push["space"], push["server_revision"], push.get("prev")
        expect(type(prev) is int, f"push.prev is not an int: {prev!r}")
        expect(
            prev == newest[space],
            f"push {revision} in a space whose last write was {newest[space]} has prev {prev}",
        )
        newest[space] = revision


@check()
async def set_and_get_on_a_space_not_joined_are_refused_with_not_joined(ctx: Context) -> None:
    """A set or get naming a space the connection did not join: not_joined, nothing written."""
    joined, other = ctx.space("joined"), ctx.space("other")
    key = ctx.key()
    peer = await ctx.connect()
    await _join(peer, ctx.device_id(), joined)
    for message, kind in (
        ({"type": "set", "key": key, "value": 1, "local_revision": 1, "space": other}, "ack"),
        ({"type": "get", "key": key, "space": other}, "value"),
    ):
        request_id = peer.next_id()
        reply = await peer.request({**message, "request_id": request_id}, kind)
        expect_error(reply, "not_joined", request_id)
        expect(reply.get("space") == other, f"not_joined names space {reply.get('space')!r}")
    reader = await ctx.connect()
    await _join(reader, ctx.device_id(), other)
    value = await reader.request({"type": "get", "key": key, "space": other}, "value")
    expect(
        value.get("value") is None and value.get("server_revision") == 0,
        f"the refused set was written: {value!r}",
    )


@check()
async def a_client_that_names_no_space_is_in_the_default_space(ctx: Context) -> None:
    """Frames without space fields are the space "default"; replies and pushes say so."""
    key = ctx.key()
    old, new = await ctx.connect(), await ctx.connect()
    old_id = ctx.device_id()
    await old.send({"type": "hello", "device_id": old_id})
    snapshot = await old.read_snapshot()
    expect(snapshot.get("space") == "default", f"snapshot.space is {snapshot.get('space')!r}")
    await _join(new, ctx.device_id(), "default")
    ack = await old.set(key, True)
    expect(ack.get("space") == "default", f"ack.space is {ack.get('space')!r}")
    for peer in (old, new):
        push = await _own_push(peer, "default", key)
        expect(type(push.get("prev")) is int, f"push.prev is not an int: {push.get('prev')!r}")
    value = await old.request({"type": "get", "key": key}, "value")
    expect(value.get("value") is True, f"a get without space read {value.get('value')!r}")


# -- refused hellos: access and the per-connection limit ------------------------


async def _refused_hello(peer: Peer, device_id: int, space: str, code: str) -> None:
    """A hello for ``space`` is refused with ``code``: request_id null, the space named."""
    await peer.send({"type": "hello", "device_id": device_id, "since": 0, "space": space})
    reply = await peer.recv_type("error", "snapshot")
    expect_error(reply, code, None)
    expect(reply.get("space") == space, f"{code} names space {reply.get('space')!r}, not {space!r}")


async def _left_out(ctx: Context, peer: Peer, joined: str, refused: str, member: Peer) -> None:
    """After a refused hello for ``refused``, ``peer`` is still in ``joined`` and only there.

    ``member`` (in ``refused``) writes there first; ``peer`` then writes in
    ``joined`` and reads its own push. Frames on a connection are ordered, so a
    snapshot or a push of ``refused`` would have come before it.
    """
    ack = await member.set(ctx.key(), "unseen", space=refused)
    expect(ack.get("type") == "ack", f"a set in {refused!r} by a member got {ack.get('type')!r}")
    key = ctx.key()
    ack = await peer.set(key, 1, space=joined)
    expect(ack.get("type") == "ack", f"a set in a joined space after the refusal got {ack!r}")
    await _own_push(peer, joined, key)
    for frame in peer.skipped:
        for message in frame.get("pushes") or [frame]:
            expect(
                message.get("space") != refused,
                f"after the refused hello the connection got a {message.get('type')!r} "
                f"of {refused!r}",
            )
    await _not_joined(peer, key, refused)


async def _not_joined(peer: Peer, key: str, space: str) -> None:
    request_id = peer.next_id()
    get = {"type": "get", "key": key, "space": space, "request_id": request_id}
    expect_error(await peer.request(get, "value"), "not_joined", request_id)


@check(needs_launcher=True)
async def a_hello_for_a_space_the_device_may_not_join_is_refused_with_forbidden(
    ctx: Context,
) -> None:
    """--space-access: a hello for a space closed to the device is forbidden; nothing changes."""
    launcher = ctx.require_launcher()
    open_, members, unlisted = ctx.space("open"), ctx.space("members"), ctx.space("unlisted")
    member, outsider = ctx.device_id(), ctx.device_id()
    access = launcher.new_dir() / "space-access.toml"
    access.write_text(
        f'[spaces]\n{json.dumps(open_)} = "*"\n{json.dumps(members)} = [{member}]\n',
        encoding="utf-8",
    )
    server = await launcher.start("--space-access", str(access))
    try:
        insider = await ctx.connect(server.url)
        await _join(insider, member, members)
        # A refused first hello leaves the connection open, free to join an open space.
        peer = await ctx.connect(server.url)
        await _refused_hello(peer, outsider, members, "forbidden")
        await _join(peer, outsider, open_)
        for space in (members, unlisted):
            await _refused_hello(peer, outsider, space, "forbidden")
        await _left_out(ctx, peer, open_, members, insider)
        await _not_joined(peer, ctx.key(), unlisted)
    finally:
        await server.stop()


@check(needs_launcher=True)
async def a_hello_past_the_connections_space_limit_is_refused_with_too_many_spaces(
    ctx: Context,
) -> None:
    """--max-spaces-per-connection 2: a third space's hello gets too_many_spaces; nothing changes.

    A resync of a joined space is no new space, and another connection may join the third.
    """
    server = await ctx.require_launcher().shared("--max-spaces-per-connection", "2")
    first, second, third = ctx.space("a"), ctx.space("b"), ctx.space("c")
    peer = await ctx.connect(server.url)
    device_id = ctx.device_id()
    await _join(peer, device_id, first)
    await _join(peer, device_id, second)
    await _refused_hello(peer, device_id, third, "too_many_spaces")
    # A hello for a space already joined is a resync: no new space, so not refused.
    await peer.send({"type": "hello", "device_id": device_id, "since": 0, "space": first})
    page = await peer.recv_type("snapshot", "error")
    expect(
        page["type"] == "snapshot" and page.get("space") == first,
        f"a resync of a joined space at the limit got {page.get('code') or page.get('space')!r}",
    )
    while page.get("more") is True:
        page = await peer.recv_type("snapshot")
    other = await ctx.connect(server.url)
    await _join(other, device_id, third)
    await _left_out(ctx, peer, second, third, other)
