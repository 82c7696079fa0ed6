"""The observer feed over the wire: what triggers a state, and how often states come."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from syncserver import SyncServer, serve

from .conftest import Client, Clients

INTERVAL = 0.2


@pytest.fixture
async def slow_feed(db_path: Path) -> AsyncIterator[SyncServer]:
    async with serve(db_path=db_path, allow_chaos=True, observe_interval=INTERVAL) as running:
        yield running


async def next_state(client: Client) -> tuple[float, dict[str, Any]]:
    state = await client.recv_type("server_state")
    return time.monotonic(), state


async def test_hello_on_a_watched_connection_sends_a_new_state(
    slow_feed: SyncServer, clients: Clients
):
    """A connection that observes, then says hello, sees its own device_id in the next state."""
    panel = await clients(slow_feed.url)
    await panel.send({"type": "observe"})
    _, first = await next_state(panel)
    assert [d["device_id"] for d in first["devices"]] == [None]
    await panel.hello(device_id=42)
    _, after = await next_state(panel)
    assert [d["device_id"] for d in after["devices"]] == [42]


async def test_an_observer_never_gets_two_states_closer_than_the_interval(
    slow_feed: SyncServer, clients: Clients
):
    """observe twice, then a change: the states still come at least observe_interval apart."""
    panel = await clients(slow_feed.url)
    await panel.send({"type": "observe"})
    await panel.send({"type": "observe"})
    first_at, _ = await next_state(panel)
    writer = await clients(slow_feed.url)
    await writer.set("k", 1)
    second_at, second = await next_state(panel)
    # Received times: allow for delivery jitter of a few milliseconds.
    assert second_at - first_at >= INTERVAL * 0.8
    newest = second
    while newest["revision"] < 1:
        _, newest = await next_state(panel)
    assert newest["values"][0]["key"] == "k"
