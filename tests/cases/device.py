"""One device in a process of its own, driven line by line over stdin.

``python -m tests.cases.device NAME DATA_DIR URL`` opens ``DeviceSession(NAME)``
with its state in DATA_DIR and answers each command with one JSON line:

* ``tap ITEM``  -> ``{"tapped": ITEM}`` once the toggle is shown;
* ``state``     -> every item's like, phase and revision, the link status, the
  newest revision seen and the keys still in flight or with intents;
* ``tap-and-die ITEM`` -> toggles the item, then SIGKILLs its own process before
  anything else runs (no answer);
* ``flush``     -> ``{"flushed": true}`` once the state file holds what is shown;
* ``quit``      -> closes the session and exits 0.

The first line is ``{"device_id": N}`` once the session is open, or
``{"open_failed": "..."}`` (exit 3) when opening is refused.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from app.link import Backoff, DeviceSession, like_key

__all__ = ["main"]


def _say(payload: object) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def _state(session: DeviceSession) -> dict[str, object]:
    state = session.state
    return {
        "items": {
            item.id: [item.liked, state.status(item.id).phase.value, state.revision(item.id)]
            for item in state.items
        },
        "online": session.status.state == "online",
        "newest_seen": session.client.newest_seen.value,
        "in_flight": sorted(str(key) for key in session.cubit.device.in_flight_keys()),
        "intents": sorted(state.intents),
        "keys": {like_key(item.id): item.liked for item in state.items},
    }


async def _main(name: str, data_dir: Path, url: str) -> int:
    try:
        session = await DeviceSession.open(
            name, [url], data_dir=data_dir, backoff=Backoff(initial=0.02, maximum=0.2)
        )
    except Exception as exc:  # the refusal under test, whatever its type
        _say({"open_failed": f"{type(exc).__name__}: {exc}"})
        return 3
    _say({"device_id": session.device_id})
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            command, _, argument = line.strip().partition(" ")
            if command == "tap":
                session.toggle_like(argument)
                _say({"tapped": argument})
            elif command == "tap-and-die":
                session.toggle_like(argument)
                os.kill(os.getpid(), signal.SIGKILL)
            elif command == "state":
                _say(_state(session))
            elif command == "flush":
                await session.flush()
                _say({"flushed": True})
            elif command in ("quit", ""):
                return 0
            else:
                _say({"unknown": command})
    finally:
        await session.close()


def main() -> None:
    name, data_dir, url = sys.argv[1:4]
    sys.exit(asyncio.run(_main(name, Path(data_dir), url)))


if __name__ == "__main__":
    main()
