"""Demo controls and the observer feed, in-process and over the wire."""

from __future__ import annotations

import asyncio

from syncserver import ServerState, SyncServer
from tests.timeouts import TIMEOUT

from .conftest import Clients


async def test_demo_controls_are_refused_without_allow_chaos(server: SyncServer, clients: Clients):
    """chaos and observe are answered with chaos_disabled unless the server allows them."""
    client = await clients(server.url)
    await client.send({"type": "chaos", "request_id": 1, "push_enabled": False})
    error = await client.recv_type("error")
    assert (error["code"], error["request_id"]) == ("chaos_disabled", 1)
    await client.send({"type": "observe", "request_id": 2})
    assert (await client.recv_type("error"))["code"] == "chaos_disabled"
    assert server.chaos.settings.push_enabled


async def test_chaos_message_changes_settings_and_reports_them(
    chaos_server: SyncServer, clients: Clients
):
    """A chaos message changes the fields it names and answers every setting in force."""
    client = await clients(chaos_server.url)
    await client.send({"type": "chaos", "request_id": "c", "ack_delay": 0.5, "fail_next": 2})
    state = await client.recv_type("chaos_state")
    assert state == {
        "type": "chaos_state",
        "request_id": "c",
        "settings": {
            "write_delay": 0.0,
            "ack_delay": 0.5,
            "push_enabled": True,
            "push_delay": 0.0,
            "push_jitter": 0.0,
            "fail_next": 2,
        },
    }
    await client.send({"type": "chaos", "reset": True})
    assert (await client.recv_type("chaos_state"))["settings"]["ack_delay"] == 0.0


async def test_chaos_delay_out_of_range_is_bad_request(chaos_server: SyncServer, clients: Clients):
    """Negative or huge delays are refused like any other bad field."""
    client = await clients(chaos_server.url)
    await client.send({"type": "chaos", "request_id": 1, "write_delay": -1})
    assert (await client.recv_type("error"))["code"] == "bad_request"
    assert chaos_server.chaos.settings.write_delay == 0.0


async def test_ack_delay_lets_the_push_overtake_the_ack(chaos_server: SyncServer, clients: Clients):
    """With an ack delay the writer sees its push first; the write is durable meanwhile."""
    chaos_server.chaos.set_ack_delay(0.2)
    client = await clients(chaos_server.url)
    await client.set_nowait("k", 1)
    first = await client.recv()
    assert first["type"] == "push"
    assert chaos_server.requests_in_flight == 1
    assert (await client.recv())["type"] == "ack"
    assert chaos_server.requests_in_flight == 0


async def test_write_delay_holds_the_write_back(chaos_server: SyncServer, clients: Clients):
    """With a write delay nothing is stored until the delay has passed, then it is acked."""
    chaos_server.chaos.set_write_delay(0.2)
    client = await clients(chaos_server.url)
    await client.set_nowait("k", 1)
    observer = await clients(chaos_server.url)
    assert (await observer.get("k"))["server_revision"] == 0
    assert chaos_server.requests_in_flight == 1
    assert (await client.recv_type("ack"))["server_revision"] == 1


async def test_pushes_off_still_stores_and_acks(chaos_server: SyncServer, clients: Clients):
    """With pushes off a set is acked and stored but nobody gets a push."""
    chaos_server.chaos.set_push_enabled(False)
    client = await clients(chaos_server.url)
    assert (await client.set("k", 1))["server_revision"] == 1
    assert (await client.get("k"))["value"] == 1
    assert client.skipped == []


async def test_push_delay_with_jitter_still_delivers_every_push(
    chaos_server: SyncServer, clients: Clients
):
    """Delayed, jittered pushes all arrive (possibly out of order)."""
    chaos_server.chaos.set_push_delay(0.01, jitter=0.05)
    watcher = await clients(chaos_server.url)
    await watcher.hello(device_id=2)
    writer = await clients(chaos_server.url)
    for i in range(10):
        await writer.set(f"k{i}", i)
    seen = {(await watcher.recv_type("push"))["server_revision"] for _ in range(10)}
    assert seen == set(range(1, 11))


async def test_fail_next_refuses_one_request_and_writes_nothing(
    chaos_server: SyncServer, clients: Clients
):
    """fail_next makes the next request fail with injected_failure; the one after works."""
    chaos_server.chaos.fail_next()
    client = await clients(chaos_server.url)
    await client.set_nowait("k", 1, request_id=5)
    error = await client.recv_type("error")
    assert (error["code"], error["request_id"]) == ("injected_failure", 5)
    assert chaos_server.revision == 0
    assert (await client.set("k", 1))["server_revision"] == 1


async def test_wire_observer_feed_shows_devices_requests_and_values(
    chaos_server: SyncServer, clients: Clients
):
    """observe sends a server_state (at the next tick of the feed) and again after changes."""
    panel = await clients(chaos_server.url)
    await panel.send({"type": "observe", "request_id": 1})
    initial = await panel.recv_type("server_state")
    assert initial["revision"] == 0
    device = await clients(chaos_server.url)
    await device.hello(device_id=42)
    await device.set("like/1", True, device_id=42)
    while True:
        state = await panel.recv_type("server_state")
        if state["revision"] == 1 and state["requests_in_flight"] == 0:
            break
    assert state["values"] == [
        {
            "key": "like/1",
            "value": True,
            "server_revision": 1,
            "local_revision": 1,
            "device_id": 42,
            "space": "default",
        }
    ]
    assert 42 in [d["device_id"] for d in state["devices"]]
    assert ["default"] in [d["spaces"] for d in state["devices"]]
    assert state["requests_received"] == 1  # the set; hellos and observe are not requests
    await panel.send({"type": "unobserve"})


async def test_in_process_observer_and_states_iterator(chaos_server: SyncServer, clients: Clients):
    """server.observe() calls back with ServerState; server.states() yields them."""
    seen: list[ServerState] = []
    unsubscribe = chaos_server.observe(seen.append)
    assert seen[0].revision == 0
    client = await clients(chaos_server.url)
    await client.set("k", "v")

    async def wait_for_revision(revision: int) -> ServerState:
        async for state in chaos_server.states():
            if state.revision == revision and not state.requests_in_flight:
                return state
        raise AssertionError("feed ended")

    state = await asyncio.wait_for(wait_for_revision(1), TIMEOUT)
    assert [(v.key, v.server_revision) for v in state.values] == [("k", 1)]
    assert len(state.devices) == 1
    unsubscribe()
