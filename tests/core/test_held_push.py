"""A push for a key with a request in flight is held until the response says
whether it is older or newer than our own write."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

import pytest

from app.sync import Cubit, DeviceContext, PushMetadata, PushVerdict, SyncCompletion
from app.sync.rules import ResponseVerdict, judge_push, judge_response
from tests.timeouts import TIMEOUT

from .helpers import HeldServer

KEY = "x"
OTHER_DEVICE = 2


@dataclass(frozen=True)
class TextState:
    text: str | None = None
    revision: int = -1


class TextCubit(Cubit[TextState]):
    """One text register synced through ``optimistic_sync_with_push``; every state it
    emits is kept, so a test can tell what the user was shown."""

    def __init__(self, server: HeldServer, device: DeviceContext | None = None) -> None:
        super().__init__(TextState(), device=device)
        self.server = server
        self.shown: list[str | None] = []
        self.subscribe(lambda state: self.shown.append(state.text))

    def write(self, text: str) -> SyncCompletion:
        return self.optimistic_sync_with_push(
            key=KEY,
            value_to_apply=lambda: text,
            apply_optimistic_value_to_state=lambda state, value: replace(state, text=value),
            get_value_from_state=lambda state: state.text,
            get_server_revision_from_state=lambda state: state.revision,
            send_value_to_server=self.server.send,
            apply_server_response_to_state=lambda state, response: replace(state, text=response),
        )

    def push(self, text: str, metadata: tuple[int, int, int]) -> PushVerdict:
        return self.server_push(
            key=KEY,
            push_metadata=metadata,
            get_server_revision_from_state=lambda state: state.revision,
            apply_server_push_to_state=lambda state, revision: replace(
                state, text=text, revision=revision
            ),
        )


async def test_a_push_older_than_our_in_flight_write_does_not_drop_the_latest_change() -> None:
    """B's "b"@1 reaches A after A's "a1" committed at 2: A's "a2" follows up and wins."""
    server = HeldServer()
    a = TextCubit(server)
    done = a.write("a1")
    first = await server.request(1)
    a.write("a2")  # local revision 2, while "a1" (local revision 1) is in flight
    assert a.push("b", (1, 1, OTHER_DEVICE)) is PushVerdict.HOLD
    first.answer(2)
    follow_up = await server.request(2)
    assert (follow_up.value, follow_up.local_revision) == ("a2", 2)
    follow_up.answer(3)
    await asyncio.wait_for(done, TIMEOUT)
    assert a.state.text == "a2"
    assert a.device.server_revision(KEY) == 3
    assert "b" not in a.shown  # never flickered to the overwritten value


async def test_a_push_newer_than_our_in_flight_write_wins_without_a_follow_up() -> None:
    """B's "b"@3 lands after A's "a1"@2: no follow-up, A ends on "b" at 3."""
    server = HeldServer()
    a = TextCubit(server)
    done = a.write("a1")
    first = await server.request(1)
    a.write("a2")
    assert a.push("b", (3, 1, OTHER_DEVICE)) is PushVerdict.HOLD
    first.answer(2)
    await asyncio.wait_for(done, TIMEOUT)
    assert len(server.requests) == 1
    assert a.state == TextState(text="b", revision=3)
    assert a.device.server_revision(KEY) == 3


async def test_a_held_push_is_not_shown_while_the_request_is_in_flight() -> None:
    """Meanwhile the UI keeps the user's latest choice; the revision is recorded."""
    server = HeldServer()
    a = TextCubit(server)
    done = a.write("a1")
    first = await server.request(1)
    a.push("b", (5, 1, OTHER_DEVICE))
    assert a.state.text == "a1"
    assert a.device.server_revision(KEY) == 5
    assert not a.device.latest_change_from_push(KEY)
    assert a.push("b", (5, 1, OTHER_DEVICE)) is PushVerdict.STALE  # the duplicate
    first.answer(4)
    await asyncio.wait_for(done, TIMEOUT)
    assert a.state.text == "b"
    assert a.device.latest_change_from_push(KEY)


async def test_a_held_push_older_than_our_write_is_dropped_when_nothing_changed() -> None:
    """With no local change since the request left, our newer write is simply the truth."""
    server = HeldServer()
    a = TextCubit(server)
    kinds: list[str] = []
    a.device.subscribe(lambda event: kinds.append(type(event).__name__))
    done = a.write("a1")
    first = await server.request(1)
    a.push("b", (1, 1, OTHER_DEVICE))
    first.answer(2)
    await asyncio.wait_for(done, TIMEOUT)
    assert len(server.requests) == 1
    assert a.state.text == "a1"
    assert a.device.server_revision(KEY) == 2
    assert kinds.index("PushHeld") < kinds.index("PushIgnoredStale") < kinds.index("SyncFinished")
    assert "PushApplied" not in kinds


async def test_a_local_change_after_a_held_push_is_sent_even_if_the_push_is_newer() -> None:
    """A change the user makes after a push arrived is newer intent: it follows up."""
    server = HeldServer()
    a = TextCubit(server)
    done = a.write("a1")
    first = await server.request(1)
    a.push("b", (3, 1, OTHER_DEVICE))
    a.write("a2")
    first.answer(2)
    follow_up = await server.request(2)
    assert follow_up.value == "a2"
    follow_up.answer(4)
    await asyncio.wait_for(done, TIMEOUT)
    assert a.state.text == "a2"


async def test_a_newer_push_while_one_is_held_replaces_it() -> None:
    """Only the newest held push can win: an older held one is dropped on arrival."""
    server = HeldServer()
    a = TextCubit(server)
    done = a.write("a1")
    first = await server.request(1)
    a.push("b", (3, 1, OTHER_DEVICE))
    assert a.push("c", (4, 1, OTHER_DEVICE + 1)) is PushVerdict.HOLD
    first.answer(2)
    await asyncio.wait_for(done, TIMEOUT)
    assert a.state == TextState(text="c", revision=4)


async def test_the_echo_of_our_write_makes_a_held_older_push_obsolete() -> None:
    """Our own write's echo above a held push means ours overwrote it on the server."""
    server = HeldServer()
    a = TextCubit(server)
    done = a.write("a1")
    first = await server.request(1)
    a.push("b", (1, 1, OTHER_DEVICE))
    assert a.push("a1", (2, 1, a.device.device_id)) is PushVerdict.APPLY
    first.answer(2)
    await asyncio.wait_for(done, TIMEOUT)
    assert a.state.text == "a1"


async def test_a_failed_request_drops_the_held_push_and_leaves_recovery_to_on_finish() -> None:
    """Our write's fate is unknown after a failure: as for any failed write, the
    user's value stays until on_finish reloads (or the intent is resent)."""
    server = HeldServer()
    a = TextCubit(server)
    done = a.write("a1")
    first = await server.request(1)
    a.push("b", (6, 1, OTHER_DEVICE))
    first.fail(ConnectionError("lost"))
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(done, TIMEOUT)
    assert a.state.text == "a1"
    assert not a.device.in_flight(KEY)
    assert a.device.server_revision(KEY) == 6
    assert a.push("b", (6, 1, OTHER_DEVICE)) is PushVerdict.STALE  # known, not news
    a.push("c", (7, 1, OTHER_DEVICE))  # nothing in flight now: applied at once
    assert a.state == TextState(text="c", revision=7)


async def test_the_device_remembers_the_latest_local_value() -> None:
    """The follow-up's value comes from the device's book, not from state."""
    server = HeldServer()
    a = TextCubit(server)
    done = a.write("a1")
    first = await server.request(1)
    a.write("a2")
    assert a.device.local_value(KEY) == "a2"
    a.emit(replace(a.state, text="something else"))  # state overwritten by other code
    first.answer(1)
    follow_up = await server.request(2)
    assert follow_up.value == "a2"
    follow_up.answer(2)
    await asyncio.wait_for(done, TIMEOUT)


async def test_a_new_history_forgets_a_held_push() -> None:
    """After an epoch change a held push belongs to the replaced history: never shown."""
    server = HeldServer()
    a = TextCubit(server)
    done = a.write("a1")
    first = await server.request(1)
    a.push("b", (9, 1, OTHER_DEVICE))
    a.device.forget_server_revisions()
    first.answer(1)
    await asyncio.wait_for(done, TIMEOUT)
    assert a.state.text == "a1"


# -- the rules as plain values ------------------------------------------------------


@pytest.mark.parametrize(
    ("push", "in_flight", "verdict"),
    [
        (PushMetadata(5, 1, OTHER_DEVICE), False, PushVerdict.STALE),
        (PushMetadata(6, 1, OTHER_DEVICE), False, PushVerdict.APPLY),
        (PushMetadata(6, 1, OTHER_DEVICE), True, PushVerdict.HOLD),
        (PushMetadata(6, 2, 1), True, PushVerdict.SELF_ECHO),
        (PushMetadata(6, 3, 1), True, PushVerdict.APPLY),
        (PushMetadata(6, 3, 1), False, PushVerdict.APPLY),
    ],
)
def test_judge_push_holds_only_other_devices_writes_while_in_flight(
    push: PushMetadata, in_flight: bool, verdict: PushVerdict
) -> None:
    """Stale, self-echo, hold or apply, from revisions, device ids and in-flight alone."""
    judged = judge_push(
        push, device_id=1, local_revision=3, known_server_revision=5, in_flight=in_flight
    )
    assert judged is verdict


@pytest.mark.parametrize(
    ("held", "local", "changed", "known", "verdict"),
    [
        (3, 2, True, 3, ResponseVerdict.PUSH_WINS),  # held push above the response
        (1, 2, True, 2, ResponseVerdict.FOLLOW_UP),  # held push below: ours overwrote it
        (1, 1, False, 2, ResponseVerdict.STABLE),  # below, and nothing changed locally
        (None, 2, True, 2, ResponseVerdict.FOLLOW_UP),  # a plain coalesced change
        (None, 2, False, 2, ResponseVerdict.STABLE),  # changed and back
        (None, 2, False, 3, ResponseVerdict.FOLLOW_UP),  # changed back over a newer write
        (None, 1, True, 3, ResponseVerdict.STABLE),  # nothing since the request left
    ],
)
def test_judge_response_lets_a_held_push_win_only_above_our_revision(
    held: int | None, local: int, changed: bool, known: int, verdict: ResponseVerdict
) -> None:
    """The response's decision from plain values (our write is at revision 2, sent at
    local revision 1)."""
    judged = judge_response(
        held_push_revision=held,
        response_revision=2,
        local_revision=local,
        sent_local_revision=1,
        value_changed=changed,
        known_server_revision=known,
    )
    assert judged is verdict
