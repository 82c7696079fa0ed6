"""Other clients of the server: raw connections that impersonate, flood and nest.

Each speaks the protocol as plain JSON on a connection of its own (after a
hello with :data:`RAW_DEVICE_ID`) and reports to the monitor when the server
accepts what it must refuse, or refuses what it must accept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from syncserver.protocol import MAX_VALUE_DEPTH

from .invariants import Monitor
from .network import Network

__all__ = [
    "RAW_DEVICE_ID",
    "big_data",
    "exchange",
    "impersonate",
    "nested_value",
    "stolen_write",
]

RAW_DEVICE_ID = 987_654_321
"""The device id raw clients say hello with (no simulated device has it)."""
_WRONG_SECRET = "not-the-device-secret-" + "x" * 22
_PATIENCE = 10.0
"""How long (virtual seconds) a raw client waits for its replies."""


async def exchange(network: Network, frames: list[str], wanted: set[Any]) -> dict[Any, Any]:
    """Send ``frames`` after a hello; the replies by request id (None: an error that
    could not name its request), empty if the server was unreachable or closed."""
    try:
        connection = await network.open(None, None)
    except OSError:
        return {}
    client = connection.client
    replies: dict[Any, Any] = {}
    await client.send(json.dumps({"type": "hello", "device_id": RAW_DEVICE_ID, "since": 0}))
    for frame in frames:
        await client.send(frame)

    async def read() -> None:
        async for frame in client:
            if not frame.startswith(('{"type":"ack"', '{"type":"error"')):
                continue
            reply = json.loads(frame)
            replies[reply.get("request_id")] = reply
            if wanted <= replies.keys() or None in replies:
                return

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(read(), _PATIENCE)
    await client.close()
    return replies


async def stolen_write(
    network: Network, monitor: Monitor, key: str, value: Any, victim: int | None
) -> None:
    """A set of ``key`` naming device ``victim``'s id: it must get ``device_mismatch``."""
    frame = json.dumps(
        {
            "type": "set",
            "request_id": 1,
            "key": key,
            "value": value,
            "local_revision": 0,
            "device_id": victim,
        }
    )
    reply = (await exchange(network, [frame], {1})).get(1)
    if reply is not None and reply["type"] == "ack":
        monitor.problem(
            f"the server accepted a set of {key!r} naming device id {victim} "
            "from another connection"
        )


async def impersonate(
    network: Network,
    monitor: Monitor,
    key: str,
    value: Any,
    victim: int,
    *,
    on_record: Callable[[], bool] | None = None,
) -> None:
    """A hello as device ``victim`` with a wrong secret, then a set of ``key``: the
    server must close the connection (1008) before writing anything. With
    ``on_record``, the hello is only sent if it says the server (the process this
    connection reached) has the victim's secret on record."""
    try:
        connection = await network.open(None, None)
    except OSError:
        return
    client = connection.client
    if on_record is not None and not on_record():
        await client.close()
        return
    hello = {"type": "hello", "device_id": victim, "since": 0, "device_secret": _WRONG_SECRET}
    await client.send(json.dumps(hello))
    frame = {"type": "set", "request_id": 1, "key": key, "value": value, "local_revision": 0}
    await client.send(json.dumps(frame))
    reply = None

    async def read() -> None:
        nonlocal reply
        async for received in client:
            if received.startswith('{"type":"ack"'):
                reply = json.loads(received)
                return

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(read(), _PATIENCE)
    await client.close()
    if reply is not None and on_record is not None:
        monitor.problem(
            f"the server accepted a hello as device id {victim} with a wrong secret "
            f"and wrote {key!r}"
        )


async def big_data(network: Network, keys: int, size: int) -> None:
    """``keys`` strings of ``size`` characters in one burst (``blob/N`` keys)."""
    filler = "x" * size
    frames = [
        json.dumps(
            {
                "type": "set",
                "request_id": number,
                "key": f"blob/{number}",
                "value": filler,
                "local_revision": 1,
            }
        )
        for number in range(keys)
    ]
    await exchange(network, frames, set(range(keys)))


async def nested_value(network: Network, monitor: Monitor, depth: int) -> None:
    """A value nested ``depth`` levels: refused past MAX_VALUE_DEPTH, stored up to it."""
    nested = "[" * depth + "]" * depth
    head = f'{{"type":"set","request_id":1,"key":"nested/{depth}","value":'
    replies = await exchange(network, [head + nested + ',"local_revision":1}'], {1})
    reply = replies.get(1) or replies.get(None)
    if reply is None:
        return
    refused = reply["type"] == "error" and reply.get("code") == "bad_request"
    if depth > MAX_VALUE_DEPTH and reply["type"] == "ack":
        monitor.problem(f"the server stored a value nested {depth} levels deep")
    if depth <= MAX_VALUE_DEPTH and refused:
        monitor.problem(f"the server refused a value nested only {depth} levels deep")
