"""Devices behind a cutting proxy while the server is stopped with SIGTERM, replaced by
one on a fresh database, and written to by hostile clients: they still converge."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from app.link import DeviceSession
from app.link.backoff import Backoff
from syncserver.protocol import Ack
from tests.faults.conftest import ServerProcess
from tests.faults.proxy import ChaosProxy
from tests.faults.test_real_process_faults import ITEMS, server_registers
from tests.timeouts import TIMEOUT

ROUNDS = 80


def record_epoch_acks(session: DeviceSession, acks: list[tuple[str | None, Ack]]) -> None:
    """Keep every ack this device's link receives, with the history it belongs to."""
    client = session.client
    send = client.set

    async def set_and_record(key: str, value: Any, local_revision: int) -> Ack:
        ack = await send(key, value, local_revision)
        acks.append((client.epoch, ack))
        return ack

    client.set = set_and_record  # type: ignore[method-assign]


async def raw_writes(port: int, sets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send ``sets`` after a hello of its own; every reply, in order."""
    async with connect(f"ws://127.0.0.1:{port}", max_size=None, max_queue=None) as ws:
        await ws.send(json.dumps({"type": "hello", "device_id": 31337, "since": 0}))
        for number, fields in enumerate(sets):
            await ws.send(json.dumps({"type": "set", "request_id": number, **fields}))
        replies: list[dict[str, Any]] = []
        while len(replies) < len(sets):
            message = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            if message.get("type") in ("ack", "error"):
                replies.append(message)
        return replies


def differences(sessions: list[DeviceSession], registers: dict[str, tuple[Any, int]]) -> list[str]:
    """What keeps the devices from showing the server's registers (never written: not
    liked, revision 0)."""
    found = []
    for session in sessions:
        if session.status.state != "online" or session.cubit.device.in_flight_keys():
            found.append(f"{session.name} is {session.status.state} or busy")
            continue
        state = session.state
        for item in ITEMS:
            value, revision = registers.get(f"like/{item}", (False, 0))
            if (state.liked(item), state.revision(item)) != (value, revision):
                found.append(
                    f"{session.name} shows {item} as {(state.liked(item), state.revision(item))}, "
                    f"the server holds {(value, revision)}"
                )
    return found


async def wait_converged(
    sessions: list[DeviceSession], port: int
) -> tuple[int, dict[str, tuple[Any, int]]]:
    """Poll until every device shows each register's value and revision."""
    last: list[str] = []

    async def converged() -> tuple[int, dict[str, tuple[Any, int]]]:
        nonlocal last
        while True:
            revision, registers = await server_registers(port)
            last = differences(sessions, registers)
            if not last:
                return revision, registers
            await asyncio.sleep(0.05)  # poll interval, not a wait for an outcome

    try:
        return await asyncio.wait_for(converged(), TIMEOUT * 3)
    except TimeoutError:
        raise AssertionError(f"devices did not converge: {last}") from None


async def server_snapshot(port: int) -> dict[str, Any]:
    """A hello since 0, with every page of the answer merged into one snapshot."""
    async with connect(f"ws://127.0.0.1:{port}", max_size=None, max_queue=None) as ws:
        await ws.send(json.dumps({"type": "hello", "device_id": 31337, "since": 0}))
        merged: dict[str, Any] = {"values": []}
        while True:
            page = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            if page.get("type") != "snapshot":
                continue
            merged["values"] += page["values"]
            merged.update({k: v for k, v in page.items() if k != "values"})
            if not page.get("more", False):
                return merged


async def current_epoch(port: int) -> str:
    epoch: str = (await server_snapshot(port))["epoch"]
    return epoch


async def test_devices_converge_through_sigterm_a_fresh_database_and_hostile_writers(
    server_process: ServerProcess, tmp_path: Path
) -> None:
    """Random taps; a SIGTERM and restart, a restart on an empty database, a set with a
    stolen device id (refused) and a commit bigger than one frame, all mid-load."""
    rng = random.Random(2028)
    proxy = ChaosProxy(server_process.port, random.Random(2029))
    await proxy.start()
    url = f"ws://127.0.0.1:{proxy.port}"
    acks: list[tuple[str | None, Ack]] = []
    sessions = [
        await DeviceSession.open(
            f"device-{n}",
            [url],
            data_dir=tmp_path / f"device-{n}",
            request_timeout=2.0,
            backoff=Backoff(initial=0.02, maximum=0.2),
        )
        for n in range(3)
    ]
    stolen: list[dict[str, Any]] = []
    try:
        for session in sessions:
            record_epoch_acks(session, acks)
            await asyncio.wait_for(session.client.wait_online(), TIMEOUT)
        for round_ in range(ROUNDS):
            rng.choice(sessions).toggle_like(rng.choice(ITEMS))
            if rng.random() < 0.05:
                proxy.cut()
            if round_ == ROUNDS // 4:
                assert await server_process.terminate() == 0
                proxy.retarget(await server_process.start())
            if round_ == ROUNDS // 2:
                victim = sessions[0].device_id
                stolen = await raw_writes(
                    server_process.port,
                    [
                        {
                            "key": f"like/{ITEMS[0]}",
                            "value": 7,
                            "local_revision": 0,
                            "device_id": victim,
                        }
                    ],
                )
            if round_ == 3 * ROUNDS // 4:
                await server_process.kill()
                server_process.db = tmp_path / "fresh.sqlite3"
                proxy.retarget(await server_process.start())
                big = [
                    {"key": f"blob/{n}", "value": "z" * 60_000, "local_revision": 1}
                    for n in range(24)
                ]
                assert all(r["type"] == "ack" for r in await raw_writes(server_process.port, big))
            await asyncio.sleep(rng.uniform(0, 0.02))  # the pace of the load, not a wait
        proxy.max_delay = 0.0
        revision, registers = await wait_converged(sessions, server_process.port)
        epoch = await current_epoch(server_process.port)
    finally:
        for session in sessions:
            await session.close()
        await proxy.close()
    assert [(r["type"], r.get("code")) for r in stolen] == [("error", "device_mismatch")]
    fresh = [ack for ack_epoch, ack in acks if ack_epoch == epoch]
    assert fresh, "no write was acknowledged on the fresh database"
    for ack in fresh:
        value, register_revision = registers[ack.key]
        assert register_revision >= ack.server_revision, ack
        if register_revision == ack.server_revision:
            assert value == ack.value, ack
    print(
        f"\nmixed faults: {len(acks)} acked writes ({len(fresh)} on the fresh database), "
        f"{proxy.cuts} proxy cuts, 1 SIGTERM, 1 fresh database, final revision {revision}"
    )
