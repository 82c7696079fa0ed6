"""A held server and a one-key likes cubit, to drive the core with plain values."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from app.sync import Cubit, DeviceContext, PushMetadata, PushVerdict, SyncCompletion, SyncEvent
from tests.timeouts import TIMEOUT

KEY = ("like", "item-1")


@dataclass(frozen=True)
class LikeState:
    liked: bool = False
    revision: int = -1
    reloads: int = 0


@dataclass
class HeldRequest:
    """One request the test answers when the scenario says so."""

    value: Any
    local_revision: int
    device_id: int
    inform: Callable[[int], None]
    reply: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def answer(self, server_revision: int, response: Any = ..., *, inform: bool = True) -> None:
        if inform:
            self.inform(server_revision)
        self.reply.set_result(self.value if response is ... else response)

    def fail(self, error: BaseException) -> None:
        self.reply.set_exception(error)


class HeldServer:
    """Stands in for the network: each request waits until the test answers it."""

    def __init__(self) -> None:
        self.requests: list[HeldRequest] = []
        self._arrived = asyncio.Condition()

    async def send(
        self, value: Any, local_revision: int, device_id: int, inform: Callable[[int], None]
    ) -> Any:
        request = HeldRequest(value, local_revision, device_id, inform)
        self.requests.append(request)
        async with self._arrived:
            self._arrived.notify_all()
        return await request.reply

    async def request(self, number: int) -> HeldRequest:
        """Wait for the request with this 1-based number to arrive."""
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.requests) >= number), TIMEOUT
            )
        return self.requests[number - 1]


class LikeCubit(Cubit[LikeState]):
    """A single like toggle synced through ``optimistic_sync_with_push``."""

    def __init__(
        self, server: HeldServer, device: DeviceContext | None = None, **options: Any
    ) -> None:
        super().__init__(LikeState(), device=device)
        self.server = server
        self.options = options
        self.events: list[SyncEvent] = []
        self.device.subscribe(self.events.append)

    def set_liked(self, liked: bool, **overrides: Any) -> SyncCompletion:
        options = {**self.options, **overrides}
        return self.optimistic_sync_with_push(
            key=KEY,
            value_to_apply=lambda: liked,
            apply_optimistic_value_to_state=lambda state, value: replace(state, liked=value),
            get_value_from_state=lambda state: state.liked,
            get_server_revision_from_state=lambda state: state.revision,
            send_value_to_server=options.pop("send", self.server.send),
            apply_server_response_to_state=lambda state, response: replace(state, liked=response),
            **options,
        )

    def toggle(self, **overrides: Any) -> SyncCompletion:
        return self.set_liked(not self.state.liked, **overrides)

    def push(self, liked: bool, metadata: PushMetadata | tuple[int, int, int]) -> PushVerdict:
        return self.server_push(
            key=KEY,
            push_metadata=metadata,
            get_server_revision_from_state=lambda state: state.revision,
            apply_server_push_to_state=lambda state, revision: replace(
                state, liked=liked, revision=revision
            ),
        )

    def kinds(self) -> list[str]:
        return [type(event).__name__ for event in self.events]


async def settle(completion: SyncCompletion) -> None:
    """Wait for a sync loop to end, whatever its outcome."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(completion, TIMEOUT)
