"""Case 8: a device process killed right after its first taps."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.cases.conftest import StartDevice, StartServer, honest, registers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_device_killed_right_after_its_first_tap_comes_back_as_the_same_device(
    start_server: StartServer, start_device: StartDevice, tmp_path: Path
) -> None:
    """The process kills itself the instant its first tap is shown: the reopened device
    has the same id, and shows honestly whatever its state file kept."""
    port = free_port()
    url = f"ws://127.0.0.1:{port}"  # nothing listens yet: only the state file counts
    data_dir = tmp_path / "device"
    device = await start_device("Hasty", data_dir, url, "tap-and-die coffee")
    assert device.process is not None
    assert await device.process.wait() < 0  # killed by its own SIGKILL
    server = await start_server("--port", str(port))
    reopened = await start_device("Hasty", data_dir, url)
    assert reopened.first_line["device_id"] == device.first_line["device_id"]
    assert await honest(reopened, server.url) == []


@pytest.mark.xfail(
    strict=True,
    reason="a tap reaches the state file only when its writer thread commits it: a kill "
    "at once loses it",
)
async def test_tap_shown_an_instant_before_a_kill_survives_it(
    start_server: StartServer, start_device: StartDevice, tmp_path: Path
) -> None:
    """The process kills itself right after the tap is shown, before any server heard of
    it: the reopened device sends it."""
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    data_dir = tmp_path / "device"
    device = await start_device("Hasty", data_dir, url, "tap-and-die coffee")
    assert device.process is not None
    assert await device.process.wait() < 0  # killed by its own SIGKILL
    server = await start_server("--port", str(port))
    reopened = await start_device("Hasty", data_dir, url)
    assert reopened.first_line["device_id"] == device.first_line["device_id"]
    assert await honest(reopened, server.url) == []
    _, held = await registers(server.url)
    assert held.get("like/coffee", (None, 0))[0] is True
