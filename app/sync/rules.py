"""The revision rules, in one place.

Theory of operation
-------------------
The server stamps every write with a revision from one increasing counter and
pushes it to every device, the writer included. A device therefore sees each of
its own writes twice (the response and the echo), other devices' writes once
(the push), and any of them late or out of order. Two small decisions keep
every device converging on the server's last write:

* :func:`judge_push` - a push is only news if its revision is above every one
  this device knows. Our own push carrying an older local revision is the echo
  of a request we have since superseded: its revision is recorded, but showing
  its value would flicker the UI back to an intent the user already changed.

* :func:`needs_follow_up` - after a response, a second request is only worth
  sending if the latest change is local, happened after the request left, and
  the server does not already hold that exact value at the newest revision. A
  push that landed meanwhile is a newer server write and supersedes pending
  local intent (last write wins).
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

__all__ = ["PushMetadata", "PushVerdict", "judge_push", "needs_follow_up"]


class PushMetadata(NamedTuple):
    """What the server sends with every push; a plain 3-tuple in this order works too."""

    server_revision: int
    local_revision: int
    device_id: int


class PushVerdict(Enum):
    STALE = "stale"
    """At or below the newest known revision: ignore it."""
    SELF_ECHO = "self_echo"
    """Our own older request coming back: record the revision only."""
    APPLY = "apply"
    """A newer server write: apply it and let it supersede pending local intent."""


def judge_push(
    push: PushMetadata, *, device_id: int, local_revision: int, known_server_revision: int
) -> PushVerdict:
    """Decide what a push means for a key, given what this device knows of it."""
    if push.server_revision <= known_server_revision:
        return PushVerdict.STALE
    if push.device_id == device_id and push.local_revision < local_revision:
        return PushVerdict.SELF_ECHO
    return PushVerdict.APPLY


def needs_follow_up(
    *,
    latest_change_from_push: bool,
    local_revision: int,
    sent_local_revision: int,
    value_changed: bool,
    response_revision: int,
    known_server_revision: int,
) -> bool:
    """Decide whether a sync loop must send one more request after a response."""
    if latest_change_from_push:
        return False  # a newer server write superseded the pending local intent
    if local_revision <= sent_local_revision:
        return False  # nothing changed locally since the request left
    # The user changed the value and changed it back: the server already holds
    # their final intent unless another write landed on top of ours.
    return value_changed or known_server_revision > response_revision
