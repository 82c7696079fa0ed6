"""Errors raised by the sync core.

Exception tree::

    RuntimeError
    ├── MissingServerRevisionError  misuse: send_value_to_server forgot inform_server_revision
    └── TooManyFollowUpsError       the value kept changing past max_follow_up_requests requests

Failures of the transport (timeouts, refused writes) are whatever
``send_value_to_server`` raises; the core passes them to ``on_finish`` untouched.
"""

from __future__ import annotations

__all__ = ["MissingServerRevisionError", "TooManyFollowUpsError"]


class MissingServerRevisionError(RuntimeError):
    """``send_value_to_server`` returned without calling ``inform_server_revision``."""

    def __init__(self, key: object) -> None:
        super().__init__(
            f"send_value_to_server for key {key!r} returned without calling "
            "inform_server_revision(server_revision); the core needs the server's "
            "revision to tell stale responses and pushes apart"
        )
        self.key = key


class TooManyFollowUpsError(RuntimeError):
    """A sync loop needed one more request after sending ``max_follow_up_requests`` in all."""

    def __init__(self, key: object, limit: int) -> None:
        super().__init__(
            f"Too many follow-up requests for key {key!r}: the value kept changing "
            f"after {limit} requests (max_follow_up_requests={limit})"
        )
        self.key = key
        self.limit = limit
