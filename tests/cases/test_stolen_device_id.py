"""Case 3: another connection writes with a device's id."""

from __future__ import annotations

from pathlib import Path

from tests.cases.conftest import StartDevice, StartServer, honest, raw_client, registers


async def test_write_with_another_devices_id_is_refused_and_the_victim_stays_honest(
    start_server: StartServer, start_device: StartDevice, tmp_path: Path
) -> None:
    """A set naming the victim's id gets device_mismatch, writes nothing, fools nobody."""
    server = await start_server()
    victim = await start_device("Victim", tmp_path / "victim", server.url)
    await victim.ask("tap coffee")
    await victim.settled(1)
    async with raw_client(server.url) as thief:
        await thief.send(type="hello", device_id=666, since=0)
        await thief.send(
            type="set",
            request_id=1,
            key="like/coffee",
            value=False,
            local_revision=0,
            device_id=victim.first_line["device_id"],
        )
        reply = await thief.reply_to(1)
    assert (reply["type"], reply.get("code")) == ("error", "device_mismatch")
    revision, held = await registers(server.url)
    assert (revision, held["like/coffee"]) == (1, (True, 1))
    assert await honest(victim, server.url) == []
