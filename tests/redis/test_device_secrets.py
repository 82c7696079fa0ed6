"""Device secrets recorded in Redis hold across every server process on it."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed

from .conftest import Clients, Instances

SECRET = "s" * 43


async def test_a_device_secret_recorded_through_one_process_is_checked_by_another(
    instances: Instances, clients: Clients
) -> None:
    """--require-device-secrets on two processes: the id's first secret wins on both."""
    a, b = await instances(2, "--require-device-secrets")
    owner = await clients(a.url)
    await owner.hello(device_id=42, device_secret=SECRET)
    thief = await clients(b.url)
    await thief.send({"type": "hello", "device_id": 42, "device_secret": "t" * 43})
    with pytest.raises(ConnectionClosed) as closed:
        await thief.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008
    again = await clients(b.url)
    snapshot = await again.hello(device_id=42, device_secret=SECRET)
    assert snapshot["type"] == "snapshot"
    assert (await again.set("k", 1))["server_revision"] == 1
