"""The ceiling of one push delivery: a bare websockets broadcast server, in process.

The server relays every frame it receives to every connection with
``broadcast()`` (compression off, like the sync server). Its clients are plain
websockets clients reading with ``async for``, as the device link does, on the
same loop as the server, as the devices of the convergence benchmark are.
Nothing else happens, so one delivery here is the best this machine and this
stack can do with that many clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.perf._bare import bare_running

__all__ = ["bare_broadcast", "push_delivery"]

PUSH_LIKE = (
    b'{"type":"push","key":"like/item-0001","value":true,"server_revision":100001,'
    b'"local_revision":1,"device_id":1000}'
)
"""A frame the size and shape of a push."""


def bare_broadcast() -> contextlib.AbstractAsyncContextManager[str]:
    """Run the bare broadcast server on this loop; yields its ``ws://`` URL."""
    return bare_running("broadcast")


async def _open(url: str) -> ClientConnection:
    return await connect(url, compression=None)


async def push_delivery(clients: int, rounds: int) -> float:
    """Median seconds from one client sending a frame until all ``clients`` got it."""
    received = 0
    everyone: asyncio.Future[None] | None = None

    async def read(ws: ClientConnection) -> None:
        nonlocal received
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                received += 1
                if received == clients and everyone is not None and not everyone.done():
                    everyone.set_result(None)

    async with bare_broadcast() as url:
        sockets = []
        for start in range(0, clients, 100):
            batch = range(start, min(clients, start + 100))
            sockets.extend(await asyncio.gather(*(_open(url) for _ in batch)))
        readers = [asyncio.create_task(read(ws)) for ws in sockets]
        samples = []
        try:
            for _ in range(rounds):
                received = 0
                everyone = asyncio.get_running_loop().create_future()
                started = time.perf_counter()
                await sockets[0].send(PUSH_LIKE.decode())
                await asyncio.wait_for(everyone, 30)
                samples.append(time.perf_counter() - started)
                await asyncio.sleep(0.01)  # let the loop settle between rounds
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets))
            await asyncio.gather(*readers, return_exceptions=True)
    return statistics.median(samples)
