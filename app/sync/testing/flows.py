"""Flows: how a simulated device's cubit maps taps, pushes and keys.

The simulator drives every device through a :class:`Flow`. The default,
:class:`LikeToggle`, is the reference example: one like per key, toggled by a
tap, synced with ``optimistic_sync_with_push`` and fed pushes through
``server_push``. To check your own flow, write a class with the same five
methods around your own cubit and pass it as ``Simulation(flow=...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from app.sync import Cubit, DeviceContext, PushMetadata

from .link import Link

__all__ = ["Flow", "LikeToggle", "LikesState"]


class Flow(Protocol):
    """What the simulator needs to know about the cubit under test.

    ``repr(flow)`` should be Python that rebuilds it: it goes into repro scripts.
    """

    def key(self, index: int) -> Hashable:
        """The key that ``Tap(device, key=index)`` acts on."""
        ...

    def initial_value(self, key: Hashable) -> Any:
        """The value of a key nobody has written yet (device and server agree on it)."""
        ...

    def create(self, device: DeviceContext, link: Link) -> Cubit[Any]:
        """A fresh cubit for one device, syncing through ``link``."""
        ...

    def tap(self, cubit: Cubit[Any], key: Hashable) -> None:
        """The user acts on ``key``: start an ``optimistic_sync_with_push``."""
        ...

    def push(self, cubit: Cubit[Any], key: Hashable, value: Any, metadata: PushMetadata) -> None:
        """A server push (or a catch-up snapshot entry) arrived: call ``server_push``."""
        ...

    def read(self, cubit: Cubit[Any], key: Hashable) -> tuple[Any, int]:
        """The value and server revision the cubit's state holds for ``key``."""
        ...


@dataclass(frozen=True, slots=True)
class LikesState:
    """Each key's like and the server revision it came with."""

    liked: Mapping[Hashable, bool] = field(default_factory=dict)
    revisions: Mapping[Hashable, int] = field(default_factory=dict)

    def with_like(self, key: Hashable, liked: bool, revision: int | None = None) -> LikesState:
        revisions = self.revisions
        if revision is not None:
            revisions = {**revisions, key: revision}
        return replace(self, liked={**self.liked, key: liked}, revisions=revisions)


class LikesCubit(Cubit[LikesState]):
    def __init__(self, device: DeviceContext, link: Link) -> None:
        super().__init__(LikesState(), device=device)
        self.link = link


class LikeToggle:
    """One like per key: a tap toggles it; a failed sync reloads it from the server."""

    def __repr__(self) -> str:
        return "LikeToggle()"

    def key(self, index: int) -> Hashable:
        return f"item-{index}"

    def initial_value(self, key: Hashable) -> bool:
        return False

    def create(self, device: DeviceContext, link: Link) -> LikesCubit:
        return LikesCubit(device, link)

    def tap(self, cubit: Cubit[Any], key: Hashable) -> None:
        assert isinstance(cubit, LikesCubit)
        link = cubit.link

        async def send(
            liked: bool, local_revision: int, device_id: int, inform: Callable[[int], None]
        ) -> Any:
            ack = await link.write(key, liked, local_revision)
            inform(ack.server_revision)
            return ack

        cubit.optimistic_sync_with_push(
            key=key,
            value_to_apply=lambda: not cubit.state.liked.get(key, False),
            apply_optimistic_value_to_state=lambda state, liked: state.with_like(key, liked),
            get_value_from_state=lambda state: state.liked.get(key, False),
            get_server_revision_from_state=lambda state: state.revisions.get(key, -1),
            send_value_to_server=send,
            apply_server_response_to_state=lambda state, ack: state.with_like(
                key, ack.value, ack.server_revision
            ),
            on_finish=self._reload_on_error(cubit, key),
        )

    @staticmethod
    def _reload_on_error(cubit: LikesCubit, key: Hashable) -> Callable[[BaseException | None], Any]:
        async def on_finish(error: BaseException | None) -> LikesState | None:
            if error is None:
                return None
            tapped = cubit.device.local_revision(key)
            fresh = await cubit.link.read(key)
            state = cubit.state
            if cubit.device.local_revision(key) != tapped:
                return None  # the user acted again meanwhile: that sync decides the value
            if fresh.server_revision < state.revisions.get(key, -1):
                return None  # a newer push already landed
            return state.with_like(key, fresh.value, fresh.server_revision)

        return on_finish

    def push(self, cubit: Cubit[Any], key: Hashable, value: Any, metadata: PushMetadata) -> None:
        cubit.server_push(
            key=key,
            push_metadata=metadata,
            get_server_revision_from_state=lambda state: state.revisions.get(key, -1),
            apply_server_push_to_state=lambda state, revision: state.with_like(
                key, value, revision
            ),
        )

    def read(self, cubit: Cubit[Any], key: Hashable) -> tuple[Any, int]:
        state = cubit.state
        return state.liked.get(key, False), state.revisions.get(key, 0)
