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

Protocol version 1: fields are only ever added, never removed or changed in
meaning, and receivers ignore fields they do not know. The server answers a
message ``type`` it does not know with the error code ``unknown_type``.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, get_args

import msgspec

__all__ = [
    "DEFAULT_SPACE",
    "ERROR_CODES",
    "MAX_CHAOS_DELAY",
    "MAX_FRAME_BYTES",
    "MAX_KEY_LENGTH",
    "MAX_PAGE_BYTES",
    "MAX_SPACE_LENGTH",
    "MAX_VALUE_BYTES",
    "MAX_VALUE_DEPTH",
    "PROTOCOL_VERSION",
    "Ack",
    "Chaos",
    "ChaosSettings",
    "ChaosState",
    "ClientMessage",
    "DeviceInfo",
    "DeviceSecret",
    "Error",
    "ErrorCode",
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
    "SpaceName",
    "StateEntry",
    "Unobserve",
    "Value",
    "decode_client_message",
    "decode_server_message",
    "encode",
    "encode_bytes",
    "read_request_id",
    "value_depth",
]

MAX_KEY_LENGTH: Final = 256
MAX_SPACE_LENGTH: Final = 128

DEFAULT_SPACE: Final = "default"
"""The space of a client that never names one (every client before spaces)."""
MAX_VALUE_BYTES: Final = 64 * 1024
MAX_CHAOS_DELAY: Final = 60.0

PROTOCOL_VERSION: Final = 1
"""The newest protocol version this code speaks."""

MAX_FRAME_BYTES: Final = 1024 * 1024
"""No frame is bigger, either way: a bigger one closes its connection with 1009."""

MAX_PAGE_BYTES: Final = 512 * 1024
"""Most bytes in one ``snapshot`` page or one ``pushes`` frame the server sends."""

MAX_VALUE_DEPTH: Final = 32
"""Deepest nesting of a value: a scalar nests 0 levels, ``[1]`` 1 level."""

ErrorCode = Literal[
    "bad_request",
    "unknown_type",
    "too_large",
    "rate_limited",
    "hello_required",
    "device_mismatch",
    "chaos_disabled",
    "injected_failure",
    "unavailable",
    "forbidden",
    "not_joined",
    "too_many_spaces",
]
ERROR_CODES: Final[frozenset[str]] = frozenset(get_args(ErrorCode))
"""Every ``error.code`` the server sends (a client treats others like ``bad_request``)."""

Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
NonNegativeInt64 = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Delay = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_CHAOS_DELAY)]
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_KEY_LENGTH)]
SpaceName = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SPACE_LENGTH)]
"""A space's name: an account, a document, a room (PROTOCOL.md, "Spaces")."""
RequestId = Annotated[str, msgspec.Meta(max_length=128)] | Int64


class _Message(msgspec.Struct, tag_field="type", frozen=True):
    pass


# -- client to server -------------------------------------------------------


DeviceSecret = Annotated[str, msgspec.Meta(min_length=16, max_length=256)]
"""A device's secret: made by the device (``secrets.token_urlsafe(32)``), kept in its state."""


class Hello(_Message, tag="hello", frozen=True):
    """Join ``space`` (or resync it): ask for its keys written after revision ``since``.

    The first hello binds the connection to ``device_id``; each hello joins
    its space (one hello per space for several spaces on one connection). ``epoch`` is the
    epoch ``since`` counts in; when it is not the server's, the server answers
    as for ``since: 0``. ``protocol`` is the newest version the client speaks.
    ``device_secret`` proves the device owns ``device_id`` (PROTOCOL.md,
    "Credentials"): the first hello that carries one records it.
    """

    device_id: Int64
    since: NonNegativeInt64 = 0
    token: str | None = None
    batch_pushes: bool = False
    protocol: Annotated[int, msgspec.Meta(ge=1)] = PROTOCOL_VERSION
    epoch: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    device_secret: DeviceSecret | None = None
    space: SpaceName = DEFAULT_SPACE


class Set(_Message, tag="set", frozen=True):
    """Write ``value`` to ``key`` of ``space``; answered by an :class:`Ack` once durable.

    ``device_id`` may be left out; when given it must be the hello's. The
    connection must have joined ``space`` (else ``not_joined``).
    """

    request_id: RequestId
    key: Key
    value: Any
    local_revision: NonNegativeInt64
    device_id: Int64 | None = None
    space: SpaceName = DEFAULT_SPACE


class Get(_Message, tag="get", frozen=True):
    """Read one key of a joined ``space``; answered by a :class:`Value`."""

    request_id: RequestId
    key: Key
    space: SpaceName = DEFAULT_SPACE


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


class SnapshotEntry(msgspec.Struct, frozen=True):
    """One register in a snapshot, with the writer's device and local revision,
    so a device can tell the echo of its own older write from a newer one.
    ``device_id`` 0 means the writer is unknown (written by an older server)."""

    key: str
    value: Any
    server_revision: int
    local_revision: int = 0
    device_id: int = 0


class StateEntry(SnapshotEntry, frozen=True):
    """One register in the observer feed: a snapshot entry and its space."""

    space: str = DEFAULT_SPACE


class Snapshot(_Message, tag="snapshot", frozen=True):
    """Answer to :class:`Hello`: ``revision`` is the server's newest revision.

    ``values`` holds every key of ``space`` written after ``since`` (0: every
    key) in the database named by ``epoch``. A long snapshot comes as several
    pages with the same ``revision``, ``epoch``, ``since`` and ``space``;
    every page but the last says ``more``. ``protocol`` is the version spoken
    on this connection.
    """

    revision: int
    values: list[SnapshotEntry]
    protocol: int = PROTOCOL_VERSION
    epoch: str = ""
    since: int = 0
    more: bool = False
    space: str = DEFAULT_SPACE


class Ack(_Message, tag="ack", frozen=True):
    """The write with ``request_id`` is durable at ``server_revision``."""

    request_id: RequestId
    key: str
    value: Any
    server_revision: int
    space: str = DEFAULT_SPACE


class Push(_Message, tag="push", frozen=True):
    """A write, sent to every device that joined its space, the writer included.

    ``prev`` is the revision of the newest earlier write in the same space (0:
    none), so a device sees a gap in a space; None from a server older than
    spaces (PROTOCOL.md, "Spaces").
    """

    key: str
    value: Any
    server_revision: int
    local_revision: int
    device_id: int
    space: str = DEFAULT_SPACE
    prev: int | None = None


class Value(_Message, tag="value", frozen=True):
    """Answer to :class:`Get`; a key never written has value None, revision 0."""

    request_id: RequestId
    key: str
    value: Any
    server_revision: int
    space: str = DEFAULT_SPACE


class PushBatch(_Message, tag="pushes", frozen=True):
    """Pushes in revision order, for clients that said ``batch_pushes`` (one
    commit's pushes, split into several frames when they pass MAX_PAGE_BYTES)."""

    pushes: list[Push]


class ChaosSettings(msgspec.Struct, frozen=True):
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


class DeviceInfo(msgspec.Struct, frozen=True):
    """One open connection, as the observer feed shows it, with the spaces it joined."""

    connection_id: int
    device_id: int | None
    remote: str
    batch_pushes: bool
    requests: int
    spaces: list[str] = msgspec.field(default_factory=list)


class ServerState(_Message, tag="server_state", frozen=True):
    """Observer feed: what the server holds and is doing right now.

    ``values`` and ``devices`` are capped so the frame stays under
    MAX_PAGE_BYTES (the newest writes, in key order; the oldest connections);
    ``values_total`` and ``devices_total`` are how many there are in all.
    """

    revision: int
    devices: list[DeviceInfo]
    requests_received: int
    requests_in_flight: int
    values: list[StateEntry]
    chaos: ChaosSettings
    values_total: int = 0
    devices_total: int = 0


class Error(_Message, tag="error", frozen=True):
    """A request was refused; the connection stays open. ``space`` names the
    space the error is about (``forbidden``, ``not_joined``, ...), else None."""

    request_id: RequestId | None
    code: str
    message: str
    space: str | None = None


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


class _TypeProbe(msgspec.Struct):
    type: str | None = None


_CLIENT_TYPES: Final = frozenset(
    str(cls.__struct_config__.tag) for cls in (Hello, Set, Get, Chaos, Observe, Unobserve)
)
_SERVER_TYPES: Final = frozenset(
    str(cls.__struct_config__.tag)
    for cls in (Snapshot, Ack, Push, Value, Error, PushBatch, ChaosState, ServerState)
)

_encoder = msgspec.json.Encoder()
_probe_decoder = msgspec.json.Decoder(_RequestIdProbe)
_type_decoder = msgspec.json.Decoder(_TypeProbe)
_client_decoder = msgspec.json.Decoder(ClientMessage)
_server_decoder = msgspec.json.Decoder(ServerMessage)


def encode(message: msgspec.Struct) -> str:
    """Encode a message as the JSON text of one frame."""
    return _encoder.encode(message).decode()


def encode_bytes(message: msgspec.Struct) -> bytes:
    """Encode a message as the UTF-8 JSON of one text frame (no str round trip)."""
    return _encoder.encode(message)


def value_depth(value: Any) -> int:
    """How deep a decoded JSON value nests: 0 for a scalar, 1 for ``[1]`` or ``{}``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list):
            children: Any = item
        elif isinstance(item, dict):
            children = item.values()
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
        stack.extend((child, depth) for child in children)
    return deepest


def _bracket_count(frame: str | bytes) -> int:
    if isinstance(frame, str):
        return frame.count("[") + frame.count("{")
    return frame.count(b"[") + frame.count(b"{")


def _unknown_type(frame: str | bytes, known: frozenset[str]) -> str | None:
    """The frame's ``type`` when it is a string no message has, else None."""
    try:
        kind = _type_decoder.decode(frame).type
    except Exception:
        return None
    return kind if kind is not None and kind not in known else None


def _decode(decoder: msgspec.json.Decoder[Any], frame: str | bytes, known: frozenset[str]) -> Any:
    if isinstance(frame, bytes | bytearray | memoryview) and not isinstance(frame, str):
        raise ProtocolError("bad_request", "binary frames are not accepted; send JSON text")
    try:
        return decoder.decode(frame)
    except msgspec.ValidationError as exc:
        kind = _unknown_type(frame, known)
        if kind is not None:
            raise ProtocolError(
                "unknown_type", f"unknown message type {kind[:64]!r}", read_request_id(frame)
            ) from None
        raise ProtocolError("bad_request", f"invalid message: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ProtocolError("bad_request", f"not valid JSON: {exc}") from None
    except RecursionError:
        raise ProtocolError("bad_request", "value nests too deeply") from None
    except Exception as exc:  # never let one bad frame take the connection down
        raise ProtocolError("bad_request", f"could not decode: {type(exc).__name__}") from None


def decode_client_message(frame: str | bytes) -> ClientMessage:
    """Decode and validate one frame from a client, or raise :class:`ProtocolError`.

    A ``set`` whose value nests deeper than MAX_VALUE_DEPTH is ``bad_request``;
    a ``type`` no client message has is ``unknown_type``.
    """
    message: ClientMessage = _decode(_client_decoder, frame, _CLIENT_TYPES)
    # A frame with few brackets cannot nest deeply: only big ones are walked.
    if (
        type(message) is Set
        and _bracket_count(frame) > MAX_VALUE_DEPTH + 1
        and value_depth(message.value) > MAX_VALUE_DEPTH
    ):
        raise ProtocolError(
            "bad_request",
            f"value nests deeper than {MAX_VALUE_DEPTH} levels",
            message.request_id,
        )
    return message


def decode_server_message(frame: str | bytes) -> ServerMessage:
    """Decode and validate one frame from the server, or raise :class:`ProtocolError`.

    A ``type`` no server message has is ``unknown_type`` (a client logs and
    skips it).
    """
    message: ServerMessage = _decode(_server_decoder, frame, _SERVER_TYPES)
    return message


def read_request_id(frame: str | bytes) -> str | int | None:
    """Best effort: the ``request_id`` of a frame that failed to decode, so the
    error reply can name the request; None when it cannot be read."""
    if not isinstance(frame, str):
        return None
    try:
        return _probe_decoder.decode(frame).request_id
    except Exception:
        return None
