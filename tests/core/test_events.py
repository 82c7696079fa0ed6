"""Every decision is published as a typed event with key, revisions and device id."""

from __future__ import annotations

import asyncio

from app.sync import (
    DeviceContext,
    FollowUpScheduled,
    OptimisticApplied,
    PushApplied,
    RequestSent,
    SelfEchoAcknowledged,
    SyncEvent,
)
from tests.core.helpers import KEY, HeldServer, LikeCubit
from tests.timeouts import TIMEOUT


async def test_events_narrate_a_coalesced_burst_in_order() -> None:
    """Apply, send, coalesce, echo, follow-up, ack and finish appear as they happen."""
    server = HeldServer()
    cubit = LikeCubit(server, DeviceContext(device_id=5))
    done = cubit.set_liked(True)
    first = await server.request(1)
    cubit.set_liked(False)
    cubit.push(True, (3, 1, 5))
    first.answer(3)
    (await server.request(2)).answer(4)
    await asyncio.wait_for(done, TIMEOUT)
    assert cubit.kinds() == [
        "OptimisticApplied",
        "RequestSent",
        "OptimisticApplied",
        "SelfEchoAcknowledged",
        "FollowUpScheduled",
        "RequestSent",
        "ResponseApplied",
        "SyncFinished",
    ]
    assert all(event.key == KEY and event.device_id == 5 for event in cubit.events)
    coalesced = cubit.events[2]
    assert isinstance(coalesced, OptimisticApplied)
    assert coalesced.coalesced
    echo = cubit.events[3]
    assert isinstance(echo, SelfEchoAcknowledged)
    assert echo.push_local_revision == 1
    follow_up = cubit.events[4]
    assert isinstance(follow_up, FollowUpScheduled)
    assert follow_up.sent_local_revision == 1
    resent = cubit.events[5]
    assert isinstance(resent, RequestSent)
    assert resent.follow_up
    assert resent.local_revision == 2


def test_push_events_name_the_device_that_wrote() -> None:
    """PushApplied and PushIgnoredStale carry the writer's device id."""
    cubit = LikeCubit(HeldServer())
    cubit.push(True, (4, 2, 77))
    cubit.push(False, (3, 1, 78))
    applied, ignored = cubit.events
    assert isinstance(applied, PushApplied)
    assert applied.from_device_id == 77
    assert type(ignored).__name__ == "PushIgnoredStale"
    assert ignored.server_revision == 4


def test_unsubscribed_listener_hears_nothing_more() -> None:
    """subscribe returns a function that stops the events."""
    cubit = LikeCubit(HeldServer())
    heard: list[SyncEvent] = []
    unsubscribe = cubit.device.subscribe(heard.append)
    cubit.push(True, (1, 0, 9))
    unsubscribe()
    cubit.push(False, (2, 0, 9))
    assert len(heard) == 1
