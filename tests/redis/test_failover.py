"""Faults on the Redis backend: an instance SIGKILLed under load, Redis restarted."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

from app.link import DeviceSession
from app.link.backoff import Backoff
from syncserver.protocol import Ack
from tests.faults.test_real_process_faults import ITEMS, record_acks, wait_converged
from tests.redis.conftest import Client, Clients, Instances, RedisServer
from tests.timeouts import TIMEOUT

ROUNDS = 120


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def test_devices_fail_over_to_another_instance_when_theirs_is_killed(
    instances: Instances, tmp_path: Path
) -> None:
    """SIGKILL one of two instances mid-load: its devices move on, converge, lose no ack."""
    rng = random.Random(8)
    doomed, survivor = await instances(2)
    acks: list[Ack] = []
    preferences = [[doomed.url, survivor.url]] * 2 + [[survivor.url, doomed.url]]
    sessions = [
        await DeviceSession.open(
            f"device-{n}",
            urls,
            data_dir=tmp_path / f"device-{n}",
            request_timeout=2.0,
            backoff=Backoff(initial=0.02, maximum=0.2),
        )
        for n, urls in enumerate(preferences)
    ]
    try:
        for session in sessions:
            record_acks(session, acks)
            await asyncio.wait_for(session.client.wait_online(), TIMEOUT)
        assert [s.status.url for s in sessions] == [doomed.url, doomed.url, survivor.url]
        acked_before_kill = 0
        for round_ in range(ROUNDS):
            rng.choice(sessions).toggle_like(rng.choice(ITEMS))
            if round_ == ROUNDS // 2:
                acked_before_kill = len(acks)
                await doomed.kill()
            await asyncio.sleep(rng.uniform(0, 0.01))  # the pace of the load, not a wait
        revision, registers = await wait_converged(sessions, port_of(survivor.url))
        assert [s.status.url for s in sessions] == [survivor.url] * 3
    finally:
        for session in sessions:
            await session.close()
    assert acked_before_kill > 0
    assert len(acks) > acked_before_kill, "no write was acknowledged after the failover"
    assert revision >= max(ack.server_revision for ack in acks)
    for ack in acks:
        value, register_revision = registers[ack.key]
        assert register_revision >= ack.server_revision, ack
        if register_revision == ack.server_revision:
            assert value == ack.value, ack


async def set_until_acked(client: Client, key: str, value: Any) -> dict[str, Any]:
    """Send the set again after each error reply (Redis still coming back) until acked."""

    kept: list[dict[str, Any]] = []

    async def attempt() -> dict[str, Any]:
        request = 0
        while True:
            request += 1
            await client.set_nowait(key, value, request_id=request)
            while True:
                reply = await client.recv()
                if reply["type"] in ("ack", "error") and reply["request_id"] == request:
                    break
                kept.append(reply)
            if reply["type"] == "ack":
                return reply
            assert reply["code"] == "unavailable", reply
            await asyncio.sleep(0.05)  # retry pace while Redis restarts, not a wait

    try:
        return await asyncio.wait_for(attempt(), TIMEOUT)
    finally:
        client.skipped[:0] = kept


async def test_instances_reconnect_and_keep_serving_after_redis_restarts(
    redis_server: RedisServer, instances: Instances, clients: Clients
) -> None:
    """Redis SIGKILLed and restarted on its AOF: acked writes kept, both instances serve."""
    a, b = await instances(2)
    on_a = await clients(a.url)
    on_b = await clients(b.url)
    await on_a.hello()
    await on_b.hello(device_id=2)
    assert (await on_a.set("before", 1))["server_revision"] == 1
    assert (await on_b.recv_type("push"))["server_revision"] == 1

    await asyncio.to_thread(redis_server.restart)

    ack = await set_until_acked(on_a, "after-a", 2)
    assert ack["server_revision"] == 2, "the counter did not survive the restart"
    assert (await on_b.recv_type("push"))["key"] == "after-a"
    ack = await set_until_acked(on_b, "after-b", 3)
    assert ack["server_revision"] == 3
    revisions = [(await on_a.recv_type("push"))["server_revision"] for _ in range(3)]
    assert revisions == [1, 2, 3]
    fresh = await clients(b.url)
    snapshot = await fresh.hello(device_id=3)
    assert {v["key"]: v["server_revision"] for v in snapshot["values"]} == {
        "before": 1,
        "after-a": 2,
        "after-b": 3,
    }
