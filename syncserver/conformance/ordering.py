"""Checks: the ordering and delivery guarantees, snapshot pages and frame caps."""

from __future__ import annotations

import asyncio

from .messages import expect_snapshot
from .peer import Message, Peer, expect
from .registry import Context, check

__all__ = ["MAX_PAGE_BYTES"]

MAX_PAGE_BYTES = 512 * 1024
"""No snapshot page or ``pushes`` frame encodes to more than this."""


async def _pipeline(peer: Peer, keys: list[str], value: object = 1) -> list[Message]:
    """Send one set per key without waiting, then collect every ack in order sent."""
    ids = []
    for number, key in enumerate(keys):
        request_id = peer.next_id()
        ids.append(request_id)
        await peer.send(
            {
                "type": "set",
                "request_id": request_id,
                "key": key,
                "value": value,
                "local_revision": number + 1,
            }
        )
    acks = [await peer.reply_to(request_id, "ack") for request_id in ids]
    for ack in acks:
        expect(ack["type"] == "ack", f"a pipelined set got {ack}")
    return acks


def _frame_revisions(frame: Message) -> list[int]:
    if frame["type"] == "push":
        return [frame["server_revision"]]
    return [push["server_revision"] for push in frame["pushes"]]


async def _revisions_until(peer: Peer, newest: int) -> list[int]:
    """Revisions of the pushes arriving on ``peer`` until one reaches ``newest``."""
    seen: list[int] = []
    while not seen or seen[-1] < newest:
        seen += _frame_revisions(await peer.recv_type("push", "pushes"))
    return seen


@check()
async def the_writer_gets_the_ack_before_its_own_push(ctx: Context) -> None:
    """On the writer's connection the ack of a write comes before the push of it."""
    for batch in (False, True):
        peer, device_id = await ctx.device(batch_pushes=batch)
        keys = [ctx.key() for _ in range(10)] + [ctx.key("same")] * 10
        for number, key in enumerate(keys):
            await peer.send(
                {
                    "type": "set",
                    "request_id": number,
                    "key": key,
                    "value": number,
                    "local_revision": number + 1,
                }
            )
        acked: set[int] = set()  # local revisions whose ack arrived
        own_pushes = 0
        while len(acked) < len(keys) or own_pushes < len(keys):
            frame = await peer.recv()
            if frame["type"] == "ack":
                acked.add(frame["request_id"] + 1)
            elif frame["type"] in ("push", "pushes"):
                pushes = [frame] if frame["type"] == "push" else frame["pushes"]
                for push in pushes:
                    if push["device_id"] != device_id:
                        continue
                    own_pushes += 1
                    expect(
                        push["local_revision"] in acked,
                        f"the push of revision {push['server_revision']} came before its ack "
                        f"({'batched' if batch else 'plain'} pushes)",
                    )
        await peer.close()


@check()
async def a_connections_sets_are_acked_in_the_order_sent(ctx: Context) -> None:
    """Pipelined sets on one connection are acked in the order sent, at increasing revisions."""
    peer, _ = await ctx.device()
    keys = [ctx.key() for _ in range(15)] + [ctx.key("same")] * 15
    ids = []
    for number, key in enumerate(keys):
        ids.append(number)
        await peer.send(
            {
                "type": "set",
                "request_id": number,
                "key": key,
                "value": number,
                "local_revision": number + 1,
            }
        )
    acks: list[Message] = []
    while len(acks) < len(keys):
        frame = await peer.recv_type("ack", "error")
        expect(frame["type"] == "ack", f"a pipelined set got {frame}")
        acks.append(frame)
    expect([ack["request_id"] for ack in acks] == ids, "acks came in another order than sent")
    revisions = [ack["server_revision"] for ack in acks]
    expect(revisions == sorted(set(revisions)), f"revisions in send order: {revisions}")


@check()
async def a_writes_push_reaches_every_device_before_the_writer_has_its_ack(ctx: Context) -> None:
    """Once the writer holds the ack, a request from another device is answered after the push."""
    watcher, _ = await ctx.device()
    writer, _ = await ctx.device()
    for number in range(10):
        key = ctx.key()
        ack = await writer.set(key, number, number + 1)
        await watcher.send({"type": "get", "request_id": f"after{number}", "key": key})
        while True:
            frame = await watcher.recv()
            if frame["type"] in ("push", "pushes"):
                if ack["server_revision"] in _frame_revisions(frame):
                    break
            else:
                expect(
                    frame.get("request_id") != f"after{number}",
                    f"the reply to a get overtook the push of revision {ack['server_revision']}",
                )


@check()
async def every_device_gets_every_push_once_in_revision_order(ctx: Context) -> None:
    """Three writers pipelining: each device sees revisions R+1, R+2, … after its snapshot at R."""
    plain = await ctx.connect()
    batched = await ctx.connect()
    start = [
        (await plain.hello(ctx.device_id()))["revision"],
        (await batched.hello(ctx.device_id(), batch_pushes=True))["revision"],
    ]
    writers = [(await ctx.device())[0] for _ in range(3)]
    results = await asyncio.gather(
        *(_pipeline(w, [ctx.key() for _ in range(20)]) for w in writers), return_exceptions=True
    )
    acked: list[Message] = []
    for result in results:
        if isinstance(result, BaseException):
            raise result
        acked += result
    newest = max(ack["server_revision"] for ack in acked)
    for peer, since in zip((plain, batched), start, strict=True):
        seen = await _revisions_until(peer, newest)
        expect(
            seen == list(range(since + 1, seen[-1] + 1)),
            f"pushes after a snapshot at {since} were {_runs(seen)}",
        )


@check()
async def after_a_snapshot_at_r_exactly_the_writes_above_r_arrive_as_pushes(ctx: Context) -> None:
    """Resyncing amid writes: a snapshot at R (all its pages) is followed by push R+1, no gap."""
    reader = await ctx.connect()
    device_id = ctx.device_id()
    last = (await reader.hello(device_id))["revision"]
    writer, _ = await ctx.device()
    key = ctx.key()
    writes = asyncio.ensure_future(_pipeline(writer, [key] * 60))
    try:
        for _ in range(5):  # resync five times while the writes stream in
            since = last
            await reader.send({"type": "hello", "device_id": device_id, "since": since})
            # Even a small snapshot may come in pages (a page may end early to let a
            # write commit): pushes above its revision go on between them.
            snapshot_at: int | None = None
            more = True
            while more:
                frame = await reader.recv_type("push", "pushes", "snapshot")
                if frame["type"] != "snapshot":
                    for revision in _frame_revisions(frame):
                        expect(revision == last + 1, f"push {revision} arrived after {last}")
                        last = revision
                    continue
                expect_snapshot(frame, since=since)
                if snapshot_at is None:
                    revision = frame["revision"]
                    expect(revision >= last, f"snapshot at {revision} after push {last}")
                    snapshot_at = last = revision
                expect(
                    frame["revision"] == snapshot_at,
                    f"a page at {frame['revision']} in a snapshot at {snapshot_at}",
                )
                more = frame.get("more") is True
        newest = max(ack["server_revision"] for ack in await writes)
        while last < newest:
            for revision in _frame_revisions(await reader.recv_type("push", "pushes")):
                expect(revision == last + 1, f"push {revision} arrived after {last}")
                last = revision
    finally:
        writes.cancel()
        if writes.done() and not writes.cancelled():
            writes.exception()  # retrieved: a failed write already failed the check


@check()
async def a_big_snapshot_comes_in_pages_of_at_most_512_kib(ctx: Context) -> None:
    """A snapshot over 512 KiB is split: same revision/epoch/since, more: true but on the last."""
    writer, _ = await ctx.device()
    first = await writer.set(ctx.key("start"), 0, 1)
    since = first["server_revision"]
    keys = [ctx.key("page") for _ in range(12)]
    await _pipeline(writer, keys, "x" * 60_000)
    reader = await ctx.connect()
    snapshot = await reader.hello(ctx.device_id(), since=since)
    pages = snapshot["pages"]
    expect(len(pages) >= 2, f"720 KB of values came in {len(pages)} page")
    for page in pages:
        expect(page["_bytes"] <= MAX_PAGE_BYTES, f"a page is {page['_bytes']} bytes")
        expect_snapshot(page, since=since)
        expect(
            (page["revision"], page["epoch"]) == (pages[0]["revision"], pages[0]["epoch"]),
            "the pages of one snapshot differ in revision or epoch",
        )
    expect(
        [page.get("more", False) for page in pages] == [True] * (len(pages) - 1) + [False],
        "more must be true on every page but the last",
    )
    got = {entry["key"] for entry in snapshot["values"]}
    expect(set(keys) <= got, f"{len(set(keys) - got)} keys missing from the pages")
    revisions = [entry["server_revision"] for entry in snapshot["values"]]
    expect(revisions == sorted(revisions), "the pages are not oldest first across pages")


@check()
async def a_big_commit_is_pushed_in_frames_of_at_most_512_kib(ctx: Context) -> None:
    """pushes frames stay under 512 KiB even when one commit holds more; still in order."""
    reader = await ctx.connect()
    since = (await reader.hello(ctx.device_id(), batch_pushes=True))["revision"]
    writer, _ = await ctx.device()
    acks = await _pipeline(writer, [ctx.key() for _ in range(12)], "y" * 60_000)
    newest = max(ack["server_revision"] for ack in acks)
    seen: list[int] = []
    while not seen or seen[-1] < newest:
        frame = await reader.recv_type("pushes", "push")
        expect(frame["_bytes"] <= MAX_PAGE_BYTES, f"a pushes frame is {frame['_bytes']} bytes")
        seen += _frame_revisions(frame)
    expect(seen == list(range(since + 1, seen[-1] + 1)), f"pushes were {_runs(seen)}")


def _runs(revisions: list[int]) -> str:
    """1,2,3,5,6 → "1-3, 5-6": short enough for a failure line."""
    if not revisions:
        return "none"
    runs: list[str] = []
    start = previous = revisions[0]
    for revision in [*revisions[1:], None]:
        if revision is not None and revision == previous + 1:
            previous = revision
            continue
        runs.append(f"{start}-{previous}" if start != previous else str(start))
        if revision is not None:
            start = previous = revision
    return ", ".join(runs)
