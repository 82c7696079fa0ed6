"""Devices in worker processes, as real devices each run in their own.

``python -m tests.perf.fleet sync|decode URL FIRST_ID COUNT`` runs ``COUNT``
devices in one process and takes commands as JSON lines on stdin (one JSON
reply line each on stdout):

* ``sync`` devices are :class:`tests.perf.devices.Headless`: the real link and
  cubit, no widgets, no disk. A tap is ``toggle_like``.
* ``decode`` devices are the least a device can do: a websockets connection
  (as the link opens it, compression off, ``batch_pushes``) whose every frame
  is decoded with the protocol's decoder and nothing more. A tap sends the
  ``set`` the link would send, encoded as the link encodes it. They measure the ideal of
  :mod:`tests.perf.convergence`.

Commands: ``{"op": "burst", "taps": [[device_index, item_id], ...]}`` forgets
the last burst's timings, then taps; ``{"op": "status"}`` answers what the
devices show (``sync``) or how many pushes each has decoded (``decode``), the
process's CPU time so far, and the time of the last change (``perf_counter``,
the same clock in every process on Linux); end of input closes the devices.

:class:`Fleet` starts workers and spreads devices over them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.link import load_catalogue
from syncserver.protocol import (
    Hello,
    ProtocolError,
    Push,
    PushBatch,
    Set,
    decode_server_message,
    encode,
)
from tests.perf.devices import Headless

__all__ = ["Fleet", "main"]

ROOT = Path(__file__).resolve().parents[2]


class _SyncDevices:
    """Headless devices: link + cubit."""

    def __init__(self, url: str, first: int, count: int) -> None:
        self.catalogue = load_catalogue()
        self.devices = [Headless(url, self.catalogue, first + n) for n in range(count)]
        self.last_change = 0.0
        for device in self.devices:
            shown = [device.cubit.state.items]

            def on_state(state: Any, shown: list[Any] = shown) -> None:
                if state.items is not shown[0]:
                    shown[0] = state.items
                    self.last_change = time.perf_counter()

            device.cubit.subscribe(on_state)

    async def open(self) -> None:
        for device in self.devices:
            device.client.start()
        async with asyncio.timeout(60):
            await asyncio.gather(*(d.client.wait_online() for d in self.devices))

    def burst(self, taps: list[tuple[int, str]]) -> None:
        self.last_change = 0.0
        for index, item in taps:
            self.devices[index].cubit.toggle_like(item)

    def status(self) -> dict[str, Any]:
        quiet = not any(device.cubit.device.in_flight_keys() for device in self.devices)
        views = set()
        if quiet:  # only then can the devices agree: spare the CPU they are using
            views = {
                tuple(item.id for item in self.catalogue if device.cubit.state.liked(item.id))
                for device in self.devices
            }
        return {"quiet": quiet, "views": sorted(views), "last_change": self.last_change}

    async def close(self) -> None:
        await asyncio.gather(*(d.close() for d in self.devices))


class _DecodeDevices:
    """Connections that decode every frame and nothing else."""

    def __init__(self, url: str, first: int, count: int) -> None:
        self.url = url
        self.ids = [first + n for n in range(count)]
        self.sockets: list[ClientConnection] = []
        self.received = [0] * count
        self.last_change = 0.0
        self.readers: list[asyncio.Task[None]] = []
        self.seq = 0
        self.errors = 0
        self.sending: set[asyncio.Future[None]] = set()

    async def open(self) -> None:
        async def one(device: int) -> ClientConnection:
            ws = await connect(self.url, compression=None)
            await ws.send(encode(Hello(device, 0, batch_pushes=True)))
            if b'"type":"snapshot"' not in await ws.recv(decode=False):
                raise RuntimeError("the server did not answer the hello with a snapshot")
            return ws

        self.sockets = list(await asyncio.gather(*(one(d) for d in self.ids)))
        self.readers = [asyncio.create_task(self._read(n)) for n in range(len(self.ids))]

    async def _read(self, index: int) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in self.sockets[index]:
                try:
                    message = decode_server_message(frame)
                except ProtocolError:
                    self.errors += 1
                    continue
                if isinstance(message, PushBatch):
                    self.received[index] += len(message.pushes)
                elif isinstance(message, Push):
                    self.received[index] += 1
                else:
                    continue
                self.last_change = time.perf_counter()

    def burst(self, taps: list[tuple[int, str]]) -> None:
        self.last_change = 0.0
        self.received = [0] * len(self.ids)
        for index, item in taps:
            self.seq += 1
            frame = encode(Set(self.seq, f"like/{item}", True, self.seq, self.ids[index]))
            self.sending.add(asyncio.ensure_future(self.sockets[index].send(frame)))
        for task in self.sending:
            task.add_done_callback(self.sending.discard)

    def status(self) -> dict[str, Any]:
        if self.errors:
            return {"error": f"{self.errors} frames did not decode"}
        return {"received": min(self.received), "last_change": self.last_change}

    async def close(self) -> None:
        await asyncio.gather(*(ws.close() for ws in self.sockets))
        await asyncio.gather(*self.readers, return_exceptions=True)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _serve(kind: str, url: str, first: int, count: int) -> None:
    devices = (
        _SyncDevices(url, first, count) if kind == "sync" else _DecodeDevices(url, first, count)
    )
    await devices.open()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ready": True}), flush=True)
    try:
        while line := await reader.readline():
            command = json.loads(line)
            if command["op"] == "burst":
                devices.burst([(index, item) for index, item in command["taps"]])
                reply: dict[str, Any] = {"ok": True}
            elif command["op"] == "status":
                reply = {**devices.status(), "cpu": _cpu()}
            else:
                reply = {"error": f"unknown op {command['op']!r}"}
            print(json.dumps(reply), flush=True)
    finally:
        await devices.close()


def main() -> None:
    """Entry point of a worker process (driven by :class:`Fleet`)."""
    parser = argparse.ArgumentParser(prog="python -m tests.perf.fleet", description=__doc__)
    parser.add_argument("kind", choices=["sync", "decode"])
    parser.add_argument("url")
    parser.add_argument("first", type=int, help="the first device id")
    parser.add_argument("count", type=int, help="how many devices")
    args = parser.parse_args()
    if args.count < 1:
        parser.error("count must be at least 1")
    asyncio.run(_serve(args.kind, args.url, args.first, args.count))


class Fleet:
    """``count`` devices of one kind spread over ``processes`` worker processes."""

    def __init__(self, kind: str, url: str, count: int, processes: int) -> None:
        self.kind = kind
        self.url = url
        self.count = count
        per, extra = divmod(count, processes)
        self.shares = [per + (1 if n < extra else 0) for n in range(processes)]
        self._procs: list[asyncio.subprocess.Process] = []

    async def __aenter__(self) -> Fleet:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        first = 1000
        for share in self.shares:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.perf.fleet", self.kind, self.url, str(first),
                str(share), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                cwd=ROOT, env=env,
            )  # fmt: skip
            self._procs.append(proc)
            first += share
        await asyncio.gather(*(self._reply(proc, 90) for proc in self._procs))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for proc in self._procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in self._procs:
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()

    @staticmethod
    async def _reply(proc: asyncio.subprocess.Process, limit: float) -> dict[str, Any]:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), limit)
        if not line:
            raise RuntimeError("a device process exited")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"device process: {reply['error']}")
        return reply

    async def _all(self, commands: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        for proc, command in zip(self._procs, commands, strict=True):
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(command).encode() + b"\n")
        return await asyncio.gather(*(self._reply(proc, 30) for proc in self._procs))

    async def tap(self, taps: Sequence[tuple[int, str]]) -> None:
        """Each ``(device, item_id)`` taps once, every device in its own process."""
        per_process: list[list[tuple[int, str]]] = [[] for _ in self._procs]
        for device, item in taps:
            process, index = self._locate(device)
            per_process[process].append((index, item))
        await self._all([{"op": "burst", "taps": share} for share in per_process])

    async def status(self) -> list[dict[str, Any]]:
        return await self._all([{"op": "status"}] * len(self._procs))

    def _locate(self, device: int) -> tuple[int, int]:
        for process, share in enumerate(self.shares):
            if device < share:
                return process, device
            device -= share
        raise IndexError("no such device")


if __name__ == "__main__":
    main()
