"""Logging like a service: timestamps and levels, --log-level, and no floods of repeats."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys

import pytest
from websockets.asyncio.client import connect

from syncserver.logs import RepeatFilter
from tests.cli.helpers import ROOT
from tests.timeouts import TIMEOUT

_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) [\w.]+: ")


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(
        "syncserver.backends.redis", logging.WARNING, "", 0, message, args, None
    )


def test_a_repeated_message_passes_once_per_interval_with_a_count() -> None:
    """The same message (other arguments) passes once, is held for the interval, then
    passes again saying how many were held; a different message is never held."""
    now = [0.0]
    repeats = RepeatFilter(interval=30.0, clock=lambda: now[0])
    lost = "lost the Redis subscription (%s); retrying in %.2f s"
    assert repeats.filter(_record(lost, "refused", 0.1))
    for second in range(1, 30):
        now[0] = second
        assert not repeats.filter(_record(lost, "refused", 0.2))
    assert repeats.filter(_record("following Redis again at revision %d", 7))
    now[0] = 30.0
    again = _record(lost, "refused", 0.5)
    assert repeats.filter(again)
    assert again.getMessage().endswith("(and 29 more like it in the last 30 s)")
    now[0] = 31.0
    assert not repeats.filter(_record(lost, "refused", 0.5))


def test_info_lines_are_never_held() -> None:
    """Events below WARNING (each device's connect) all pass, however alike."""
    repeats = RepeatFilter(interval=30.0, clock=lambda: 0.0)
    for device in (1, 2, 3):
        record = logging.LogRecord(
            "syncserver.core",
            logging.INFO,
            "",
            0,
            "device %d connected from %s",
            (device, "x"),
            None,
        )
        assert repeats.filter(record)


async def _run_server_and_connect(*options: str) -> str:
    """Start `syncserver` with ``options``, connect device 7 and leave; return its stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "syncserver", "--port", "0", "--backend", "memory", *options,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), TIMEOUT)).decode()
        url = re.search(r"ws://\S+", line)
        assert url, line
        async with connect(url.group()) as ws:
            await ws.send(json.dumps({"type": "hello", "device_id": 7}))
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    finally:
        process.terminate()
        _, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT)
    assert process.returncode == 0
    return stderr.decode()


async def test_the_server_logs_connects_with_time_and_level() -> None:
    """At the default level every line has a timestamp and a level; a device's connect
    and disconnect are one INFO line each with its id and address."""
    lines = (await _run_server_and_connect()).splitlines()
    assert lines
    assert all(_LINE.match(line) for line in lines), lines
    assert any(re.search(r"INFO syncserver.core: device 7 connected from 127\.0\.0\.1:\d+$", line)
               for line in lines), lines  # fmt: skip
    assert any(re.search(r"INFO syncserver.core: device 7 disconnected from 127\.0\.0\.1:\d+$",
                         line) for line in lines), lines  # fmt: skip


@pytest.mark.parametrize("options", [["--log-level", "warning"], []])
async def test_log_level_warning_leaves_out_connects(
    options: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--log-level warning (or OPTISYNC_LOG_LEVEL=warning) leaves out the INFO lines."""
    if not options:
        monkeypatch.setenv("OPTISYNC_LOG_LEVEL", "warning")
    assert "connected" not in await _run_server_and_connect(*options)
