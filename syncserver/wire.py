"""Frames written straight to a connection's transport, for the fan-out hot path.

A commit's pushes are serialized once and the same bytes go to every
connection, with that connection's acks, in one transport write.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import State

__all__ = ["text_frame", "write_frames"]

logger = logging.getLogger(__name__)


def text_frame(payload: bytes) -> bytes:
    """One unmasked, uncompressed text frame as it goes on the wire from a server."""
    return Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])


def write_frames(ws: ServerConnection, frames: Sequence[bytes], serialized: bytes) -> int:
    """Send text frames on a connection in one transport write.

    ``frames`` are payloads, framed by websockets; ``serialized`` is frames
    already serialized with :func:`text_frame` (the pushes, serialized once
    for every connection). Like websockets' ``broadcast()`` there is no
    backpressure and closed connections are skipped. Writing pre-serialized
    frames is sound because the server never fragments messages and a frame
    without RSV bits is a plain uncompressed message under any extension
    websockets offers (and compression is off anyway). Returns the bytes now
    queued for the connection, so the caller can drop one that stopped reading.
    """
    protocol = ws.protocol
    if protocol.state is not State.OPEN:
        return 0
    try:
        for frame in frames:
            protocol.send_text(frame)
        # While the connection is OPEN, only frames are queued (no end-of-stream).
        ws.transport.write(b"".join(protocol.data_to_send()) + serialized)
        return ws.transport.get_write_buffer_size()
    except Exception as exc:
        logger.debug("could not write to connection %s: %s", ws.id, exc)
        return 0
