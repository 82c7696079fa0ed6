"""Thousands of junk frames: each gets an error, nothing is written, the server goes on."""

from __future__ import annotations

import json
import logging
import random
import string
from typing import Any

import pytest

from syncserver import SyncServer
from syncserver.protocol import ProtocolError, decode_client_message

from .conftest import Clients

FRAMES = 4000
WINDOW = 200

VALID: list[dict[str, Any]] = [
    {"type": "hello", "device_id": 1, "since": 0},
    {
        "type": "set",
        "request_id": "r1",
        "key": "like/1",
        "value": True,
        "local_revision": 3,
        "device_id": 1,
    },
    {"type": "get", "request_id": 7, "key": "like/1"},
    {"type": "chaos", "request_id": 1, "write_delay": 0.5},
    {"type": "observe"},
]
ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**63,
    -(2**63) - 1,
    1.5,
    "",
    "x" * 300,
    [],
    {},
    [1, [2]],
    {"a": None},
    "\u0000",
    "\ud7ff",
]


def random_json(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(7 if depth < 3 else 4)
    if choice == 0:
        return rng.choice(ODD_VALUES)
    if choice == 1:
        return rng.randint(-(2**70), 2**70)
    if choice == 2:
        return "".join(rng.choice(string.printable) for _ in range(rng.randrange(12)))
    if choice == 3:
        return rng.random() * 10 ** rng.randint(-5, 300)
    if choice == 4:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["type", "request_id", "key", "value", "since", "device_id", "local_revision", "x"]
    obj = {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randrange(6))}
    if rng.random() < 0.5:
        obj["type"] = rng.choice(["hello", "set", "get", "chaos", "push", "ack", "nope", 1])
    return obj


def mutate_fields(rng: random.Random) -> str:
    message = dict(rng.choice(VALID))
    for _ in range(rng.randint(1, 3)):
        field = rng.choice([*message, "extra"])
        if rng.random() < 0.3 and field in message:
            del message[field]
        else:
            message[field] = rng.choice(ODD_VALUES)
    return json.dumps(message)


def mutate_text(rng: random.Random) -> str:
    text = list(json.dumps(rng.choice(VALID)))
    for _ in range(rng.randint(1, 4)):
        position = rng.randrange(len(text))
        action = rng.randrange(3)
        if action == 0:
            del text[position]
        elif action == 1:
            text.insert(position, rng.choice('{}[]",:0-eE.tn\\ '))
        else:
            text[position] = rng.choice(string.printable)
    return "".join(text)


def junk(rng: random.Random) -> str | bytes:
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 200))
    if kind == 1:
        return "".join(chr(rng.randrange(1, 0xD800)) for _ in range(rng.randrange(1, 50)))
    if kind == 2:
        return json.dumps(random_json(rng))
    if kind == 3:
        return mutate_fields(rng)
    return mutate_text(rng)


def is_valid(frame: str | bytes) -> bool:
    try:
        decode_client_message(frame)
    except ProtocolError:
        return False
    return True


async def test_random_junk_is_refused_and_the_server_still_serves(
    server: SyncServer, clients: Clients, caplog: pytest.LogCaptureFixture
):
    """4000 random frames (bytes, text, JSON, mutated messages): one error each, no writes."""
    caplog.set_level(logging.WARNING)
    rng = random.Random(20240611)
    frames: list[str | bytes] = []
    skipped_valid = 0
    while len(frames) < FRAMES:
        frame = junk(rng)
        if is_valid(frame):
            skipped_valid += 1
        else:
            frames.append(frame)
    client = await clients(server.url)
    errors = 0
    for start in range(0, FRAMES, WINDOW):
        window = frames[start : start + WINDOW]
        for frame in window:
            await client.send(frame)
        for _ in window:
            reply = await client.recv()
            assert reply["type"] == "error", reply
            assert reply["code"] in ("bad_request", "unknown_type"), reply
            errors += 1
    crashes = len([r for r in caplog.records if r.levelno >= logging.ERROR])
    writes = server.revision
    print(
        f"fuzz: {FRAMES} frames tried ({skipped_valid} valid candidates skipped), "
        f"{errors} errors returned, {crashes} crashes, {writes} writes caused"
    )
    assert (errors, crashes, writes) == (FRAMES, 0, 0)
    assert (await client.set("after", "fuzz"))["server_revision"] == 1
