"""The server's event loop: uvloop when installed, asyncio's with --no-uvloop."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from syncserver.loop import loop_factory, loop_name, run
from tests.timeouts import TIMEOUT

ROOT = Path(__file__).resolve().parents[2]


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def _listening_line(*args: str, **env: str) -> str:
    with subprocess.Popen(
        [sys.executable, "-m", "syncserver", "--port", "0", "--backend", "memory", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    ) as proc:
        try:
            assert proc.stdout is not None
            return proc.stdout.readline().strip()
        finally:
            proc.terminate()
            proc.wait(TIMEOUT)


def test_no_uvloop_runs_on_asyncios_own_loop() -> None:
    """loop_factory(False) is asyncio's; run(..., use_uvloop=False) runs there."""
    assert loop_factory(False) is None
    assert loop_name(False) == "asyncio"
    assert run(_loop_module(), use_uvloop=False).startswith("asyncio")


def test_the_server_names_its_loop_and_no_uvloop_turns_uvloop_off() -> None:
    """The listening line names the loop: uvloop when installed, asyncio with
    OPTISYNC_NO_UVLOOP=1 (the environment form of --no-uvloop)."""
    assert _listening_line(OPTISYNC_NO_UVLOOP="1").endswith(", asyncio)")
    pytest.importorskip("uvloop")
    assert loop_name() == "uvloop"
    assert run(_loop_module()).startswith("uvloop")
    assert _listening_line().endswith(", uvloop)")
