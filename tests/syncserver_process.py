"""Start ``python -m syncserver`` as a real subprocess and learn the port it listens on."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.timeouts import TIMEOUT

__all__ = ["ROOT", "spawn_syncserver"]

ROOT = Path(__file__).resolve().parents[1]
_URL = re.compile(r"ws://127\.0\.0\.1:(\d+)")


async def spawn_syncserver(
    args: list[str], env: Mapping[str, str], name: str
) -> tuple[asyncio.subprocess.Process, int]:
    """Run ``python -m syncserver *args``; returns the process and the port from its output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "syncserver", *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    while True:
        line = await asyncio.wait_for(process.stdout.readline(), TIMEOUT)
        if not line:
            raise RuntimeError(f"{name} exited before listening")
        found = _URL.search(line.decode())
        if found:
            return process, int(found.group(1))
