"""Case 5: values nested deeper than any device can decode."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cases.conftest import StartDevice, StartServer, raw_client, registers


@pytest.mark.parametrize("depth", [980, 100_000])
async def test_deeply_nested_value_is_refused_and_every_device_stays_online(
    start_server: StartServer, start_device: StartDevice, tmp_path: Path, depth: int
) -> None:
    """The set gets bad_request on an open connection, nothing is stored, devices connect."""
    server = await start_server()
    async with raw_client(server.url) as writer:
        await writer.send(type="hello", device_id=7, since=0)
        nested = "[" * depth + "]" * depth
        await writer.ws.send(
            '{"type": "set", "request_id": 1, "key": "deep", "value": '
            + nested
            + ', "local_revision": 1, "device_id": 7}'
        )
        reply = await writer.receive_until(lambda m: m["type"] == "error")
        assert reply["code"] == "bad_request"
        assert reply["request_id"] in (1, None)  # None: too deep to read even the id
        await writer.send(type="get", request_id=2, key="deep")
        assert (await writer.reply_to(2))["type"] == "value"  # still open
    revision, held = await registers(server.url)
    assert "deep" not in held
    device = await start_device("Reader", tmp_path / "reader", server.url)
    await device.settled(revision)
