"""The app's own link against token, credential and TLS servers (real processes)."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.link import DeviceSession, DeviceStore
from syncserver.access import resolve_token
from tests.timeouts import TIMEOUT

from .conftest import Servers


async def _online(session: DeviceSession) -> None:
    await asyncio.wait_for(session.client.wait_online(), TIMEOUT)


async def _closed_code(
    url: str, *frames: str | bytes, ssl_context: ssl.SSLContext | None = None
) -> int:
    """Send ``frames`` on a new connection; the close code the server sent."""
    async with connect(url, ssl=ssl_context) as ws:
        for frame in frames:
            await ws.send(frame)
        with pytest.raises(ConnectionClosed) as closed:
            await _read_until_closed(ws)
    assert closed.value.rcvd is not None, "the server did not close the connection"
    return closed.value.rcvd.code


async def _read_until_closed(ws: ClientConnection) -> None:
    while True:
        await asyncio.wait_for(ws.recv(), TIMEOUT)


async def test_the_link_comes_online_against_a_token_server_with_a_token_file(
    servers: Servers, token_file: Path, tmp_path: Path
):
    """--token-file on both sides: the app's device comes online and its write is acked."""
    server = await servers.start("--token-file", str(token_file))
    token = resolve_token(None, token_file, environ={})
    session = await DeviceSession.open("phone", [server.url], data_dir=tmp_path, token=token)
    try:
        await _online(session)
        item = session.state.items[0].id
        await asyncio.wait_for(session.toggle_like(item), TIMEOUT)
    finally:
        await session.close()


async def test_the_link_comes_online_against_a_credential_server_with_the_token_from_env(
    servers: Servers, tmp_path: Path
):
    """OPTISYNC_TOKEN on both sides and --require-device-secrets: the device is online."""
    env = {"OPTISYNC_TOKEN": "t0ken-from-env"}
    server = await servers.start("--require-device-secrets", env=env)
    token = resolve_token(None, None, environ=env)
    assert token == "t0ken-from-env"
    session = await DeviceSession.open("phone", [server.url], data_dir=tmp_path, token=token)
    try:
        await _online(session)
    finally:
        await session.close()
    # Reopened, the device presents the same secret and is let in again.
    session = await DeviceSession.open("phone", [server.url], data_dir=tmp_path, token=token)
    try:
        await _online(session)
    finally:
        await session.close()


async def test_a_stolen_device_id_without_its_secret_is_refused_with_1008(
    servers: Servers, tmp_path: Path
):
    """Someone who knows a device's id (and the token) but not its secret is closed 1008."""
    server = await servers.start("--require-device-secrets", env={"OPTISYNC_TOKEN": "t"})
    session = await DeviceSession.open("phone", [server.url], data_dir=tmp_path, token="t")
    try:
        await _online(session)
        stolen = session.device_id
        without = json.dumps({"type": "hello", "device_id": stolen, "token": "t"})
        wrong = json.dumps(
            {"type": "hello", "device_id": stolen, "token": "t", "device_secret": "x" * 43}
        )
        assert await _closed_code(server.url, without) == 1008
        assert await _closed_code(server.url, wrong) == 1008
        # The owner is untouched and still writes.
        await asyncio.wait_for(session.toggle_like(session.state.items[0].id), TIMEOUT)
    finally:
        await session.close()
    stored = DeviceStore.peek(tmp_path, "phone")
    assert stored.device_secret is not None
    assert len(stored.device_secret) >= 43


async def test_the_link_speaks_wss_to_a_server_with_a_certificate_from_a_test_ca(
    servers: Servers, tls_files: tuple[Path, Path, Path], tmp_path: Path
):
    """--certfile/--keyfile serve wss://; the link trusts the test CA given as cafile."""
    certfile, keyfile, cafile = tls_files
    server = await servers.start("--certfile", str(certfile), "--keyfile", str(keyfile))
    assert server.url.startswith("wss://127.0.0.1:")
    session = await DeviceSession.open("phone", [server.url], data_dir=tmp_path, cafile=cafile)
    try:
        await _online(session)
        await asyncio.wait_for(session.toggle_like(session.state.items[0].id), TIMEOUT)
    finally:
        await session.close()
    # Without the test CA the certificate is not trusted.
    with pytest.raises(ssl.SSLCertVerificationError):
        await connect(server.url, ssl=ssl.create_default_context(), open_timeout=TIMEOUT)


PRE_HELLO_FRAMES: dict[str, str | bytes] = {
    "not JSON": "{{{",
    "binary": b"\x00\x01binary",
    "a JSON array": "[1, 2]",
    "an unknown type": json.dumps({"type": "dance", "request_id": 1}),
    "a half set": json.dumps({"type": "set", "request_id": 1, "key": "k"}),
    "a set": json.dumps(
        {"type": "set", "request_id": 1, "key": "k", "value": 1, "local_revision": 1}
    ),
    "a get": json.dumps({"type": "get", "request_id": 1, "key": "k"}),
    "chaos": json.dumps({"type": "chaos", "request_id": 1, "fail_next": 1}),
    "observe": json.dumps({"type": "observe", "request_id": 1}),
    "a hello without the token": json.dumps({"type": "hello", "device_id": 1}),
    "a hello with a wrong token": json.dumps({"type": "hello", "device_id": 1, "token": "no"}),
}


async def test_every_frame_before_a_good_hello_closes_1008_on_a_token_server(
    servers: Servers,
):
    """Non-JSON, binary, arrays, unknown types, sets, gets, chaos...: 1008, nothing written."""
    server = await servers.start("--token", "t", "--allow-chaos")
    for kind, frame in PRE_HELLO_FRAMES.items():
        assert await _closed_code(server.url, frame) == 1008, kind
    async with connect(server.url) as ws:
        await ws.send(json.dumps({"type": "hello", "device_id": 1, "token": "t"}))
        snapshot = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert (snapshot["type"], snapshot["revision"]) == ("snapshot", 0)


async def test_every_frame_before_a_good_hello_closes_1008_on_a_credential_server(
    servers: Servers,
):
    """Without a token but requiring device secrets, the same rule holds."""
    server = await servers.start("--require-device-secrets")
    for kind, frame in PRE_HELLO_FRAMES.items():
        if "token" not in kind:
            assert await _closed_code(server.url, frame) == 1008, kind
