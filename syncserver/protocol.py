"""The optisync wire protocol, declared once and shared by server and clients.

Every frame is a JSON text object whose ``"type"`` field names the message.
Decoding validates with msgspec, so a malformed frame never reaches the
server's logic: it becomes a :class:`ProtocolError` with code ``bad_request``.

Client to server: :class:`Hello`, :class:`Set`, :class:`Get`.
Server to client: :class:`Snapshot`, :class:`Ack`, :class:`Push`,
:class:`Value`, :class:`Error`, and :class:`PushBatch` for clients that opt
in with ``Hello.batch_pushes``.

Demo controls (only on a server started with ``--allow-chaos``): the client
sends :class:`Chaos`, :class:`Observe` or :class:`Unobserve`; the server
answers with :class:`ChaosState` and feeds :class:`ServerState` to observers.
``syncserver/PROTOCOL.md`` documents every message with examples.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec

__all__ = [
    "MAX_CHAOS_DELAY",
    "MAX_KEY_LENGTH",
    "MAX_VALUE_BYTES",
    "Ack",
    "Chaos",
    "ChaosSettings",
    "ChaosState",
    "ClientMessage",
    "DeviceInfo",
    "Error",
    "Get",
    "Hello",
    "Int64",
    "Key",
    "NonNegativeInt64",
    "Observe",
    "ProtocolError",
    "Push",
    "PushBatch",
    "RequestId",
    "ServerMessage",
    "ServerState",
    "Set",
    "Snapshot",
    "SnapshotEntry",
    "Unobserve",
    "Value",
    "decode_client_message",
    "decode_server_message",
    "encode",
    "encode_bytes",
    "read_request_id",
]

MAX_KEY_LENGTH: Final = 256
MAX_VALUE_BYTES: Final = 64 * 1024
MAX_CHAOS_DELAY: Final = 60.0

Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
NonNegativeInt64 = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Delay = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_CHAOS_DELAY)]
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


class Chaos(_Message, tag="chaos", frozen=True):
    """Demo control: change the fields that are given; answered by :class:`ChaosState`.

    Delays are seconds. ``fail_next`` makes the next N set/get requests fail
    with an ``injected_failure`` error. ``reset`` restores every default first.
    """

    request_id: RequestId | None = None
    reset: bool = False
    write_delay: Delay | None = None
    ack_delay: Delay | None = None
    push_enabled: bool | None = None
    push_delay: Delay | None = None
    push_jitter: Delay | None = None
    fail_next: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] | None = None


class Observe(_Message, tag="observe", frozen=True):
    """Demo control: start receiving :class:`ServerState` whenever the server changes."""

    request_id: RequestId | None = None


class Unobserve(_Message, tag="unobserve", frozen=True):
    """Demo control: stop the :class:`ServerState` feed."""

    request_id: RequestId | None = None


# -- server to client -------------------------------------------------------


class SnapshotEntry(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One register in a snapshot, with the writer's device and local revision,
    so a device can tell the echo of its own older write from a newer one.
    ``device_id`` 0 means the writer is unknown (written by an older server)."""

    key: str
    value: Any
    server_revision: int
    local_revision: int = 0
    device_id: int = 0


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


class PushBatch(_Message, tag="pushes", frozen=True):
    """Every push of one event-loop tick, for clients that said ``batch_pushes``."""

    pushes: list[Push]


class ChaosSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The demo controls in force; the defaults change nothing."""

    write_delay: float = 0.0
    ack_delay: float = 0.0
    push_enabled: bool = True
    push_delay: float = 0.0
    push_jitter: float = 0.0
    fail_next: int = 0


class ChaosState(_Message, tag="chaos_state", frozen=True):
    """Answer to :class:`Chaos`: the settings now in force."""

    request_id: RequestId | None
    settings: ChaosSettings


class DeviceInfo(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One open connection, as the observer feed shows it."""

    connection_id: int
    device_id: int | None
    remote: str
    batch_pushes: bool
    requests: int


class ServerState(_Message, tag="server_state", frozen=True):
    """Observer feed: what the server holds and is doing right now."""

    revision: int
    devices: list[DeviceInfo]
    requests_received: int
    requests_in_flight: int
    values: list[SnapshotEntry]
    chaos: ChaosSettings


class Error(_Message, tag="error", frozen=True):
    """A request was refused; the connection stays open."""

    request_id: RequestId | None
    code: str
    message: str


ClientMessage = Hello | Set | Get | Chaos | Observe | Unobserve
ServerMessage = Snapshot | Ack | Push | Value | Error | PushBatch | ChaosState | ServerState


class ProtocolError(Exception):
    """A peer sent a frame that breaks the protocol (the peer's fault)."""

    def __init__(self, code: str, message: str, request_id: str | int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


class _RequestIdProbe(msgspec.Struct):
    request_id: RequestId | None = None


_encoder = msgspec.json.Encoder()
_probe_decoder = msgspec.json.Decoder(_RequestIdProbe)
_client_decoder = msgspec.json.Decoder(ClientMessage)
_server_decoder = msgspec.json.Decoder(ServerMessage)


def encode(message: msgspec.Struct) -> str:
    """Encode a message as the JSON text of one frame."""
    return _encoder.encode(message).decode()


def encode_bytes(message: msgspec.Struct) -> bytes:
    """Encode a message as the UTF-8 JSON of one text frame (no str round trip)."""
    return _encoder.encode(message)


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


def read_request_id(frame: str | bytes) -> str | int | None:
    """Best effort: the ``request_id`` of a frame that failed to decode, so the
    error reply can name the request; None when it cannot be read."""
    if not isinstance(frame, str):
        return None
    try:
        return _probe_decoder.decode(frame).request_id
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
