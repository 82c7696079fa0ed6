"""Case 1: two processes open one device (same name, same data directory)."""

from __future__ import annotations

from pathlib import Path

from tests.cases.conftest import StartDevice, StartServer, honest, registers


async def test_second_process_on_one_device_never_shows_a_wrong_synced_value(
    start_server: StartServer, start_device: StartDevice, tmp_path: Path
) -> None:
    """Both processes tap one item; whatever either shows as synced, the server holds."""
    server = await start_server()
    home = tmp_path / "home"
    first = await start_device("Device A", home, server.url)
    second = await start_device("Device A", home, server.url)
    running = [first]
    if "open_failed" in second.first_line:
        # Refusing the second open is one honest answer; it must say why, in one line.
        assert "\n" not in second.first_line["open_failed"].strip()
    else:
        running.append(second)
    # One process's local revision for the item runs ahead of the other's...
    for _ in range(2):
        await running[-1].ask("tap coffee")
        await running[-1].settled((await registers(server.url))[0])
    # ...so that when the other writes, its write looks like an old echo of the first's.
    await first.ask("tap coffee")
    for device in running:
        assert await honest(device, server.url) == []
