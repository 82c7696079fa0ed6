"""The frames the simulated devices and model server exchange.

They mirror :mod:`syncserver.protocol` field for field (``Hello``/``Set``/``Get``
up, ``Snapshot``/``Ack``/``Push``/``Value``/``Error`` down), as plain frozen
dataclasses: nothing is encoded, since nothing leaves the process.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Ack",
    "ClientFrame",
    "Error",
    "Get",
    "Hello",
    "Push",
    "ServerFrame",
    "Set",
    "Snapshot",
    "SnapshotEntry",
    "Value",
]


@dataclass(frozen=True, slots=True)
class Hello:
    device_id: int
    since: int


@dataclass(frozen=True, slots=True)
class Set:
    request_id: int
    key: Hashable
    value: Any
    local_revision: int
    device_id: int


@dataclass(frozen=True, slots=True)
class Get:
    request_id: int
    key: Hashable


@dataclass(frozen=True, slots=True)
class SnapshotEntry:
    key: Hashable
    value: Any
    server_revision: int
    device_id: int | None
    """The writer, when the server tells it (see ``snapshot_writer``)."""
    local_revision: int | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    revision: int
    values: tuple[SnapshotEntry, ...]


@dataclass(frozen=True, slots=True)
class Ack:
    request_id: int
    key: Hashable
    value: Any
    server_revision: int


@dataclass(frozen=True, slots=True)
class Push:
    key: Hashable
    value: Any
    server_revision: int
    local_revision: int
    device_id: int


@dataclass(frozen=True, slots=True)
class Value:
    request_id: int
    key: Hashable
    value: Any
    server_revision: int


@dataclass(frozen=True, slots=True)
class Error:
    request_id: int
    code: str
    message: str


ClientFrame = Hello | Set | Get
ServerFrame = Snapshot | Ack | Push | Value | Error
