"""Three link-level devices against a real server behind a proxy that cuts and delays,
while the server is SIGKILLed and restarted: they converge and lose no acked write."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from app.link import DeviceSession
from app.link.backoff import Backoff
from app.link.catalogue import load_catalogue
from app.link.likes import like_key
from syncserver.protocol import Ack, Hello, Snapshot, decode_server_message, encode
from tests.faults.conftest import ServerProcess
from tests.faults.proxy import ChaosProxy
from tests.timeouts import TIMEOUT

ITEMS = [item.id for item in load_catalogue()][:3]
ROUNDS = 150


async def server_registers(port: int) -> tuple[int, dict[str, tuple[Any, int]]]:
    """The server's revision and every register, read with a plain hello since 0
    (every page of the snapshot)."""
    registers: dict[str, tuple[Any, int]] = {}
    async with connect(f"ws://127.0.0.1:{port}", max_size=None, max_queue=None) as ws:
        await ws.send(encode(Hello(device_id=0, since=0)))
        while True:
            message = decode_server_message(await asyncio.wait_for(ws.recv(), TIMEOUT))
            if isinstance(message, Snapshot):
                registers.update((e.key, (e.value, e.server_revision)) for e in message.values)
                if not message.more:
                    return message.revision, registers


def record_acks(session: DeviceSession, acks: list[Ack]) -> None:
    """Keep every ack this device's link receives."""
    client = session.client
    send = client.set

    async def set_and_record(key: str, value: Any, local_revision: int) -> Ack:
        ack = await send(key, value, local_revision)
        acks.append(ack)
        return ack

    client.set = set_and_record  # type: ignore[method-assign]


async def wait_converged(
    sessions: list[DeviceSession], port: int
) -> tuple[int, dict[str, tuple[Any, int]]]:
    """Poll until every device shows each register's value and revision."""

    async def converged() -> tuple[int, dict[str, tuple[Any, int]]]:
        while True:
            revision, registers = await server_registers(port)
            if all(
                session.status.state == "online"
                and not session.cubit.device.in_flight_keys()
                and all(
                    (s.liked(item), s.revision(item))
                    == registers.get(like_key(item), (False, -1))[:2]
                    for item in ITEMS
                    for s in [session.state]
                )
                for session in sessions
            ):
                return revision, registers
            await asyncio.sleep(0.05)  # poll interval, not a wait for an outcome

    return await asyncio.wait_for(converged(), TIMEOUT * 3)


async def test_devices_converge_through_cuts_delays_and_server_kills(
    server_process: ServerProcess, tmp_path: Path
) -> None:
    """Random taps while the proxy cuts connections and the server is SIGKILLed twice."""
    rng = random.Random(2026)
    # The proxy draws per connection and per chunk, as timing has it; its own
    # generator keeps the load's sequence (and the two kills) fixed.
    proxy = ChaosProxy(server_process.port, random.Random(2027))
    await proxy.start()
    url = f"ws://127.0.0.1:{proxy.port}"
    acks: list[Ack] = []
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
    try:
        for session in sessions:
            record_acks(session, acks)
            await asyncio.wait_for(session.client.wait_online(), TIMEOUT)
        for round_ in range(ROUNDS):
            rng.choice(sessions).toggle_like(rng.choice(ITEMS))
            if rng.random() < 0.08:
                proxy.cut()
            if round_ in (ROUNDS // 3, 2 * ROUNDS // 3):
                await server_process.kill()
                proxy.retarget(await server_process.start())
            await asyncio.sleep(rng.uniform(0, 0.02))  # the pace of the load, not a wait
        proxy.max_delay = 0.0
        revision, registers = await wait_converged(sessions, server_process.port)
    finally:
        for session in sessions:
            await session.close()
        await proxy.close()
    assert server_process.kills == 2
    assert proxy.cuts > 0
    assert acks, "no write was acknowledged"
    assert revision >= max(ack.server_revision for ack in acks)
    for ack in acks:
        value, register_revision = registers[ack.key]
        assert register_revision >= ack.server_revision, ack
        if register_revision == ack.server_revision:
            assert value == ack.value, ack
    print(
        f"\nfaults: {len(acks)} acked writes, {proxy.cuts} proxy cuts, "
        f"{server_process.kills} SIGKILLs, final revision {revision}"
    )
