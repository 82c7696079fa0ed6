"""Starting servers of the kit's own, from a command line the user gives.

Some rules (a token, the limits, restarts, shutdown) can only be checked on a
server started with particular options. Given ``--start-server CMD``, the kit
runs ``CMD`` plus the options a check needs (``--token T``, ``--allow-chaos``,
``--max-send-buffer N``, ...; PROTOCOL.md lists them), waits for the line
holding ``ws://HOST:PORT`` on its standard output, and stops it with SIGTERM.
``{dir}`` in ``CMD`` becomes a fresh empty directory for each new server (the
same one again when a check restarts that server), so each gets its own data.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
import signal
import tempfile
from pathlib import Path

from .peer import CheckFailed

__all__ = ["Launcher", "StartedServer"]

_URL = re.compile(r"ws://[^\s,;()]+")


class StartedServer:
    """One server process the kit started."""

    def __init__(self, process: asyncio.subprocess.Process, url: str, data_dir: Path) -> None:
        self.process = process
        self.url = url
        self.data_dir = data_dir
        self._drain: asyncio.Task[None] | None = None

    async def stop(self, signum: int = signal.SIGTERM, wait: float = 10.0) -> int:
        """Send ``signum`` and wait for the exit; the return code."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)
            try:
                await asyncio.wait_for(self.process.wait(), wait)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
                raise CheckFailed(f"the server ignored signal {signum} for {wait:g} s") from None
        assert self.process.returncode is not None
        return self.process.returncode


class Launcher:
    """Starts servers from ``command`` (a shell-style string) with extra options."""

    def __init__(self, command: str, timeout: float) -> None:
        self.command = command
        self.timeout = timeout
        self.uses_dir = "{dir}" in command
        self._root = tempfile.TemporaryDirectory(prefix="optisync-conformance-")
        self._dirs = 0
        self._running: list[StartedServer] = []
        self._shared: dict[tuple[str, ...], StartedServer] = {}

    def new_dir(self) -> Path:
        self._dirs += 1
        path = Path(self._root.name) / f"server-{self._dirs}"
        path.mkdir()
        return path

    async def start(self, *options: str, data_dir: Path | None = None) -> StartedServer:
        """Start the command plus ``options``; returns once it printed its URL."""
        data_dir = data_dir if data_dir is not None else self.new_dir()
        argv = [part.replace("{dir}", str(data_dir)) for part in shlex.split(self.command)]
        process = await asyncio.create_subprocess_exec(
            *argv,
            *options,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        try:
            url = await asyncio.wait_for(self._read_url(process), self.timeout)
        except (TimeoutError, CheckFailed) as exc:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            assert process.stderr is not None
            error = (await process.stderr.read()).decode(errors="replace").strip()
            last = error.splitlines()[-1] if error else "no output"
            reason = "did not print a ws:// URL in time" if isinstance(exc, TimeoutError) else exc
            command = " ".join([*argv, *options])
            raise CheckFailed(f"could not start {command}: {reason} ({last})") from None
        server = StartedServer(process, url, data_dir)
        self._running.append(server)
        # Nobody reads the rest of its output; drain it so it never blocks on a pipe.
        server._drain = asyncio.get_running_loop().create_task(_drain(process))
        return server

    async def shared(self, *options: str) -> StartedServer:
        """A server with ``options`` that several checks may use (started once)."""
        server = self._shared.get(options)
        if server is None or server.process.returncode is not None:
            server = self._shared[options] = await self.start(*options)
        return server

    @staticmethod
    async def _read_url(process: asyncio.subprocess.Process) -> str:
        assert process.stdout is not None
        while True:
            line = await process.stdout.readline()
            if not line:
                raise CheckFailed("the server exited before printing its URL")
            found = _URL.search(line.decode(errors="replace"))
            if found:
                return found.group(0)

    async def close(self) -> None:
        """Stop every server still running and remove their directories."""
        for server in self._running:
            with contextlib.suppress(CheckFailed):
                await server.stop(wait=self.timeout)
        self._running.clear()
        self._shared.clear()
        self._root.cleanup()


async def _drain(process: asyncio.subprocess.Process) -> None:
    streams = [s for s in (process.stdout, process.stderr) if s is not None]
    await asyncio.gather(*(_discard(stream) for stream in streams))


async def _discard(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass
