"""Checks on servers the kit starts itself: token, limits, restarts, shutdown.

Each needs ``--start-server``; the options appended to that command are the
server options PROTOCOL.md documents.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import socket

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from .messages import expect_error, expect_snapshot, still_open
from .peer import CheckFailed, Peer, expect
from .registry import Context, check

__all__ = ["TOKEN"]

TOKEN = "conformance-secret"


@check(needs_launcher=True)
async def a_hello_without_the_servers_token_closes_1008(ctx: Context) -> None:
    """--token: a hello without the token or with a wrong one closes 1008, and so does a
    set before it."""
    server = await ctx.require_launcher().shared("--token", TOKEN)
    for first in (
        {"type": "set", "request_id": "early", "key": ctx.key(), "value": 1, "local_revision": 1},
        {"type": "hello", "device_id": 1, "since": 0},
        {"type": "hello", "device_id": 1, "since": 0, "token": TOKEN + "x"},
    ):
        peer = await ctx.connect(server.url)
        await peer.send(first)
        code = await peer.wait_closed()
        expect(code == 1008, f"{first} closed with {code}, expected 1008")
    peer = await ctx.connect(server.url)
    expect_snapshot(await peer.hello(ctx.device_id(), token=TOKEN), since=0)
    expect((await peer.set(ctx.key(), 1, 1))["type"] == "ack", "a set after a good hello failed")


@check(needs_launcher=True)
async def demo_controls_are_refused_without_allow_chaos(ctx: Context) -> None:
    """Without --allow-chaos, chaos and observe get chaos_disabled naming their request_id."""
    server = await ctx.require_launcher().shared("--token", TOKEN)
    peer = await ctx.connect(server.url)
    await peer.hello(ctx.device_id(), token=TOKEN)
    for kind in ("chaos", "observe", "unobserve"):
        reply = await peer.request({"type": kind, "request_id": kind}, "chaos_state")
        expect_error(reply, "chaos_disabled", kind)
    await still_open(peer)


@check(needs_launcher=True)
async def demo_controls_need_the_token_on_a_server_with_one(ctx: Context) -> None:
    """--token --allow-chaos: chaos or observe before a hello with the token close 1008."""
    server = await ctx.require_launcher().shared("--token", TOKEN, "--allow-chaos")
    for kind in ("chaos", "observe"):
        peer = await ctx.connect(server.url)
        await peer.send({"type": kind, "request_id": kind})
        code = await peer.wait_closed()
        expect(code == 1008, f"{kind} before hello closed with {code}, expected 1008")
    peer = await ctx.connect(server.url)
    await peer.hello(ctx.device_id(), token=TOKEN)
    state = await peer.request({"type": "chaos", "request_id": "after"}, "chaos_state")
    expect(state["type"] == "chaos_state", f"after the hello, chaos got {state}")


@check(needs_launcher=True)
async def without_a_device_secret_a_server_that_requires_them_closes_1008(ctx: Context) -> None:
    """--require-device-secrets: a first hello without device_secret closes 1008; with one it
    is answered."""
    server = await ctx.require_launcher().shared("--require-device-secrets")
    peer = await ctx.connect(server.url)
    await peer.send({"type": "hello", "device_id": ctx.device_id(), "since": 0})
    code = await peer.wait_closed()
    expect(code == 1008, f"a hello without a secret closed with {code}, expected 1008")
    peer = await ctx.connect(server.url)
    snapshot = await peer.hello(ctx.device_id(), device_secret=secrets.token_urlsafe(32))
    expect_snapshot(snapshot, since=0)


@check(needs_launcher=True)
async def past_max_connections_the_handshake_gets_http_503(ctx: Context) -> None:
    """--max-connections 2: a third handshake is refused with HTTP 503; a freed slot is reused."""
    server = await ctx.require_launcher().shared("--max-connections", "2")
    first = await ctx.connect(server.url)
    await ctx.connect(server.url)
    try:
        await ctx.connect(server.url)
    except InvalidStatus as exc:
        expect(exc.response.status_code == 503, f"refused with {exc.response.status_code}")
    else:
        raise CheckFailed("a third connection was accepted")
    await first.close()
    async with asyncio.timeout(ctx.timeout):
        while True:  # the server notices the close a moment later
            try:
                peer = await ctx.connect(server.url)
                break
            except InvalidStatus:
                await asyncio.sleep(0.02)
    await peer.hello(ctx.device_id())


@check(needs_launcher=True)
async def past_the_connections_per_address_the_handshake_gets_http_429(ctx: Context) -> None:
    """--max-connections-per-address 2 --limit-loopback: a third from one address gets 429."""
    server = await ctx.require_launcher().shared(
        "--max-connections-per-address", "2", "--limit-loopback"
    )
    await ctx.connect(server.url)
    await ctx.connect(server.url)
    try:
        await ctx.connect(server.url)
    except InvalidStatus as exc:
        expect(exc.response.status_code == 429, f"refused with {exc.response.status_code}")
    else:
        raise CheckFailed("a third connection from one address was accepted")


@check(needs_launcher=True)
async def messages_over_the_rate_limit_get_rate_limited(ctx: Context) -> None:
    """--rate-limit 1 --rate-burst 3: the extra gets are answered rate_limited; nothing closes."""
    server = await ctx.require_launcher().shared("--rate-limit", "1", "--rate-burst", "3")
    peer = await ctx.connect(server.url)
    await peer.hello(ctx.device_id())
    for number in range(6):
        await peer.send({"type": "get", "request_id": number, "key": "k"})
    replies = [await peer.reply_to(number, "value") for number in range(6)]
    limited = [reply["request_id"] for reply in replies if reply.get("code") == "rate_limited"]
    expect(len(limited) >= 3, f"only requests {limited} of 6 were rate_limited")
    for reply in replies:
        expect(reply["type"] == "value" or reply.get("code") == "rate_limited", f"got {reply}")


@check(needs_launcher=True)
async def a_device_that_stops_reading_is_dropped_without_a_close_frame(ctx: Context) -> None:
    """--max-send-buffer 1 MiB: a device that stops reading is aborted (1006), then catches up."""
    server = await ctx.require_launcher().shared("--max-send-buffer", str(2**20))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = server.url.removeprefix("ws://").rsplit(":", 1)
    sock.connect((host.strip("[]"), int(port)))
    slow = Peer(await _connect_on(server.url, sock, ctx.timeout), ctx.timeout)
    since = (await slow.hello(ctx.device_id()))["revision"]
    writer = await ctx.connect(server.url)
    await writer.hello(ctx.device_id())
    key = ctx.key()
    for round_ in range(20):  # 20 × 8 × 60 KB: far past any socket buffer
        ids = []
        for _ in range(8):
            request_id = writer.next_id()
            ids.append(request_id)
            await writer.send(
                {
                    "type": "set",
                    "request_id": request_id,
                    "key": key,
                    "value": "z" * 60_000,
                    "local_revision": round_ + 1,
                }
            )
        for request_id in ids:
            await writer.reply_to(request_id, "ack")
        writer.skipped.clear()
    code = await slow.wait_closed()
    expect(code == 1006, f"the slow device's connection ended with {code}, expected 1006")
    again = await ctx.connect(server.url)
    snapshot = await again.hello(ctx.device_id(), since=since)
    expect(any(e["key"] == key for e in snapshot["values"]), "the catch-up lacks the writes")


async def _connect_on(url: str, sock: socket.socket, wait: float) -> ClientConnection:
    """A connection over ``sock`` that reads only when asked (one frame queued at most)."""
    sock.setblocking(False)
    return await connect(
        url, sock=sock, open_timeout=wait, compression=None, max_size=2**20, max_queue=1
    )


@check(needs_launcher=True)
async def a_restart_on_the_same_data_keeps_the_epoch_and_the_revisions(ctx: Context) -> None:
    """SIGTERM exits 0; restarted on the same data: same epoch, same values, revisions go on."""
    launcher = ctx.require_launcher()
    server = await launcher.start()
    peer = await ctx.connect(server.url)
    epoch = (await peer.hello(ctx.device_id()))["epoch"]
    key = ctx.key()
    ack = await peer.set(key, "durable", 1)
    expect(await server.stop() == 0, "the server did not exit 0 on SIGTERM")
    again = await launcher.start(data_dir=server.data_dir)
    try:
        peer = await ctx.connect(again.url)
        snapshot = await peer.hello(ctx.device_id())
        expect(snapshot["epoch"] == epoch, "the epoch changed across a restart on the same data")
        expect(snapshot["revision"] >= ack["server_revision"], "the revision went back")
        expect(
            any(e["key"] == key and e["value"] == "durable" for e in snapshot["values"]),
            "an acked write was lost across a restart",
        )
        later = await peer.set(ctx.key(), 1, 1)
        expect(later["server_revision"] > ack["server_revision"], "revisions started over")
    finally:
        await again.stop()


@check(needs_launcher=True, needs_fresh_data=True)
async def a_new_database_has_a_new_epoch(ctx: Context) -> None:
    """A server on fresh data has another epoch; a hello with the old one gets since 0."""
    launcher = ctx.require_launcher()
    first = await launcher.start()
    second = await launcher.start()
    try:
        old = await (await ctx.connect(first.url)).hello(ctx.device_id())
        peer, device_id = await ctx.connect(second.url), ctx.device_id()
        new = await peer.hello(device_id)
        expect(old["epoch"] != new["epoch"], "two fresh databases share an epoch")
        reset = await peer.hello(device_id, since=old["revision"] + 5, epoch=old["epoch"])
        expect_snapshot(reset, since=0)
    finally:
        await first.stop()
        await second.stop()


@check(needs_launcher=True)
async def shutdown_acks_what_committed_refuses_what_waits_and_closes_1001(
    ctx: Context,
) -> None:
    """SIGTERM: a delayed set is answered unavailable, then the connection closes 1001."""
    launcher = ctx.require_launcher()
    server = await launcher.start("--allow-chaos")
    try:
        peer = await ctx.connect(server.url)
        await peer.hello(ctx.device_id())
        done = ctx.key()
        expect((await peer.set(done, 1, 1))["type"] == "ack", "a plain set failed")
        await peer.request({"type": "chaos", "write_delay": 30}, "chaos_state")
        waiting = ctx.key()
        await peer.send(
            {"type": "set", "request_id": "w", "key": waiting, "value": 1, "local_revision": 2}
        )
        # The observer feed shows when the server holds the set in its write delay.
        watcher = await ctx.connect(server.url)
        await watcher.send({"type": "observe"})
        while (await watcher.recv_type("server_state"))["requests_in_flight"] < 1:
            pass
        server.process.send_signal(signal.SIGTERM)
        expect_error(await peer.reply_to("w", "ack"), "unavailable", "w")
        code = await peer.wait_closed()
        expect(code == 1001, f"closed with {code}, expected 1001")
        expect(await server.stop() == 0, "the server did not exit 0 on SIGTERM")
    finally:
        await server.stop()
    again = await launcher.start(data_dir=server.data_dir)
    try:
        peer = await ctx.connect(again.url)
        values = {e["key"]: e["value"] for e in (await peer.hello(ctx.device_id()))["values"]}
        expect(done in values and waiting not in values, "shutdown lost or wrote the wrong set")
    finally:
        await again.stop()
