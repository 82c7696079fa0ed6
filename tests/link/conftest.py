"""Fixtures for the device link tests: a real server on port 0, devices in tmp_path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.link import DeviceSession
from syncserver import SyncServer, start_server

from .helpers import CATALOGUE, FAST, OpenDevice, StatusAudit


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[SyncServer]:
    """The real sync server on a free port, demo controls on."""
    running = await start_server(port=0, db_path=tmp_path / "server.sqlite3", allow_chaos=True)
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
async def open_device(tmp_path: Path) -> AsyncIterator[OpenDevice]:
    """Open devices against given URLs (data in tmp_path); all are closed and
    audited for status honesty at the end."""
    sessions: list[DeviceSession] = []
    audits: list[StatusAudit] = []

    async def open_(name: str, urls: list[str], **options: Any) -> DeviceSession:
        options.setdefault("data_dir", tmp_path / "devices")
        options.setdefault("catalogue", CATALOGUE)
        options.setdefault("backoff", FAST)
        session = await DeviceSession.open(name, urls, **options)
        sessions.append(session)
        audits.append(StatusAudit(session))
        return session

    yield open_
    for session in sessions:
        await session.close()
    for audit in audits:
        assert audit.violations == [], audit.violations
