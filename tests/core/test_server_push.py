"""Pushes: stale ones ignored, echoes of our own older requests recognised, news applied."""

from __future__ import annotations

import asyncio

import pytest

from app.sync import Cubit, DeviceContext, PushMetadata, PushVerdict
from tests.core.helpers import KEY, HeldServer, LikeCubit
from tests.timeouts import TIMEOUT

OTHER_DEVICE = 7


def test_push_from_another_device_is_applied_and_recorded() -> None:
    """A newer push changes the state and becomes the known revision."""
    cubit = LikeCubit(HeldServer())
    assert cubit.push(True, PushMetadata(5, 1, OTHER_DEVICE)) is PushVerdict.APPLY
    assert cubit.state.liked is True
    assert cubit.device.server_revision(KEY) == 5
    assert cubit.device.latest_change_from_push(KEY)


def test_push_with_an_older_revision_is_ignored() -> None:
    """Out-of-order delivery: a push below the known revision changes nothing."""
    cubit = LikeCubit(HeldServer())
    cubit.push(True, (9, 1, OTHER_DEVICE))
    assert cubit.push(False, (8, 1, OTHER_DEVICE)) is PushVerdict.STALE
    assert cubit.state.liked is True
    assert cubit.device.server_revision(KEY) == 9


def test_push_with_the_same_revision_is_ignored() -> None:
    """A duplicated push is not news."""
    cubit = LikeCubit(HeldServer())
    cubit.push(True, (9, 1, OTHER_DEVICE))
    assert cubit.push(False, (9, 1, OTHER_DEVICE)) is PushVerdict.STALE
    assert cubit.state.liked is True


def test_plain_tuple_works_as_push_metadata() -> None:
    """push_metadata may be a plain (server_revision, local_revision, device_id) tuple."""
    cubit = LikeCubit(HeldServer())
    assert cubit.push(True, (1, 0, OTHER_DEVICE)) is PushVerdict.APPLY


def test_push_returning_none_still_records_its_revision() -> None:
    """apply_server_push_to_state may return None; the revision is recorded anyway."""
    cubit = LikeCubit(HeldServer())
    verdict = cubit.server_push(
        key=KEY,
        push_metadata=(4, 0, OTHER_DEVICE),
        get_server_revision_from_state=lambda state: state.revision,
        apply_server_push_to_state=lambda state, revision: None,
    )
    assert verdict is PushVerdict.APPLY
    assert cubit.device.server_revision(KEY) == 4
    assert cubit.push(True, (3, 0, OTHER_DEVICE)) is PushVerdict.STALE


def test_pushes_never_bump_local_revisions() -> None:
    """Only local changes move the local revision."""
    cubit = LikeCubit(HeldServer())
    for revision in range(1, 6):
        cubit.push(revision % 2 == 0, (revision, 0, OTHER_DEVICE))
    assert cubit.device.local_revision(KEY) == 0


def test_known_revision_is_seeded_from_state_so_old_pushes_stay_out_after_restart() -> None:
    """A revision persisted in state guards a fresh device against stale pushes."""
    cubit = LikeCubit(HeldServer())
    cubit.emit(cubit.state.__class__(liked=True, revision=20))
    assert cubit.push(False, (15, 3, OTHER_DEVICE)) is PushVerdict.STALE
    assert cubit.state.liked is True
    assert cubit.device.server_revision(KEY) == 20


async def test_echo_of_our_older_request_records_revision_without_applying() -> None:
    """Our own push at an older local revision is an echo: no flicker back."""
    server = HeldServer()
    cubit = LikeCubit(server)
    done = cubit.set_liked(True)
    first = await server.request(1)
    cubit.set_liked(False)  # local revision 2, request 1 carried local revision 1
    verdict = cubit.push(True, (10, 1, cubit.device.device_id))
    assert verdict is PushVerdict.SELF_ECHO
    assert cubit.state.liked is False
    assert cubit.device.server_revision(KEY) == 10
    first.answer(10)
    follow_up = await server.request(2)  # the echo did not cancel the follow-up
    assert follow_up.value is False
    follow_up.answer(11)
    await asyncio.wait_for(done, TIMEOUT)
    assert cubit.state.liked is False


async def test_echo_of_our_newest_request_is_applied() -> None:
    """Our own push at the current local revision is simply the server's truth."""
    server = HeldServer()
    cubit = LikeCubit(server)
    done = cubit.set_liked(True)
    first = await server.request(1)
    assert cubit.push(True, (3, 1, cubit.device.device_id)) is PushVerdict.APPLY
    first.answer(3)
    await asyncio.wait_for(done, TIMEOUT)
    assert len(server.requests) == 1
    assert cubit.state == cubit.state.__class__(liked=True, revision=3)


async def test_push_from_another_device_cancels_the_pending_follow_up() -> None:
    """A newer server write supersedes local intent that was not sent yet."""
    server = HeldServer()
    cubit = LikeCubit(server)
    done = cubit.set_liked(True)
    first = await server.request(1)
    cubit.set_liked(False)  # would need a follow-up...
    cubit.push(True, (12, 4, OTHER_DEVICE))  # ...but another device wrote later
    first.answer(11)
    await asyncio.wait_for(done, TIMEOUT)
    assert len(server.requests) == 1
    assert cubit.state.liked is True
    assert cubit.device.server_revision(KEY) == 12


async def test_stale_response_never_overwrites_a_newer_push() -> None:
    """A response older than an applied push is ignored."""
    server = HeldServer()
    cubit = LikeCubit(server)
    done = cubit.set_liked(True)
    first = await server.request(1)
    cubit.push(False, (8, 2, OTHER_DEVICE))
    first.answer(7)  # our write landed before the other device's
    await asyncio.wait_for(done, TIMEOUT)
    assert cubit.state.liked is False
    assert "StaleResponseIgnored" in cubit.kinds()


async def test_new_tap_after_a_push_is_local_intent_again() -> None:
    """A tap after a push makes the latest change local, so a follow-up is sent."""
    server = HeldServer()
    cubit = LikeCubit(server)
    done = cubit.set_liked(True)
    first = await server.request(1)
    cubit.push(False, (8, 2, OTHER_DEVICE))
    cubit.set_liked(True)
    first.answer(7)
    follow_up = await server.request(2)
    assert (follow_up.value, follow_up.local_revision) == (True, 2)
    follow_up.answer(9)
    await asyncio.wait_for(done, TIMEOUT)
    assert cubit.state.liked is True


def test_two_devices_converge_on_the_last_write() -> None:
    """Pushes in any order leave two devices on the same value and revision."""
    one = LikeCubit(HeldServer(), DeviceContext(device_id=1))
    two = LikeCubit(HeldServer(), DeviceContext(device_id=2))
    pushes = [(True, (6, 1, 1)), (False, (7, 1, 2))]
    for liked, metadata in pushes:
        one.push(liked, metadata)
    for liked, metadata in reversed(pushes):
        two.push(liked, metadata)
    assert one.state == two.state
    assert one.state.liked is False


def test_a_push_with_a_non_integer_revision_is_refused_and_changes_nothing() -> None:
    """A str or bool where a revision belongs raises TypeError before anything changes."""
    cubit = LikeCubit(HeldServer())
    for metadata in (("5", 0, OTHER_DEVICE), (5, True, OTHER_DEVICE), (5, 0, None)):
        with pytest.raises(TypeError, match="must be an int"):
            cubit.push(True, metadata)  # type: ignore[arg-type]
    assert cubit.state.liked is False
    assert cubit.device.server_revision(KEY) == -1
    assert cubit.events == []


def test_int_subclass_revisions_work_like_ints() -> None:
    """Revisions that are int subclasses (not bool) take the checked path and apply."""

    class Revision(int):
        pass

    cubit = LikeCubit(HeldServer())
    verdict = cubit.push(True, (Revision(3), Revision(0), Revision(OTHER_DEVICE)))
    assert verdict is PushVerdict.APPLY
    assert cubit.device.server_revision(KEY) == 3


def test_push_verdicts_are_the_same_with_or_without_listeners() -> None:
    """Events are skipped when nobody listens; the decisions and bookkeeping are not."""
    device = DeviceContext(1)
    quiet = Cubit(False, device=device)

    def push(metadata: tuple[int, int, int]) -> PushVerdict:
        return quiet.server_push(
            key=KEY,
            push_metadata=metadata,
            get_server_revision_from_state=lambda _state: -1,
            apply_server_push_to_state=lambda _state, _revision: True,
        )

    assert not device.observed
    device.book(KEY).local_revision = 2
    assert push((5, 1, 1)) is PushVerdict.SELF_ECHO
    assert push((5, 2, OTHER_DEVICE)) is PushVerdict.STALE
    assert quiet.state is False
    assert push((6, 2, OTHER_DEVICE)) is PushVerdict.APPLY
    assert quiet.state is True
    assert device.server_revision(KEY) == 6
    heard: list[str] = []
    device.subscribe(lambda event: heard.append(type(event).__name__))
    push((6, 2, OTHER_DEVICE))
    push((7, 1, 1))
    push((8, 2, 1))
    assert heard == ["PushIgnoredStale", "SelfEchoAcknowledged", "PushApplied"]
