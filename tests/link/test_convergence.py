"""Two devices against the real server end on the server's values."""

from __future__ import annotations

import asyncio

import msgspec

from app.link import SyncPhase
from syncserver import SyncServer

from .helpers import OpenDevice, eventually


def _server_values(server: SyncServer) -> dict[str, tuple[object, int]]:
    return {e.key: (msgspec.json.decode(e.value), e.server_revision) for e in server.state().values}


async def test_two_devices_converge_on_the_last_write(
    server: SyncServer, open_device: OpenDevice
) -> None:
    """Interleaved taps on two devices leave both showing the server's values and revisions."""
    a = await open_device("A", [server.url])
    b = await open_device("B", [server.url])
    await eventually(lambda: a.status.state == "online" and b.status.state == "online", a, b)

    taps = [a.toggle_like("tea"), b.toggle_like("tea"), a.toggle_like("jam"), b.toggle_like("fig")]
    taps += [b.toggle_like("tea"), a.toggle_like("fig")]
    await asyncio.gather(*taps)

    def converged() -> bool:
        values = _server_values(server)
        return all(
            (item.liked, session.state.revision(item.id)) == values.get(f"like/{item.id}")
            and session.state.status(item.id).phase in (SyncPhase.SYNCED, SyncPhase.OVERRIDDEN)
            for session in (a, b)
            for item in session.state.items
        )

    await eventually(converged, a, b)
    assert a.state.items == b.state.items


async def test_a_push_from_another_device_shows_at_once(
    server: SyncServer, open_device: OpenDevice
) -> None:
    """A like made on one device appears on the other, synced, at the server's revision."""
    a = await open_device("A", [server.url])
    b = await open_device("B", [server.url])
    await eventually(lambda: b.status.state == "online", b)

    await a.toggle_like("jam")

    await eventually(lambda: b.state.liked("jam") and b.state.revision("jam") == 1, b)
    assert b.state.status("jam").phase is SyncPhase.SYNCED
    assert b.state.status("jam").server_revision == 1
