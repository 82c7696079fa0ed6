"""The optisync wire protocol, declared once and shared by server and clients.

Every frame is a JSON text object whose ``"type"`` field names the message.
Decoding validates with msgspec, so a malformed frame never reaches the
server's logic: it becomes a :class:`ProtocolError` with code ``bad_request``.

Client to server: :class:`Hello`, :class:`Set`, :class:`Get`.
Server to client: :class:`Snapshot`, :class:`Ack`, :class:`Push`,
:class:`Value`, :class:`Error`.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_VALUE_BYTES",
    "Ack",
    "ClientMessage",
    "Error",
    "Get",
    "Hello",
    "Int64",
    "Key",
    "NonNegativeInt64",
    "ProtocolError",
    "Push",
    "RequestId",
    "ServerMessage",
    "Set",
    "Snapshot",
    "SnapshotEntry",
    "Value",
    "decode_client_message",
    "decode_server_message",
    "encode",
]

MAX_KEY_LENGTH: Final = 256
MAX_VALUE_BYTES: Final = 64 * 1024

Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
NonNegativeInt64 = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_KEY_LENGTH)]
RequestId = Annotated[str, msgspec.Meta(max_length=128)] | Int64


class _Message(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, frozen=True):
    pass


# -- client to server -------------------------------------------------------


class Hello(_Message, tag="hello", frozen=True):
    """Join (or resync): ask for every key written after revision ``since``."""

    device_id: Int64
    since: NonNegativeInt64 = 0
    token: str | None = None
    batch_pushes: bool = False


class Set(_Message, tag="set", frozen=True):
    """Write ``value`` to ``key``; answered by an :class:`Ack` once durable."""

    request_id: RequestId
    key: Key
    value: Any
    local_revision: NonNegativeInt64
    device_id: Int64


class Get(_Message, tag="get", frozen=True):
    """Read one key; answered by a :class:`Value`."""

    request_id: RequestId
    key: Key


# -- server to client -------------------------------------------------------


class SnapshotEntry(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    key: str
    value: Any
    server_revision: int


class Snapshot(_Message, tag="snapshot", frozen=True):
    """Answer to :class:`Hello`: ``revision`` is the server's newest revision."""

    revision: int
    values: list[SnapshotEntry]


class Ack(_Message, tag="ack", frozen=True):
    """The write with ``request_id`` is durable at ``server_revision``."""

    request_id: RequestId
    key: str
    value: Any
    server_revision: int


class Push(_Message, tag="push", frozen=True):
    """A write, sent to every connected device, the writer included."""

    key: str
    value: Any
    server_revision: int
    local_revision: int
    device_id: int


class Value(_Message, tag="value", frozen=True):
    """Answer to :class:`Get`; a key never written has value None, revision 0."""

    request_id: RequestId
    key: str
    value: Any
    server_revision: int


class Error(_Message, tag="error", frozen=True):
    """A request was refused; the connection stays open."""

    request_id: RequestId | None
    code: str
    message: str


ClientMessage = Hello | Set | Get
ServerMessage = Snapshot | Ack | Push | Value | Error


class ProtocolError(Exception):
    """A peer sent a frame that breaks the protocol (the peer's fault)."""

    def __init__(self, code: str, message: str, request_id: str | int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


_encoder = msgspec.json.Encoder()
_client_decoder = msgspec.json.Decoder(ClientMessage)
_server_decoder = msgspec.json.Decoder(ServerMessage)


def encode(message: msgspec.Struct) -> str:
    """Encode a message as the JSON text of one frame."""
    return _encoder.encode(message).decode()


def _decode(decoder: msgspec.json.Decoder[Any], frame: str | bytes) -> Any:
    if isinstance(frame, bytes | bytearray | memoryview) and not isinstance(frame, str):
        raise ProtocolError("bad_request", "binary frames are not accepted; send JSON text")
    try:
        return decoder.decode(frame)
    except msgspec.ValidationError as exc:
        raise ProtocolError("bad_request", f"invalid message: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ProtocolError("bad_request", f"not valid JSON: {exc}") from None


def decode_client_message(frame: str | bytes) -> ClientMessage:
    """Decode and validate one frame from a client, or raise :class:`ProtocolError`."""
    message: ClientMessage = _decode(_client_decoder, frame)
    return message


def decode_server_message(frame: str | bytes) -> ServerMessage:
    """Decode and validate one frame from the server, or raise :class:`ProtocolError`."""
    message: ServerMessage = _decode(_server_decoder, frame)
    return message
