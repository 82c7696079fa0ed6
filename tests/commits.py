"""Wait for a server core to commit, instead of guessing how long that takes."""

import asyncio

from syncserver.core import ServerCore
from tests.timeouts import TIMEOUT

__all__ = ["committed"]


async def committed(core: ServerCore, revision: int) -> None:
    """Return once ``core`` has committed ``revision``; fail after TIMEOUT."""

    async def reached() -> None:
        while core.revision < revision:  # noqa: ASYNC110 - the core has no commit event
            await asyncio.sleep(0)  # yield so the backend can commit

    await asyncio.wait_for(reached(), TIMEOUT)
