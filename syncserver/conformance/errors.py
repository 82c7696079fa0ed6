"""Checks: refused frames, error codes, limits measured exactly, and close codes."""

from __future__ import annotations

import json
from typing import Any

from .messages import expect_error, expect_never_written, still_open
from .peer import MAX_FRAME_BYTES, Peer, expect
from .registry import Context, check

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_REQUEST_ID_LENGTH",
    "MAX_VALUE_BYTES",
    "MAX_VALUE_DEPTH",
    "compact",
]

MAX_KEY_LENGTH = 256
MAX_REQUEST_ID_LENGTH = 128
MAX_VALUE_BYTES = 64 * 1024
MAX_VALUE_DEPTH = 32


def compact(value: Any) -> bytes:
    """The encoding the value limit is measured on: compact JSON, raw UTF-8."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _set_text(key: str, value_json: str, request_id: object) -> str:
    return (
        f'{{"type":"set","request_id":{json.dumps(request_id)},"key":{json.dumps(key)},'
        f'"local_revision":1,"value":{value_json}}}'
    )


async def _refused_raw(peer: Peer, text: str, code: str, request_id: object) -> None:
    await peer.send_text(text)
    expect_error(await peer.recv_type("error", "ack", "value", "snapshot"), code, request_id)


@check()
async def an_unknown_type_gets_unknown_type_and_the_connection_stays_open(ctx: Context) -> None:
    """type "frobnicate": error unknown_type naming the request_id (null without one)."""
    peer, _ = await ctx.device()
    await _refused_raw(peer, '{"type":"frobnicate","request_id":"u1","x":1}', "unknown_type", "u1")
    await _refused_raw(peer, '{"type":"frobnicate"}', "unknown_type", None)
    await _refused_raw(peer, '{"type":"frobnicate","request_id":1.5}', "unknown_type", None)
    await still_open(peer)


@check()
async def a_frame_without_a_type_is_a_bad_request(ctx: Context) -> None:
    """An object without "type" (or with a non-string type): bad_request naming its request_id."""
    peer, _ = await ctx.device()
    await _refused_raw(peer, '{"request_id":7,"key":"k"}', "bad_request", 7)
    await _refused_raw(peer, '{"type":5,"request_id":"t"}', "bad_request", "t")
    await still_open(peer)


@check()
async def frames_that_are_not_json_objects_are_bad_requests(ctx: Context) -> None:
    """Not JSON (a lone surrogate included), a list, a number, a string: bad_request, null."""
    peer, _ = await ctx.device()
    surrogate = '{"type":"get","request_id":"s","key":"k\\ud800"}'
    for text in ("{", "", "NaN", "[1]", "3", '"hello"', "null", '{"type":"get"} x', surrogate):
        await _refused_raw(peer, text, "bad_request", None)
    await still_open(peer)


@check()
async def binary_frames_are_bad_requests(ctx: Context) -> None:
    """A binary frame, even holding valid JSON: bad_request, request_id null."""
    peer, _ = await ctx.device()
    await peer.send_raw(b'{"type":"get","request_id":1,"key":"k"}', text=False)
    expect_error(await peer.recv_type("error", "value"), "bad_request", None)
    await still_open(peer)


@check()
async def an_unreadable_request_id_is_refused_without_echo(ctx: Context) -> None:
    """request_id a float, bool, list, object, past int64 or 128 code points: bad_request, null."""
    peer, _ = await ctx.device()
    key = ctx.key()
    for bad in ("1.5", "true", "[1]", '{"a":1}', str(2**63), json.dumps("a" * 129)):
        await _refused_raw(peer, _set_text(key, "1", "@").replace('"@"', bad), "bad_request", None)
    await _refused_raw(peer, _set_text(key, "1", None), "bad_request", None)
    await still_open(peer)
    await expect_never_written(ctx, key)


@check()
async def missing_or_mistyped_fields_are_bad_requests_that_write_nothing(ctx: Context) -> None:
    """A set missing a field or with a mistyped one: bad_request naming its request_id."""
    peer, _ = await ctx.device()
    key = ctx.key()
    good = {"type": "set", "key": key, "value": 1, "local_revision": 1}
    broken: list[dict[str, Any]] = [
        {"key": None},
        {"key": 5},
        {"value": None, "local_revision": None},
        {"local_revision": True},
        {"local_revision": 1.0},
        {"local_revision": -1},
        {"local_revision": 2**63},
        {"local_revision": "1"},
        {"device_id": "7"},
        {"device_id": 2**63},
    ]
    for number, change in enumerate(broken):
        message = {**good, **change, "request_id": f"f{number}"}
        message = {name: value for name, value in message.items() if value is not None}
        if "value" in change:
            message.pop("value", None)
        reply = await peer.request(message, "ack")
        expect_error(reply, "bad_request", f"f{number}")
    await still_open(peer)
    await expect_never_written(ctx, key)
    for change in ({"since": -1}, {"since": 1.5}, {"device_id": True}, {"batch_pushes": 1}):
        hello = {"type": "hello", "device_id": ctx.device_id(), "since": 0, **change}
        await peer.send(hello)
        expect_error(await peer.recv_type("error", "snapshot"), "bad_request", None)


@check()
async def keys_and_request_ids_are_measured_in_code_points(ctx: Context) -> None:
    """A key is 1–256 and a request_id at most 128 Unicode code points, whatever their bytes."""
    peer, _ = await ctx.device()
    prefix = ctx.key()
    long_key = prefix + "😀" * (MAX_KEY_LENGTH - len(prefix))
    ack = await peer.set(long_key, 1, 1, request_id="😀" * MAX_REQUEST_ID_LENGTH)
    expect(ack["type"] == "ack" and ack["key"] == long_key, f"a 256-code-point key got {ack}")
    too_long = prefix + "a" * (MAX_KEY_LENGTH + 1 - len(prefix))
    expect_error(await peer.set(too_long, 1, 1, request_id="l1"), "bad_request", "l1")
    expect_error(await peer.set("", 1, 1, request_id="l2"), "bad_request", "l2")
    await still_open(peer)


@check()
async def the_value_limit_is_on_its_compact_re_encoding(ctx: Context) -> None:
    """64 KiB of compact UTF-8 JSON passes, a byte more is too_large; spaces/escapes don't count."""
    peer, _ = await ctx.device()
    overhead = len(compact(""))
    exact = "x" * (MAX_VALUE_BYTES - overhead)
    expect(len(compact(exact)) == MAX_VALUE_BYTES, "kit bug: value size")
    ack = await peer.set(ctx.key(), exact, 1)
    expect(ack["type"] == "ack", f"a value of exactly 65536 bytes got {ack.get('code')}")
    key = ctx.key()
    reply = await peer.set(key, exact + "x", 1, request_id="big")
    expect_error(reply, "too_large", "big")
    await expect_never_written(ctx, key)
    # Sent as 6-byte \\u escapes and padded with spaces: 180 KB on the wire, 60 KB compact.
    escaped = json.dumps(["é" * 30000], ensure_ascii=True).replace(",", " , ")
    spaced = "[" + " " * 20000 + escaped + "]"
    await peer.send_text(_set_text(ctx.key(), spaced, "spaced"))
    ack = await peer.reply_to("spaced", "ack")
    expect(ack["type"] == "ack", f"a value of 60 KB compact sent as 200 KB got {ack.get('code')}")


@check()
async def values_nest_at_most_32_levels(ctx: Context) -> None:
    """32 levels of lists/objects are stored; 33 (or 10000) are bad_request and write nothing."""
    peer, _ = await ctx.device()
    deepest: Any = 1
    for level in range(MAX_VALUE_DEPTH):
        deepest = [deepest] if level % 2 else {"a": deepest}
    ack = await peer.set(ctx.key(), deepest, 1)
    expect(ack["type"] == "ack" and ack["value"] == deepest, "a value 32 levels deep was refused")
    key = ctx.key()
    expect_error(await peer.set(key, [deepest], 1, request_id="d33"), "bad_request", "d33")
    await peer.send_text(_set_text(key, "[" * 10000 + "]" * 10000, "d10000"))
    reply = await peer.recv_type("error", "ack")
    # So deep a frame may be refused before its request_id is read.
    expect(
        reply.get("code") == "bad_request" and reply.get("request_id") in ("d10000", None),
        f"10000 levels got {reply.get('code')} naming {reply.get('request_id')!r}",
    )
    await still_open(peer)
    await expect_never_written(ctx, key)


@check()
async def numbers_in_values_are_kept_as_json_numbers(ctx: Context) -> None:
    """Integers stay exact at any size, other numbers become the nearest double; 1e400 fails."""
    peer, _ = await ctx.device()
    text = "[123456789012345678901234567890,0.12345678901234567890123,1E2,-0.0,-7]"
    await peer.send_text(_set_text(ctx.key(), text, "n1"))
    ack = await peer.reply_to("n1", "ack")
    expect(ack["type"] == "ack", f"numbers were refused: {ack}")
    value = ack["value"]
    expect(
        value == [123456789012345678901234567890, 0.12345678901234568, 100.0, -0.0, -7]
        and type(value[0]) is int
        and type(value[4]) is int,
        f"numbers came back as {value}",
    )
    await peer.send_text(_set_text(ctx.key(), "1e400", "n2"))
    expect_error(await peer.reply_to("n2", "ack"), "bad_request", "n2")
    for text in ("NaN", "Infinity", "-Infinity"):  # not JSON: no request_id can be read
        await peer.send_text(_set_text(ctx.key(), text, "n3"))
        expect_error(await peer.recv_type("error", "ack"), "bad_request", None)
    await still_open(peer)


@check()
async def a_repeated_field_counts_once_with_its_last_value(ctx: Context) -> None:
    """Duplicate names in one JSON object: the last one wins (clients should not send them)."""
    peer, _ = await ctx.device()
    key = ctx.key()
    await peer.send_text(_set_text(key, '1,"value":2', "dup"))
    ack = await peer.reply_to("dup", "ack")
    expect(ack["type"] == "ack" and ack["value"] == 2, f"a repeated field gave {ack}")


@check()
async def invalid_utf8_in_a_text_frame_closes_the_connection_with_1007(ctx: Context) -> None:
    """A text frame that is not UTF-8 is a websocket protocol error: close code 1007."""
    peer, _ = await ctx.device()
    await peer.send_raw(b'{"type":"get","request_id":1,"key":"\xff"}', text=True)
    code = await peer.wait_closed()
    expect(code == 1007, f"closed with {code}, expected 1007")


@check()
async def a_frame_over_1_mib_closes_the_connection_with_1009(ctx: Context) -> None:
    """A frame larger than 1 MiB closes that connection with 1009 (the server stays up)."""
    peer, _ = await ctx.device()
    await peer.send_text(_set_text(ctx.key(), json.dumps("x" * MAX_FRAME_BYTES), 1))
    code = await peer.wait_closed()
    expect(code == 1009, f"closed with {code}, expected 1009")
    again, _ = await ctx.device()
    await still_open(again)
