"""GET /healthz and GET /metrics on the server's own port, read with a plain HTTP client."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect

from syncserver import SyncServer, serve
from tests.redis.conftest import REDIS_SERVER, RedisServer
from tests.timeouts import TIMEOUT


def _get(url: str) -> tuple[int, str, str]:
    """Status, content type and body of a GET, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


async def http_get(server: SyncServer, path: str) -> tuple[int, str, str]:
    return await asyncio.to_thread(_get, f"http://127.0.0.1:{server.port}{path}")


async def scrape(server: SyncServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, by name and labels."""
    status, content_type, body = await http_get(server, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[SyncServer]:
    async with serve(port=0, db_path=tmp_path / "db.sqlite3") as running:
        yield running


async def _device(server: SyncServer, device_id: int) -> ClientConnection:
    ws = await connect(server.url)
    await ws.send(json.dumps({"type": "hello", "device_id": device_id}))
    assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["type"] == "snapshot"
    return ws


async def _until(ws: ClientConnection, kind: str) -> dict[str, object]:
    async with asyncio.timeout(TIMEOUT):
        while True:
            message: dict[str, object] = json.loads(await ws.recv())
            if message["type"] == kind:
                return message


async def test_healthz_is_200_while_the_backend_is_reachable(server: SyncServer) -> None:
    """A running server on SQLite answers /healthz with 200 ok."""
    assert await http_get(server, "/healthz") == (200, "text/plain", "ok\n")


async def test_an_observability_request_is_not_a_connection(server: SyncServer) -> None:
    """Health checks and scrapes never show up as websocket connections."""
    await http_get(server, "/healthz")
    await http_get(server, "/metrics")
    metrics = await scrape(server)
    assert metrics[("optisync_connections_accepted_total", ())] == 0
    assert server.state().devices == []


async def test_metrics_count_connections_requests_writes_pushes_and_rejections(
    server: SyncServer,
) -> None:
    """/metrics counts what happened: 2 devices, 3 writes pushed to both, 1 bad frame."""
    a, b = await _device(server, 1), await _device(server, 2)
    try:
        for revision in (1, 2, 3):
            await a.send(
                json.dumps(
                    {"type": "set", "request_id": revision, "key": "k", "value": revision,
                     "local_revision": revision}
                )
            )  # fmt: skip
            await _until(a, "ack")
        await a.send(json.dumps({"type": "nonsense", "request_id": 9}))
        await _until(a, "error")
        await b.send(json.dumps({"type": "get", "request_id": 1, "key": "k"}))
        await _until(b, "value")
        metrics = await scrape(server)
    finally:
        await a.close()
        await b.close()
    assert metrics[("optisync_connections", ())] == 2
    assert metrics[("optisync_devices", ())] == 2
    assert metrics[("optisync_connections_accepted_total", ())] == 2
    assert metrics[("optisync_requests_total", ())] == 4
    assert metrics[("optisync_writes_total", ())] == 3
    assert metrics[("optisync_pushes_total", ())] == 6
    assert metrics[("optisync_revision", ())] == 3
    assert metrics[("optisync_rejected_frames_total", (("code", "unknown_type"),))] == 1
    assert metrics[("optisync_commit_latency_seconds_count", ())] == 3
    assert metrics[("optisync_commit_latency_seconds_bucket", (("le", "+Inf"),))] == 3
    assert 0 < metrics[("optisync_commit_latency_seconds_sum", ())] < 3 * TIMEOUT
    assert metrics[("optisync_send_buffer_bytes", ())] >= 0
    assert metrics[("optisync_process_resident_memory_bytes", ())] > 0


async def test_connects_and_disconnects_are_logged_with_device_and_address(
    server: SyncServer, caplog: pytest.LogCaptureFixture
) -> None:
    """One INFO line when a device says hello and one when it goes, with id and address."""
    with caplog.at_level(logging.INFO, logger="syncserver"):
        ws = await _device(server, 42)
        host, port = ws.local_address[:2]
        local = f"{host}:{port}"
        gone = asyncio.Event()
        unsubscribe = server.observe(lambda state: None if state.devices else gone.set())
        await ws.close()
        await asyncio.wait_for(gone.wait(), TIMEOUT)
        unsubscribe()
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert f"device 42 connected from {local}" in lines
    assert f"device 42 disconnected from {local}" in lines


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
async def test_healthz_is_503_while_redis_is_down(tmp_path: Path) -> None:
    """With Redis killed /healthz answers 503 and says why."""
    assert REDIS_SERVER is not None
    redis = RedisServer(REDIS_SERVER, tmp_path)
    await asyncio.to_thread(redis.start)
    try:
        async with serve(port=0, backend=redis.url()) as server:
            assert (await http_get(server, "/healthz"))[0] == 200
            await asyncio.to_thread(redis.kill)
            status, _, body = await http_get(server, "/healthz")
            assert status == 503
            assert re.match(r"the backend does not answer: .+", body), body
    finally:
        await asyncio.to_thread(redis.kill)
