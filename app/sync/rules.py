"""The revision rules, in one place.

Theory of operation
-------------------
The server stamps every write with a revision from one increasing counter and
pushes it to every device, the writer included. A device therefore sees each of
its own writes twice (the response and the echo), other devices' writes once
(the push), and any of them late or out of order. Three small decisions keep
every device converging on the server's last write, and keep a user's last
change unless a write newer than their own replaced it:

* :func:`judge_push` - a push is only news if its revision is above every one
  this device knows. Our own push carrying an older local revision is the echo
  of a request we have since superseded: its revision is recorded, but showing
  its value would flicker the UI back to an intent the user already changed.

* A push from another device for a key with a request in flight is **held**:
  its revision is recorded, its value kept aside, not shown. Until our
  response comes back the device cannot tell whether that write is older or
  newer than its own in-flight one. Showing it at once (as the reference
  does) would flicker the UI to a value our own write may already have
  overwritten, then back to the user's value at the response; and a change
  the user made while seeing it would look like a deliberate overwrite we
  could not tell apart. Held back, the UI keeps showing the user's latest
  choice and changes at most once, to the winner, when the response decides.
  A later accepted push makes a held one obsolete (it is older), and a local
  change drops it (the user's newer change is what the follow-up carries).
  If the request fails, the held push is dropped with it: our write's fate is
  unknown, so recovery is the same as for any failed write (``on_finish``
  reloads the key, or the link resends the intent after a reconnect).

* :func:`judge_response` - at the response, in this order: a held push above
  the response's revision is a newer write by another device (last write
  wins: show it, no follow-up); otherwise our write overwrote it, and the
  latest local change, if it happened after the request left, is sent as a
  follow-up unless the server already holds that exact value at the newest
  revision. The follow-up carries the latest local value as the device
  recorded it, never a value read back from state.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

__all__ = ["PushMetadata", "PushVerdict", "ResponseVerdict", "judge_push", "judge_response"]


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
    HOLD = "hold"
    """Another device's newer write while our request is in flight: record the
    revision, keep the value aside until the response tells which write is newer."""
    APPLY = "apply"
    """A newer server write with nothing of ours in flight (or our own newest): apply it."""


class ResponseVerdict(Enum):
    PUSH_WINS = "push_wins"
    """A held push is newer than our write: show it, drop the pending local intent."""
    FOLLOW_UP = "follow_up"
    """The user changed the key after the request left: send the latest local value."""
    STABLE = "stable"
    """Nothing more to send: the key is settled on the response (or a newer push)."""


def judge_push(
    push: PushMetadata,
    *,
    device_id: int,
    local_revision: int,
    known_server_revision: int,
    in_flight: bool = False,
) -> PushVerdict:
    """Decide what a push means for a key, given what this device knows of it."""
    if push.server_revision <= known_server_revision:
        return PushVerdict.STALE
    if push.device_id == device_id:
        if push.local_revision < local_revision:
            return PushVerdict.SELF_ECHO
        return PushVerdict.APPLY  # the echo of our newest write: the server's truth
    return PushVerdict.HOLD if in_flight else PushVerdict.APPLY


def judge_response(
    *,
    held_push_revision: int | None,
    response_revision: int,
    local_revision: int,
    sent_local_revision: int,
    value_changed: bool,
    known_server_revision: int,
) -> ResponseVerdict:
    """Decide how a sync loop goes on after a response.

    ``held_push_revision`` is the revision of the push held since the latest
    local change (None if none); ``value_changed`` compares the latest local
    value with the one sent.
    """
    if held_push_revision is not None and held_push_revision > response_revision:
        return ResponseVerdict.PUSH_WINS  # another device wrote after us: last write wins
    if local_revision <= sent_local_revision:
        return ResponseVerdict.STABLE  # nothing changed locally since the request left
    # The user changed the value and changed it back: the server already holds
    # their final intent unless another write landed on top of ours.
    if value_changed or known_server_revision > response_revision:
        return ResponseVerdict.FOLLOW_UP
    return ResponseVerdict.STABLE
