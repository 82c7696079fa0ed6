"""The ceiling of the server benchmarks: a bare relay doing the sync server's work.

``python -m tests.perf._bare [--synchronous FULL|NORMAL] [--write-delay S] [--no-uvloop]``
runs a bare websockets server (compression off, like the sync server) on the
event loop the sync server would pick (uvloop when installed, unless
``--no-uvloop`` or ``OPTISYNC_NO_UVLOOP=1``) and prints its ``ws://`` URL like
``python -m syncserver`` does. It does what the
sync server does with a write, and nothing else:

* a ``hello`` is answered with an empty ``snapshot``; from then on the
  connection receives pushes, as one ``pushes`` frame per batch when the
  hello said ``"batch_pushes":true``, else a frame per push;
* a ``set`` is queued (after ``--write-delay`` seconds, as the sync server's
  demo control does); queued sets are handled in batches like the sync
  server's group commit: while one batch is being made durable in a worker
  thread (written to a log file, then ``fdatasync`` under ``FULL``; ``NORMAL``
  only writes), the next one piles up;
* once a batch is durable, each push is serialized once, and every
  connection gets its acks and the batch's pushes in one transport write.

So framing, batching and durability match the sync server's; what is left
out is what makes it a sync server (JSON validation, registers, limits). An
ack and a push are cut from the set's own bytes, with the next revision, and
decode as the protocol's ``Ack`` and ``Push``.

:class:`RawClient` is a minimal websocket client on a bare asyncio protocol
for a benchmark's own writer connection (``tests.perf.scale``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import signal
import tempfile
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from syncserver.loop import loop_name, run

__all__ = ["RawClient", "Relay", "connect_raw", "main", "relay_running", "text_frame"]


class RawClient(asyncio.Protocol):
    """Handshake, then hand every text/binary payload to ``on_payload``."""

    def __init__(self, host: str, on_payload: Callable[[bytes], None]) -> None:
        self._host = host
        self._on_payload = on_payload
        self._buffer = bytearray()
        self._handshaken = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET / HTTP/1.1\r\nHost: {self._host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("connection lost during handshake"))

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if not self._handshaken:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(ConnectionError(bytes(buffer[:end]).decode()))
                return
            del buffer[: end + 4]
            self._handshaken = True
            self.opened.set_result(None)
        position, size = 0, len(buffer)
        on_payload = self._on_payload
        while size - position >= 2:
            first, length = buffer[position], buffer[position + 1] & 0x7F
            header = 2
            if length == 126:
                if size - position < 4:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 4], "big")
                header = 4
            elif length == 127:
                if size - position < 10:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 10], "big")
                header = 10
            end = position + header + length
            if end > size:
                break
            payload = bytes(buffer[position + header : end])
            position = end
            opcode = first & 0x0F
            if opcode in (1, 2):
                on_payload(payload)
            elif opcode == 9:
                self._send(0xA, payload)
        del buffer[:position]

    def send_text(self, data: bytes) -> None:
        """Send one text frame (masked with a zero key: the bytes go out unchanged)."""
        self._send(0x1, data)

    def _send(self, opcode: int, data: bytes) -> None:
        length = len(data)
        if length < 126:
            header = bytes((0x80 | opcode, 0x80 | length))
        elif length < 65536:
            header = bytes((0x80 | opcode, 0xFE)) + length.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0xFF)) + length.to_bytes(8, "big")
        assert self.transport is not None
        self.transport.write(header + b"\0\0\0\0" + data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect_raw(url: str, on_payload: Callable[[bytes], None]) -> RawClient:
    """Open a :class:`RawClient` to ``ws://host:port``."""
    host, port = url.removeprefix("ws://").rsplit(":", 1)
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(
        lambda: RawClient(f"{host}:{port}", on_payload), host, int(port)
    )
    await client.opened
    return client


SET_PREFIX = b'{"type":"set",'
ACK_PREFIX = b'{"type":"ack",'
PUSH_PREFIX = b'{"type":"push",'
SNAPSHOT = b'{"type":"snapshot","revision":0,"values":[]}'
MAX_BATCH = 2000
"""Sets per batch at most, as the sync server's group commit."""
LOG_BYTES = 4 * 1024 * 1024
"""Size of the relay's durable log, written in a ring."""


def text_frame(payload: bytes) -> bytes:
    """One unmasked text frame, as a server sends it."""
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 65536:
        return b"\x81\x7e" + length.to_bytes(2, "big") + payload
    return b"\x81\x7f" + length.to_bytes(8, "big") + payload


class Relay:
    """The relay's state: connections that said hello, the queue, the durable file."""

    def __init__(self, path: Path, synchronous: str, write_delay: float) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        # Written in a ring over a file whose blocks already exist, as SQLite reuses
        # its WAL: a commit's fdatasync then flushes data, not a growing file's metadata.
        os.write(self._fd, bytes(LOG_BYTES))
        os.fsync(self._fd)
        self._offset = 0
        self._sync = synchronous == "FULL"
        self._write_delay = write_delay
        self._plain: dict[ServerConnection, None] = {}
        self._batched: dict[ServerConnection, None] = {}
        self._queue: list[tuple[ServerConnection, bytes]] = []
        self._revision = 0
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-disk")
        self._committer = asyncio.get_running_loop().create_task(self._commit_loop())

    async def close(self) -> None:
        self._committer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._committer
        self._executor.shutdown()
        os.close(self._fd)

    async def handle(self, ws: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                payload = await ws.recv(decode=False)
                if payload.startswith(SET_PREFIX):
                    if self._write_delay:
                        loop.call_later(self._write_delay, self._submit, ws, payload)
                    else:
                        self._submit(ws, payload)
                elif payload.startswith(b'{"type":"hello"'):
                    await ws.send(SNAPSHOT, text=True)
                    batched = b'"batch_pushes":true' in payload
                    (self._batched if batched else self._plain)[ws] = None
        except ConnectionClosed:
            pass
        finally:
            self._plain.pop(ws, None)
            self._batched.pop(ws, None)

    def _submit(self, ws: ServerConnection, payload: bytes) -> None:
        self._queue.append((ws, payload))
        self._wakeup.set()

    async def _commit_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = self._queue[:MAX_BATCH]
                del self._queue[:MAX_BATCH]
                data = b"\n".join(payload for _, payload in batch)
                await loop.run_in_executor(self._executor, self._persist, data)
                self._fan_out(batch)

    def _persist(self, data: bytes) -> None:
        if self._offset + len(data) > LOG_BYTES:
            self._offset = 0
        os.pwrite(self._fd, data[:LOG_BYTES], self._offset)
        self._offset += len(data)
        if self._sync:
            os.fdatasync(self._fd)

    def _fan_out(self, batch: list[tuple[ServerConnection, bytes]]) -> None:
        acks: dict[ServerConnection, list[bytes]] = {}
        pushes = []
        for ws, payload in batch:
            self._revision += 1
            ack, push = _ack_and_push(payload, self._revision)
            frames = acks.get(ws)
            if frames is None:
                acks[ws] = frames = []
            frames.append(text_frame(ack))
            pushes.append(push)
        if self._plain:
            _write_all(self._plain, acks, b"".join(text_frame(push) for push in pushes))
        if self._batched:
            frame = text_frame(b'{"type":"pushes","pushes":[' + b",".join(pushes) + b"]}")
            _write_all(self._batched, acks, frame)
        for ws, frames in acks.items():
            _write(ws, b"".join(frames))


def _ack_and_push(payload: bytes, revision: int) -> tuple[bytes, bytes]:
    """The ack and the push of a set, cut from its bytes (fields in the link's order:
    request_id, key, value, local_revision, device_id)."""
    body = payload[len(SET_PREFIX) :]
    split = body.rfind(b',"local_revision":')
    head, writer = body[:split], body[split:]
    stamp = b'"server_revision":%d,' % revision
    ack = ACK_PREFIX + stamp + head + b"}"
    push = PUSH_PREFIX + stamp + head[head.find(b",") + 1 :] + writer
    return ack, push


def _write_all(
    connections: dict[ServerConnection, None],
    acks: dict[ServerConnection, list[bytes]],
    pushes: bytes,
) -> None:
    for ws in connections:
        frames = acks.pop(ws, None)
        _write(ws, b"".join(frames) + pushes if frames else pushes)


def _write(ws: ServerConnection, data: bytes) -> None:
    if ws.protocol.state is State.OPEN:
        ws.transport.write(data)


@contextlib.asynccontextmanager
async def relay_running(
    synchronous: str = "FULL", write_delay: float = 0.0, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """A bare relay on this loop; yields its ``ws://`` URL."""
    with tempfile.TemporaryDirectory(prefix="optisync-relay-") as tmp:
        relay = Relay(Path(tmp) / "relay.log", synchronous, write_delay)
        try:
            async with serve(relay.handle, host, port, compression=None) as server:
                yield f"ws://{host}:{server.sockets[0].getsockname()[1]}"
        finally:
            await relay.close()


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with relay_running(args.synchronous, args.write_delay, args.host, args.port) as url:
        name = loop_name(not args.no_uvloop)
        print(f"bare relay listening on {url} (synchronous={args.synchronous}, {name})", flush=True)
        await stop.wait()


_YES = ("1", "true", "yes", "on")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.perf._bare", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL")
    parser.add_argument("--write-delay", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument(
        "--no-uvloop",
        action="store_true",
        default=os.environ.get("OPTISYNC_NO_UVLOOP", "").strip().lower() in _YES,
        help="keep asyncio's loop even when uvloop is installed, as syncserver's flag does",
    )
    args = parser.parse_args()
    if args.write_delay < 0:
        parser.error("--write-delay must not be negative")
    # The ceiling runs on the loop the sync server would pick, or it is no ceiling.
    run(_serve(args), use_uvloop=not args.no_uvloop)


if __name__ == "__main__":
    main()
