"""Case 7: SIGTERM while writes are queued or held back."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from websockets.exceptions import ConnectionClosed

from tests.cases.conftest import RawClient, StartServer, raw_client, registers

BURST = 300


async def replies_until_closed(client: RawClient) -> tuple[dict[Any, dict[str, Any]], int | None]:
    """Every reply (by request id) until the server closes the connection; the close code."""
    replies: dict[Any, dict[str, Any]] = {}
    with contextlib.suppress(ConnectionClosed):
        while True:
            message = await client.receive()
            if "request_id" in message:
                replies[message["request_id"]] = message
    return replies, client.ws.close_code


async def test_sigterm_answers_every_write_it_took_and_acks_every_write_it_kept(
    start_server: StartServer,
) -> None:
    """A held set gets `unavailable`; each committed write is acked; connections close 1001."""
    server = await start_server("--allow-chaos")
    async with raw_client(server.url) as holder, raw_client(server.url) as writer:
        await holder.send(type="hello", device_id=1, since=0)
        await writer.send(type="hello", device_id=2, since=0)
        await holder.send(type="chaos", request_id="slow", write_delay=30.0)
        await holder.reply_to("slow")
        await holder.send(
            type="set", request_id="held", key="held", value=1, local_revision=1, device_id=1
        )
        await holder.send(type="chaos", request_id="fast", write_delay=0.0)
        await holder.reply_to("fast")  # frames are handled in order: "held" is held
        for number in range(BURST):
            await writer.send(
                type="set", request_id=number, key=f"burst/{number}", value=number,
                local_revision=1, device_id=2,
            )  # fmt: skip
        # Keep reading while it stops, as devices do: a client that stops reading
        # would hold up the closing handshake.
        exit_code, (held_replies, held_code), (replies, code) = await asyncio.gather(
            server.terminate(), replies_until_closed(holder), replies_until_closed(writer)
        )
    assert exit_code == 0
    assert held_replies["held"]["type"] == "error"
    assert held_replies["held"]["code"] == "unavailable"
    assert (held_code, code) == (1001, 1001)
    for reply in replies.values():
        assert reply["type"] == "ack" or reply.get("code") == "unavailable", reply
    acked = {reply["key"] for reply in replies.values() if reply["type"] == "ack"}
    await server.start()
    _, held = await registers(server.url)
    assert "held" not in held
    kept = {key for key in held if key.startswith("burst/")}
    assert kept == acked, f"{len(kept - acked)} writes kept without an ack"
