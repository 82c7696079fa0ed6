"""optimistic_sync: the variant without push, where a changed value decides the follow-up."""

from __future__ import annotations

import asyncio
from typing import Any

from app.sync import Cubit, SyncCompletion
from tests.timeouts import TIMEOUT


class Counter(Cubit[int]):
    def __init__(self) -> None:
        super().__init__(0)
        self.sent: list[int] = []
        self.replies: list[asyncio.Future[Any]] = []
        self.arrived = asyncio.Event()

    async def send(self, value: int) -> Any:
        self.sent.append(value)
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.replies.append(reply)
        self.arrived.set()
        return await reply

    def set_to(self, value: int) -> SyncCompletion:
        return self.optimistic_sync(
            key="counter",
            value_to_apply=lambda: value,
            apply_optimistic_value_to_state=lambda state, new: new,
            get_value_from_state=lambda state: state,
            send_value_to_server=self.send,
            apply_server_response_to_state=lambda state, response: response,
        )

    async def next_reply(self) -> asyncio.Future[Any]:
        await asyncio.wait_for(self.arrived.wait(), TIMEOUT)
        self.arrived.clear()
        return self.replies[-1]


async def test_changed_value_sends_one_follow_up_with_the_latest() -> None:
    """Values set during a request coalesce into one follow-up."""
    counter = Counter()
    done = counter.set_to(1)
    first = await counter.next_reply()
    counter.set_to(2)
    counter.set_to(3)
    first.set_result(1)
    (await counter.next_reply()).set_result(3)
    await asyncio.wait_for(done, TIMEOUT)
    assert counter.sent == [1, 3]
    assert counter.state == 3


async def test_value_back_to_the_one_sent_needs_no_follow_up() -> None:
    """Same value at the response: the server already has it."""
    counter = Counter()
    done = counter.set_to(1)
    first = await counter.next_reply()
    counter.set_to(2)
    counter.set_to(1)
    first.set_result(1)
    await asyncio.wait_for(done, TIMEOUT)
    assert counter.sent == [1]
