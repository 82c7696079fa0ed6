"""The server as a subprocess: the command line, clean shutdown, and SIGKILL durability."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

from websockets.exceptions import ConnectionClosed

from tests.timeouts import TIMEOUT

from .conftest import Client, Clients, ServerProcess


async def test_command_line_prints_url_serves_and_stops_on_sigterm(
    server_process: ServerProcess, clients: Clients
):
    """python -m syncserver prints its ws:// URL, serves, and exits 0 on SIGTERM."""
    url = await server_process.start()
    assert url.startswith("ws://127.0.0.1:")
    client = await clients(url)
    assert (await client.set("k", 1))["server_revision"] == 1
    assert await server_process.stop(signal.SIGTERM) == 0


async def test_command_line_flags_reach_the_server(db_path: Path, clients: Clients):
    """--allow-chaos and --token are honoured by the subprocess."""
    process = ServerProcess(db_path, "--allow-chaos", "--token", "t0k")
    try:
        client = await clients(await process.start())
        await client.hello(token="t0k")
        await client.send({"type": "chaos", "request_id": 1, "fail_next": 1})
        assert (await client.recv_type("chaos_state"))["settings"]["fail_next"] == 1
    finally:
        assert await process.stop(signal.SIGINT) == 0


async def test_every_acked_write_survives_sigkill(
    server_process: ServerProcess, db_path: Path, clients: Clients
):
    """SIGKILL during a write load, restart on the same database: every ack is there."""
    url = await server_process.start()
    acked: dict[str, tuple[int, int]] = {}
    enough = asyncio.Event()

    async def writer(client: Client, device: int) -> None:
        sent = 0
        try:
            for _ in range(8):  # keep 8 sets in flight per writer
                await client.set_nowait(f"d{device}/{sent}", sent, request_id=sent)
                sent += 1
            while True:
                ack = await client.recv_type("ack")
                acked[ack["key"]] = (ack["value"], ack["server_revision"])
                if len(acked) >= 600:
                    enough.set()
                await client.set_nowait(f"d{device}/{sent}", sent, request_id=sent)
                sent += 1
        except ConnectionClosed:
            return

    writers = [await clients(url) for _ in range(10)]
    tasks = [asyncio.create_task(writer(w, n)) for n, w in enumerate(writers)]
    await asyncio.wait_for(enough.wait(), TIMEOUT)
    assert await server_process.stop(signal.SIGKILL) == -signal.SIGKILL
    await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)

    restarted = ServerProcess(db_path)
    try:
        client = await clients(await restarted.start())
        snapshot = await client.hello(since=0)
        stored = {v["key"]: (v["value"], v["server_revision"]) for v in snapshot["values"]}
        missing = {key: ack for key, ack in acked.items() if stored.get(key) != ack}
        assert missing == {}, f"{len(missing)} of {len(acked)} acknowledged writes lost"
        newest = max(revision for _, revision in acked.values())
        assert snapshot["revision"] >= newest
        assert (await client.set("after", 1))["server_revision"] == snapshot["revision"] + 1
    finally:
        await restarted.stop()


async def test_repeated_sigterms_during_shutdown_still_exit_0(server_process: ServerProcess):
    """SIGTERM sent again and again until the process is gone: it still exits 0."""
    await server_process.start()
    proc = server_process.proc
    assert proc is not None

    async def keep_signalling() -> None:
        while proc.returncode is None:
            # os.kill, not proc.send_signal: Popen.send_signal polls first, and that
            # poll may reap the child before asyncio's watcher does (exit code 255).
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            await asyncio.sleep(0.0005)  # pacing, not waiting for anything

    signalling = asyncio.create_task(keep_signalling())
    try:
        assert await asyncio.wait_for(proc.wait(), TIMEOUT) == 0
    finally:
        signalling.cancel()
