"""Fixtures for the access tests: server processes on port 0 and a test CA."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

from tests.timeouts import TIMEOUT

ROOT = Path(__file__).resolve().parents[2]


class ServerProcess:
    """``python -m syncserver`` in a subprocess; ``url`` (ws:// or wss://) is
    read from its first line."""

    def __init__(self, db: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.db = db
        self.args = args
        self.env = env or {}
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self) -> str:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **self.env}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "syncserver",
            "--port",
            "0",
            "--db",
            str(self.db),
            *self.args,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env=env,
        )
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), TIMEOUT)).decode()
        found = re.search(r"wss?://\S+", line)
        assert found is not None, line
        self.url = found.group()
        return self.url

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        return await asyncio.wait_for(self.proc.wait(), TIMEOUT)


class Servers:
    """Starts server processes and stops them all at the end of the test."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[ServerProcess] = []

    async def start(self, *args: str, env: dict[str, str] | None = None) -> ServerProcess:
        db = self.tmp_path / f"server{len(self.started)}.sqlite3"
        process = ServerProcess(db, *args, env=env)
        self.started.append(process)
        await process.start()
        return process

    async def close(self) -> None:
        for process in self.started:
            if process.proc is not None:
                await process.stop(signal.SIGKILL)


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[Servers]:
    started = Servers(tmp_path)
    yield started
    await started.close()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("t0ken-from-a-file\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="session")
def test_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_files(test_ca: trustme.CA, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(certfile, keyfile, cafile) for a server on 127.0.0.1, signed by a CA made now."""
    cert = test_ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile, cafile = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    for blob in cert.cert_chain_pems[1:]:
        blob.write_to_path(str(certfile), append=True)
    cert.private_key_pem.write_to_path(str(keyfile))
    test_ca.cert_pem.write_to_path(str(cafile))
    return certfile, keyfile, cafile


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """A process' resident memory (``VmHWM``: its peak), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)
