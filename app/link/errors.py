"""Errors raised by the device link, split by whose fault they are.

Exception tree::

    Exception
    └── LinkError                  base of everything the link raises
        ├── NetworkError           the network let us down; retrying later may help
        │   ├── RequestTimeoutError    no reply within the request timeout
        │   │   └── AckTimeoutError    ... to a ``set``: the write may or may not have landed
        │   └── DisconnectedError      offline, or the connection dropped mid-request
        ├── ServerRefusedError     the server answered with an ``error`` reply (``.code``)
        │   └── ServerUnavailableError ``unavailable``: not stored, try again later
        ├── ClientClosedError      misuse: the client was already closed
        └── DeviceInUseError       another session (maybe another process) has this device open

A frame from the server that breaks the protocol is logged and dropped: it is
the server's fault and says nothing about any one request.
"""

from __future__ import annotations

__all__ = [
    "AckTimeoutError",
    "ClientClosedError",
    "DeviceInUseError",
    "DisconnectedError",
    "LinkError",
    "NetworkError",
    "RequestTimeoutError",
    "ServerRefusedError",
    "ServerUnavailableError",
]


class LinkError(Exception):
    """Base of every error the device link raises."""


class NetworkError(LinkError):
    """The network failed us; the request may be retried once the link is back."""


class RequestTimeoutError(NetworkError):
    """No reply arrived within the request timeout."""

    def __init__(self, kind: str, key: str, timeout: float) -> None:
        super().__init__(f"no reply to {kind} {key!r} within {timeout:g} s")
        self.kind = kind
        self.key = key
        self.timeout = timeout


class AckTimeoutError(RequestTimeoutError):
    """A ``set`` got no ack in time; the server may still have written it."""

    def __init__(self, key: str, timeout: float) -> None:
        super().__init__("set", key, timeout)


class DisconnectedError(NetworkError):
    """Not connected within the request timeout, or the connection dropped mid-request."""


class ServerRefusedError(LinkError):
    """The server refused the request with an ``error`` reply."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ClientClosedError(LinkError):
    """The client was closed; it sends nothing any more."""


class ServerUnavailableError(ServerRefusedError):
    """The server could not store the write now (backend down, shutting down);
    nothing was written, and sending it again later is expected."""


class DeviceInUseError(LinkError):
    """The device's state file is locked by another open session, maybe in another
    process: one device identity is never used twice at once."""

    def __init__(self, name: str, path: object) -> None:
        super().__init__(f"device {name!r} is already open elsewhere (its state file {path})")
        self.name = name
        self.path = path
