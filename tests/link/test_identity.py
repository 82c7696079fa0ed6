"""One device identity is used by one session at a time, and it is on disk at once."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from app.link import DeviceInUseError, DeviceSession, DeviceStore
from syncserver import SyncServer
from tests.timeouts import TIMEOUT

from .helpers import CATALOGUE, OpenDevice

_OPEN_AND_WAIT = """
import asyncio, sys
from pathlib import Path
from app.link import DeviceSession, CatalogueItem

async def main():
    catalogue = [CatalogueItem("tea", "Tea", "tea.svg")]
    session = await DeviceSession.open(
        "A", [sys.argv[1]], data_dir=Path(sys.argv[2]), catalogue=catalogue
    )
    print(session.device_id, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await session.close()

asyncio.run(main())
"""

_TAP_AND_DIE = """
import asyncio, os, signal, sys
from pathlib import Path
from app.link import DeviceSession, CatalogueItem

async def main():
    catalogue = [CatalogueItem("tea", "Tea", "tea.svg")]
    session = await DeviceSession.open(
        "A", [sys.argv[1]], data_dir=Path(sys.argv[2]), catalogue=catalogue
    )
    session.toggle_like("tea")
    print(session.device_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # killed right after the tap: nothing else runs

asyncio.run(main())
"""


def _python(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )


async def _finish(process: subprocess.Popen[str]) -> int:
    """Close the child's input, wait for it to end and close its pipes."""
    if process.stdin is not None and not process.stdin.closed:
        process.stdin.close()
    code = await asyncio.wait_for(asyncio.to_thread(process.wait), TIMEOUT)
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()
    return code


def _connected_devices(server: SyncServer) -> set[int | None]:
    return {device.device_id for device in server.state().devices}


def _count_is(wanted: int) -> Callable[[set[int | None]], bool]:
    return lambda devices: len(devices) == wanted


async def _server_sees(server: SyncServer, condition: Callable[[set[int | None]], bool]) -> None:
    """Wait until the set of device ids connected to ``server`` satisfies ``condition``
    (demo processes start Qt first: three timeouts)."""
    changed = asyncio.Event()
    unsubscribe = server.observe(lambda _state: changed.set())
    try:
        async with asyncio.timeout(TIMEOUT * 3):
            while not condition(_connected_devices(server)):
                await changed.wait()
                changed.clear()
    finally:
        unsubscribe()


async def _read_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), TIMEOUT)
    if not line:
        assert process.stderr is not None
        raise AssertionError(f"the child printed nothing: {process.stderr.read()}")
    return line.strip()


async def test_a_second_open_of_an_open_device_fails_with_device_in_use(
    server: SyncServer, open_device: OpenDevice, tmp_path: Path
) -> None:
    """Opening a device that is open raises DeviceInUseError and changes nothing;
    once closed it opens again as the same device."""
    a = await open_device("A", [server.url])
    with pytest.raises(DeviceInUseError, match="'A' is already open"):
        await open_device("A", [server.url])
    device_id = a.device_id
    await a.close()
    again = await open_device("A", [server.url])
    assert again.device_id == device_id


async def test_a_device_open_in_another_process_cannot_be_opened_here(
    server: SyncServer, tmp_path: Path
) -> None:
    """While another process has device A open, opening A here fails with
    DeviceInUseError; after that process closes it, A opens with the same id."""
    data_dir = tmp_path / "devices"
    child = _python(_OPEN_AND_WAIT, server.url, str(data_dir))
    try:
        child_id = int(await _read_line(child))
        with pytest.raises(DeviceInUseError):
            await DeviceSession.open("A", [server.url], data_dir=data_dir, catalogue=CATALOGUE)
    finally:
        await _finish(child)
    session = await DeviceSession.open("A", [server.url], data_dir=data_dir, catalogue=CATALOGUE)
    try:
        assert session.device_id == child_id
    finally:
        await session.close()


async def test_the_device_id_is_on_disk_before_a_kill_right_after_the_first_tap(
    server: SyncServer, tmp_path: Path
) -> None:
    """A new device's process SIGKILLed right after its first tap comes back with the
    same device id."""
    data_dir = tmp_path / "devices"
    child = _python(_TAP_AND_DIE, server.url, str(data_dir))
    try:
        child_id = int(await _read_line(child))
    finally:
        assert await _finish(child) == -9
    assert DeviceStore.peek(data_dir, "A").device_id == child_id


async def test_two_demo_processes_with_the_same_home_open_different_devices(
    server: SyncServer, tmp_path: Path
) -> None:
    """Two `python -m app --server URL --devices 1` with the same HOME: the second
    skips Device A, which the first holds, and opens Device B with its own id."""
    data_dir = tmp_path / ".local" / "share" / "optisync" / "demo"  # the demo's, under HOME
    command = [sys.executable, "-m", "app", "--server", server.url, "--devices", "1"]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("XDG_")},
        "QT_QPA_PLATFORM": "offscreen",
        "HOME": str(tmp_path),
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for count in (1, 2):
            processes.append(
                await asyncio.to_thread(
                    subprocess.Popen,
                    command,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=env,
                )
            )
            await _server_sees(server, _count_is(count))
        ids = {DeviceStore.peek(data_dir, name).device_id for name in ("Device A", "Device B")}
        assert None not in ids
        assert len(ids) == 2
        assert _connected_devices(server) == ids
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            await asyncio.wait_for(asyncio.to_thread(process.wait), TIMEOUT)


class _ZeroFirst(random.Random):
    """A seeded generator whose first draw of bits is 0 (the reserved id)."""

    def __init__(self) -> None:
        super().__init__(7)
        self.drawn: list[int] = []

    def getrandbits(self, k: int, /) -> int:
        self.drawn.append(k)
        return 0 if len(self.drawn) == 1 else super().getrandbits(k)


async def test_a_new_device_gets_an_id_that_fits_53_bits(
    server: SyncServer, open_device: OpenDevice
) -> None:
    """A new device's id is in 1 ... 2**53 - 1, so a JavaScript client reads it exactly;
    the server binds the connection to it."""
    a = await open_device("A", [server.url])
    assert 0 < a.device_id <= 2**53 - 1
    await _server_sees(server, lambda devices: a.device_id in devices)
    rng = _ZeroFirst()
    b = await open_device("B", [server.url], rng=rng)
    assert rng.drawn[:2] == [53, 53]  # 0 was drawn first, and drawn again
    assert 0 < b.device_id <= 2**53 - 1
