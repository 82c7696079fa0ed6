"""Case 8: a device process killed right after its first taps."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.cases.conftest import StartDevice, StartServer, honest, registers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_device_killed_right_after_a_tap_keeps_its_id_and_the_tap(
    start_server: StartServer, start_device: StartDevice, tmp_path: Path
) -> None:
    """SIGKILL a few milliseconds after the tap is shown, before any server heard of it:
    the reopened device is the same device, and the tap reaches the server."""
    port = free_port()
    url = f"ws://127.0.0.1:{port}"  # nothing listens yet: only the state file can keep the tap
    data_dir = tmp_path / "device"
    device = await start_device("Hasty", data_dir, url, "tap coffee")
    assert await device.next_line() == {"tapped": "coffee"}
    await device.kill()
    server = await start_server("--port", str(port))
    reopened = await start_device("Hasty", data_dir, url)
    assert reopened.first_line["device_id"] == device.first_line["device_id"]
    assert await honest(reopened, server.url) == []
    _, held = await registers(server.url)
    assert held.get("like/coffee", (None, 0))[0] is True
