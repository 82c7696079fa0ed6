"""A client built only from PROTOCOL.md's client algorithm converges with app.link devices.

They all live in the space ``family``, next to a device of the default space
that writes the same key names: the document's client counts its space's
revisions by ``prev`` and never sees the other space.
"""

from __future__ import annotations

import ast
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from app.link import DeviceSession, like_key
from syncserver import SyncServer, start_server
from syncserver.protocol import DEFAULT_SPACE
from tests.link.helpers import CATALOGUE, FAST
from tests.timeouts import TIMEOUT

from .doc_client import DocDevice

KEYS = [like_key(item.id) for item in CATALOGUE]
SPACE = "family"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[SyncServer]:
    running = await start_server(port=0, db_path=tmp_path / "server.sqlite3", allow_chaos=True)
    try:
        yield running
    finally:
        await running.close()


async def _open(server: SyncServer, tmp_path: Path, name: str, space: str) -> DeviceSession:
    return await DeviceSession.open(
        name,
        [server.url],
        data_dir=tmp_path / "devices",
        catalogue=CATALOGUE,
        backoff=FAST,
        space=space,
    )


@pytest.fixture
async def neighbour(server: SyncServer, tmp_path: Path) -> AsyncIterator[DeviceSession]:
    """An app.link device of the default space, tapping the same key names."""
    session = await _open(server, tmp_path, "N", DEFAULT_SPACE)
    try:
        yield session
    finally:
        await session.close()


@pytest.fixture
async def devices(
    server: SyncServer, tmp_path: Path, neighbour: DeviceSession
) -> AsyncIterator[tuple[DocDevice, DeviceSession, DeviceSession]]:
    """The document's client and two app.link devices in one space, on one server."""
    doc = DocDevice(server.url, space=SPACE)
    doc.start()
    sessions = [await _open(server, tmp_path, name, SPACE) for name in ("A", "B")]
    try:
        await until(
            lambda: doc.online and all(s.status.state == "online" for s in sessions),
            server,
            doc,
            *sessions,
        )
        # The neighbour writes every key of its space: nothing of it may reach family.
        for item in CATALOGUE:
            neighbour.toggle_like(item.id)
        yield doc, sessions[0], sessions[1]
    finally:
        await doc.stop()
        for session in sessions:
            await session.close()


async def until(
    condition: Callable[[], bool], server: SyncServer, doc: DocDevice, *sessions: DeviceSession
) -> None:
    """Wait until ``condition()`` holds, re-checking whenever the server or a device
    changes; fail after TIMEOUT."""
    changed = asyncio.Event()

    def poke(*_: object) -> None:
        changed.set()

    unsubscribes = [server.observe(poke)]
    for session in sessions:
        unsubscribes += [session.cubit.subscribe(poke), session.subscribe_status(poke)]
    doc.listeners.append(poke)
    try:
        async with asyncio.timeout(TIMEOUT):
            while not condition():
                await changed.wait()
                changed.clear()
    finally:
        doc.listeners.remove(poke)
        for unsubscribe in unsubscribes:
            unsubscribe()


def server_values(server: SyncServer, space: str = SPACE) -> dict[str, bool]:
    stored = {e.key: json.loads(bytes(e.value)) for e in server.state().values if e.space == space}
    return {key: bool(stored.get(key)) for key in KEYS}


def space_head(server: SyncServer, space: str = SPACE) -> int:
    """The newest revision written in ``space`` (from the observer feed: few keys here)."""
    return max((e.server_revision for e in server.state().values if e.space == space), default=0)


def shown(doc: DocDevice, *sessions: DeviceSession) -> list[dict[str, bool]]:
    views = [{key: bool(doc.values.get(key)) for key in KEYS}]
    for session in sessions:
        views.append({like_key(item.id): item.liked for item in session.state.items})
    return views


async def converged(server: SyncServer, doc: DocDevice, *sessions: DeviceSession) -> None:
    """Everyone settled and showing what the server holds."""

    def done() -> bool:
        settled = doc.settled and all(
            s.status.state == "online" and not s.state.intents for s in sessions
        )
        truth = server_values(server)
        return settled and all(view == truth for view in shown(doc, *sessions))

    try:
        await until(done, server, doc, *sessions)
    except TimeoutError:
        raise AssertionError(
            f"no convergence: server {server_values(server)}, devices {shown(doc, *sessions)}, "
            f"doc settled {doc.settled} intents {doc.intents}"
        ) from None


async def test_a_document_client_converges_through_bursts(server, devices):
    """Bursts of taps on each device, one key contested: all end on the server's values,
    and each uncontested burst's last tap is what the server holds."""
    doc, a, b = devices
    tea, jam, fig = KEYS
    for tap in range(10):
        doc.change(fig, tap % 2 == 0)  # ends on False after ten taps
        doc.change(tea, tap % 3 == 0)
        if tap < 7:
            a.toggle_like(CATALOGUE[1].id)  # jam ends liked
        if tap < 5:
            b.toggle_like(CATALOGUE[0].id)
    await converged(server, doc, a, b)
    assert doc.sets_sent < 20  # the bursts were coalesced
    assert server_values(server)[fig] is False
    assert server_values(server)[jam] is True


async def test_a_document_client_converges_through_pushes_during_requests(server, devices):
    """Writes and acks held back, pushes reordered: pushes (its own echoes included) land
    while requests fly; the document's client never shows a value its user already
    replaced, and finds every gap the reordering makes."""
    doc, a, b = devices
    tea, _, fig = KEYS
    shown_fig: list[bool] = []
    final = False

    def record() -> None:
        shown_fig.append(bool(doc.values.get(fig)))

    server.chaos.set_write_delay(0.15)
    server.chaos.set_ack_delay(0.1)
    server.chaos.set_push_delay(0.0, jitter=0.05)
    try:
        for round_ in range(3):
            final = round_ % 2 == 1
            doc.change(fig, not final)
            doc.change(tea, round_ % 2 == 0)
            await until(lambda: server.requests_in_flight > 0, server, doc)
            doc.change(fig, final)  # a newer intent while the first is in flight
            a.toggle_like(CATALOGUE[0].id)
            b.toggle_like(CATALOGUE[1].id)
        doc.listeners.append(record)
        await converged(server, doc, a, b)
        await until(lambda: doc.newest_seen >= space_head(server), server, doc)
    finally:
        server.chaos.reset()
    assert server_values(server)[fig] is final
    assert set(shown_fig) == {final}, "the document's client flickered back to an old value"


async def test_a_document_client_converges_after_a_reconnect(server, devices):
    """Offline while others write and while its user taps: it catches up and sends its intent."""
    doc, a, b = devices
    doc.change(KEYS[0], True)
    await converged(server, doc, a, b)
    await doc.stop()
    a.toggle_like(CATALOGUE[1].id)
    b.toggle_like(CATALOGUE[0].id)
    doc.change(KEYS[2], True)  # while offline: an intent
    await until(lambda: all(not s.state.intents for s in (a, b)), server, doc, a, b)
    doc.start()
    await converged(server, doc, a, b)
    assert doc.newest_seen >= space_head(server)
    assert server_values(server)[KEYS[2]] is True


def test_the_document_client_imports_only_websockets_and_the_standard_library():
    """doc_client.py uses neither app.* nor syncserver.* (nor msgspec): only the document."""
    source = (Path(__file__).parent / "doc_client.py").read_text()
    allowed = {"websockets"} | set(sys.stdlib_module_names)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert name.split(".")[0] in allowed, name


async def test_a_document_client_converges_after_the_server_loses_its_history(
    server, devices, tmp_path
):
    """The server comes back on a new database (new epoch): every device forgets the old
    history, keys only it knew read as never written, and offline intents are sent again."""
    doc, a, b = devices
    tea, _, fig = KEYS
    doc.change(tea, True)
    await converged(server, doc, a, b)
    old_epoch = doc.epoch
    await server.close()
    await until(lambda: not doc.online, server, doc)
    doc.change(fig, True)  # while the server is down
    reborn = await start_server(
        port=server.port, db_path=tmp_path / "new.sqlite3", allow_chaos=True
    )
    try:
        await converged(reborn, doc, a, b)
        assert doc.epoch != old_epoch
        assert server_values(reborn) == {**dict.fromkeys(KEYS, False), fig: True}
    finally:
        await reborn.close()


async def test_a_push_that_merely_arrives_first_never_drops_the_users_last_change(server, devices):
    """Another device's write commits just before ours while the user changes their mind:
    its push is held, our write is newer, and the user's last choice follows up."""
    doc, a, b = devices
    tea = KEYS[0]
    server.chaos.set_write_delay(0.15)
    try:
        b.toggle_like(CATALOGUE[0].id)  # tea: True, committed first
        await until(lambda: server.requests_in_flight > 0, server, doc)
        doc.change(tea, True)  # sent, committed after B's
        doc.change(tea, False)  # the user's last choice, while the set is in flight
        await converged(server, doc, a, b)
    finally:
        server.chaos.reset()
    assert server_values(server)[tea] is False


async def test_a_refused_set_is_never_resent_and_its_key_is_reloaded(server, devices):
    """A set refused with injected_failure (twice, the reload too): the document's client
    drops the intent and ends showing the server's value, as the devices do."""
    doc, a, b = devices
    tea = KEYS[0]
    a.toggle_like(CATALOGUE[0].id)  # the server holds True
    await converged(server, doc, a, b)
    sets_before, revision_before = doc.sets_sent, server.revision
    server.chaos.fail_next(2)
    doc.change(tea, False)
    await converged(server, doc, a, b)
    assert doc.values[tea] is True
    assert doc.known[tea] == revision_before
    assert doc.sets_sent == sets_before + 1
    assert server.revision == revision_before


async def test_a_document_client_counts_its_space_by_prev_and_never_sees_another(
    server, devices, neighbour
):
    """Writes of the default space between its own space's skip revisions: the
    document's client counts on by prev without a resync, and shows none of them."""
    doc, a, b = devices
    tea = KEYS[0]
    for round_ in range(3):
        doc.change(tea, round_ % 2 == 0)
        # Sequential on purpose: each round's default write commits between family ones.
        await neighbour.toggle_like(CATALOGUE[1].id)
        await a.toggle_like(CATALOGUE[2].id)
    await converged(server, doc, a, b)
    await until(lambda: doc.newest_seen == space_head(server), server, doc)
    assert doc.gaps == 0
    assert space_head(server, DEFAULT_SPACE) > 0
    assert {key: bool(doc.values.get(key)) for key in KEYS} == server_values(server)
    family = {e.key: e.server_revision for e in server.state().values if e.space == SPACE}
    assert {key: doc.known[key] for key in family} == family  # revisions of its space only


async def test_a_document_client_finds_a_push_missed_in_its_space_by_prev(server, devices):
    """A write of its space whose push never came is revealed by the next push's prev:
    the document's client resyncs its space and shows it."""
    doc, a, b = devices
    tea, jam, _ = KEYS
    await converged(server, doc, a, b)
    server.chaos.set_push_enabled(False)
    try:
        await a.toggle_like(CATALOGUE[0].id)  # acked; its push reaches nobody
    finally:
        server.chaos.reset()
    assert not doc.values.get(tea)
    await a.toggle_like(CATALOGUE[1].id)  # its prev is the lost write
    await converged(server, doc, a, b)
    assert doc.gaps >= 1
    assert doc.values[tea] is True
    assert doc.values[jam] is True
