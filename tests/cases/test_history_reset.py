"""Case 2: the server at the same URL restarts on a fresh database."""

from __future__ import annotations

from pathlib import Path

from tests.cases.conftest import StartDevice, StartServer, honest, registers


async def test_device_that_knew_a_newer_history_shows_the_fresh_servers_values(
    start_server: StartServer, start_device: StartDevice, tmp_path: Path
) -> None:
    """A device that saw revision 5 meets a fresh database: it ends on what that server holds."""
    old = await start_server(db="old.sqlite3")
    veteran = await start_device("Veteran", tmp_path / "veteran", old.url)
    for item in ("sunrise", "mountain", "bicycle", "book", "coffee"):
        await veteran.ask(f"tap {item}")
        await veteran.settled((await registers(old.url))[0])
    assert (await registers(old.url))[0] == 5
    await old.terminate()
    fresh = await start_server("--port", str(old.port), db="fresh.sqlite3")
    newcomer = await start_device("Newcomer", tmp_path / "newcomer", fresh.url)
    for _ in range(2):  # mountain: liked at revision 1, unliked at 2, below the veteran's 3
        await newcomer.ask("tap mountain")
        await newcomer.settled((await registers(fresh.url))[0])
    assert await honest(veteran, fresh.url) == []
    assert await honest(newcomer, fresh.url) == []
