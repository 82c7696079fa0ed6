"""Case 6: the server's Redis is down while a device taps."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cases.conftest import StartDevice, StartServer, honest, raw_client, registers
from tests.redis.conftest import RedisServer
from tests.timeouts import TIMEOUT


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(binary, tmp_path / "redis")
    server.directory.mkdir()
    server.start()
    yield server
    server.kill()


async def test_tap_during_a_backend_outage_reaches_the_server_once_it_is_back(
    redis_server: RedisServer, start_server: StartServer, start_device: StartDevice, tmp_path: Path
) -> None:
    """`unavailable` is retryable: the device keeps the tap and sends it again later."""
    server = await start_server("--backend", redis_server.url())
    device = await start_device("Patient", tmp_path / "patient", server.url)
    await device.settled(0)
    redis_server.kill()
    await device.ask("tap coffee")
    async with raw_client(server.url) as probe:  # the server has noticed the outage
        await probe.send(type="hello", device_id=5, since=0)
        await probe.send(
            type="set", request_id=1, key="probe", value=1, local_revision=1, device_id=5
        )
        reply = await probe.reply_to(1)
    assert (reply["type"], reply.get("code")) == ("error", "unavailable")

    async def coffee_answered_unavailable() -> None:
        # The device is another process: ask for its state until the phase shows.
        while (await device.ask("state"))["items"]["coffee"][1] != "unavailable":  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # poll interval, not a wait for an outcome

    await asyncio.wait_for(coffee_answered_unavailable(), TIMEOUT)
    redis_server.start()

    async def coffee_on_the_server() -> None:
        while True:
            _, held = await registers(server.url)
            if held.get("like/coffee", (None, 0))[0] is True:
                return
            await asyncio.sleep(0.05)  # poll interval, not a wait for an outcome

    await asyncio.wait_for(coffee_on_the_server(), TIMEOUT)
    assert await honest(device, server.url) == []
