"""Redis down: writes are refused as unavailable (retryable), and the log stays readable."""

from __future__ import annotations

import asyncio
import logging

import pytest

from syncserver import serve
from syncserver.backends.redis import RedisBackend
from tests.redis.conftest import Clients, RedisServer
from tests.timeouts import TIMEOUT

from .test_failover import set_until_acked


async def test_sets_are_unavailable_while_redis_is_down_and_the_log_says_so_once(
    redis_server: RedisServer, redis_url: str, clients: Clients, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis killed: each set gets unavailable; "lost the subscription" is logged once."""
    caplog.set_level(logging.WARNING, logger="syncserver.backends.redis")
    async with serve(backend=redis_url) as server:
        backend = server.core.backend
        assert isinstance(backend, RedisBackend)
        client = await clients(server.url)
        await client.hello()
        assert (await client.set("before", 1))["server_revision"] == 1
        await asyncio.to_thread(redis_server.kill)
        try:
            for attempt in range(3):
                await client.set_nowait("during", attempt, request_id=attempt)
                error = await client.recv_type("error")
                assert (error["code"], error["request_id"]) == ("unavailable", attempt)

            async def failed_often() -> None:
                # The backend has no event for its retries; poll the counter.
                while backend.subscription_failures < 3:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)  # poll interval, not a wait for an outcome

            await asyncio.wait_for(failed_often(), TIMEOUT)
        finally:
            await asyncio.to_thread(redis_server.start)
        lost = [r for r in caplog.records if "lost the Redis subscription" in r.getMessage()]
        assert len(lost) == 1
        assert (await set_until_acked(client, "after", 2))["server_revision"] == 2


async def test_instances_on_one_redis_share_its_epoch_across_a_restart(
    redis_server: RedisServer, redis_url: str, clients: Clients
) -> None:
    """Two servers on one Redis send the same epoch; a Redis restart on its AOF keeps it."""
    async with serve(backend=redis_url) as a, serve(backend=redis_url) as b:
        epoch = (await (await clients(a.url)).hello())["epoch"]
        assert (await (await clients(b.url)).hello())["epoch"] == epoch
    await asyncio.to_thread(redis_server.restart)
    async with serve(backend=redis_url) as again:
        assert (await (await clients(again.url)).hello())["epoch"] == epoch
