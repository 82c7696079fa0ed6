"""The conformance kit against a server on Redis: the protocol holds whatever the backend."""

from __future__ import annotations

import re
import sys

from tests.conformance.conftest import RunningServer
from tests.conformance.test_kit import run_kit
from tests.redis.conftest import RedisServer
from tests.timeouts import TIMEOUT


async def test_the_kit_passes_against_a_server_on_redis(
    redis_server: RedisServer, redis_url: str
) -> None:
    """Every check passes against python -m syncserver --backend redis://... --allow-chaos
    (the kit's own servers on another database of the same Redis)."""
    redis_server.flush()
    server = await RunningServer.start("--backend", redis_url, "--allow-chaos")
    try:
        start = f"{sys.executable} -m syncserver --port 0 --backend {redis_server.url(1)}"
        wait = str(TIMEOUT / 2)
        status, out, err = await run_kit(server.url, "--start-server", start, "--timeout", wait)
    finally:
        await server.stop()
    lines = out.splitlines()
    failures = [line for line in lines[:-1] if line.startswith("FAIL ")]
    assert failures == [], "\n".join(failures) + err
    assert re.fullmatch(r"\d+ passed, 0 failed", lines[-1]), lines[-1]
    assert status == 0
