"""The observer feed over the wire: what triggers a state, and how often states come."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from syncserver import SyncServer, serve

from .conftest import Clients

INTERVAL = 0.2


@pytest.fixture
async def slow_feed(db_path: Path) -> AsyncIterator[SyncServer]:
    async with serve(db_path=db_path, allow_chaos=True, observe_interval=INTERVAL) as running:
        yield running


async def test_hello_on_a_watched_connection_sends_a_new_state(
    slow_feed: SyncServer, clients: Clients
):
    """A connection that observes, then says hello, sees its own device_id in the next state."""
    panel = await clients(slow_feed.url)
    await panel.send({"type": "observe"})
    first = await panel.recv_type("server_state")
    assert [d["device_id"] for d in first["devices"]] == [None]
    await panel.hello(device_id=42)
    after = await panel.recv_type("server_state")
    assert [d["device_id"] for d in after["devices"]] == [42]


async def test_an_observer_never_gets_two_states_closer_than_the_interval(
    slow_feed: SyncServer, clients: Clients
):
    """observe twice, then changes: every state rides a tick of the shared timer, and
    ticks are at least observe_interval apart."""
    loop = asyncio.get_running_loop()
    ticks: list[float] = []
    unsubscribe = slow_feed.observe(lambda state: ticks.append(loop.time()))
    del ticks[0]  # the immediate in-process call, not a tick
    panel = await clients(slow_feed.url)
    await panel.send({"type": "observe"})
    await panel.send({"type": "observe"})
    received = [(await panel.recv_type("server_state"))]
    writer = await clients(slow_feed.url)
    await writer.set("k", 1)
    while received[-1]["revision"] < 1:
        received.append(await panel.recv_type("server_state"))
    unsubscribe()
    # The panel only ever gets states of a tick (an extra state on observe would not be one).
    assert len(received) <= len(ticks)
    gaps = [later - earlier for earlier, later in itertools.pairwise(ticks)]
    assert all(gap >= INTERVAL for gap in gaps), gaps
