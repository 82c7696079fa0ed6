"""Every class of bad input: a clear error, nothing written, the connection stays open."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from syncserver import SyncServer, serve
from tests.timeouts import TIMEOUT

from .conftest import Client, Clients

SET = {
    "type": "set",
    "request_id": "r",
    "key": "k",
    "value": 1,
    "local_revision": 1,
    "device_id": 1,
}


def with_(base: dict[str, Any], **changes: Any) -> str:
    return json.dumps({**base, **changes})


async def assert_refused(
    server: SyncServer,
    client: Client,
    frame: str | bytes,
    code: str = "bad_request",
    request_id: Any = None,
) -> None:
    """The frame is answered by one error, nothing is written, and the client can go on."""
    before = server.revision
    await client.send(frame)
    error = await client.recv_type("error")
    assert error["code"] == code
    assert error["request_id"] == request_id
    assert isinstance(error["message"], str)
    assert error["message"]
    assert server.revision == before
    assert (await client.get("k"))["server_revision"] == before


@pytest.fixture
async def client(server: SyncServer, clients: Clients) -> Client:
    said_hello = await clients(server.url)
    await said_hello.hello()
    return said_hello


async def test_text_that_is_not_json_is_bad_request(server: SyncServer, client: Client):
    """Text that does not parse as JSON is refused."""
    await assert_refused(server, client, '{"type": "set", ')


async def test_nan_is_bad_request(server: SyncServer, client: Client):
    """NaN is not JSON, even inside a value."""
    await assert_refused(server, client, with_(SET).replace('"value": 1', '"value": NaN'))


async def test_infinity_is_bad_request(server: SyncServer, client: Client):
    """Infinity (and numbers too large for a double) are not accepted."""
    await assert_refused(server, client, with_(SET).replace('"value": 1', '"value": Infinity'))
    await assert_refused(
        server, client, with_(SET).replace('"value": 1', '"value": 1e999'), request_id="r"
    )


async def test_non_object_is_bad_request(server: SyncServer, client: Client):
    """A JSON array, string, number or null is not a message."""
    for frame in ("[1, 2]", '"set"', "42", "null"):
        await assert_refused(server, client, frame)


async def test_unknown_type_is_unknown_type(server: SyncServer, client: Client):
    """An unknown type is refused with unknown_type, naming the request when it can be read."""
    await assert_refused(server, client, with_(SET, type="delete"), "unknown_type", "r")
    await assert_refused(server, client, json.dumps({"type": "delete"}), "unknown_type")


async def test_missing_type_is_bad_request(server: SyncServer, client: Client):
    """An object without a type is refused."""
    await assert_refused(server, client, json.dumps({"key": "k", "request_id": 5}), request_id=5)


async def test_missing_field_is_bad_request(server: SyncServer, client: Client):
    """A set without local_revision is refused."""
    frame = json.dumps({k: v for k, v in SET.items() if k != "local_revision"})
    await assert_refused(server, client, frame, request_id="r")


async def test_mistyped_field_is_bad_request(server: SyncServer, client: Client):
    """A key that is not a string is refused."""
    await assert_refused(server, client, with_(SET, key=12), request_id="r")


async def test_unknown_field_is_ignored(server: SyncServer, client: Client):
    """Fields the protocol does not define (yet) are ignored, so version 1 can grow."""
    await client.send(with_(SET, extra={"added": "later"}))
    assert (await client.recv_type("ack"))["server_revision"] == 1


async def test_value_nested_33_levels_is_bad_request(server: SyncServer, client: Client):
    """A value nesting deeper than 32 levels is refused; 32 levels are stored."""
    deep: Any = 1
    for _ in range(33):
        deep = [deep]
    await assert_refused(server, client, with_(SET, value=deep), request_id="r")
    assert (await client.set("deep", deep[0]))["server_revision"] == 1


async def test_value_nested_1000_levels_is_an_error_not_a_close(server: SyncServer, client: Client):
    """A thousand nested arrays get an error reply; the connection stays open."""
    frame = with_(SET).replace('"value": 1', '"value": ' + "[" * 1000 + "]" * 1000)
    await assert_refused(server, client, frame)
    frame = with_(SET).replace('"value": 1', '"value": ' + '{"a":' * 1000 + "1" + "}" * 1000)
    await assert_refused(server, client, frame)


async def test_boolean_where_int_required_is_bad_request(server: SyncServer, client: Client):
    """true is not an int (device_id)."""
    await assert_refused(server, client, with_(SET, device_id=True), request_id="r")


async def test_float_where_int_required_is_bad_request(server: SyncServer, client: Client):
    """1.0 is not an int (local_revision)."""
    await assert_refused(server, client, with_(SET, local_revision=1.0), request_id="r")


async def test_boolean_request_id_is_bad_request(server: SyncServer, client: Client):
    """request_id must be a string or an int, so true is refused (and cannot be echoed)."""
    await assert_refused(server, client, with_(SET, request_id=True))


async def test_negative_local_revision_is_bad_request(server: SyncServer, client: Client):
    """local_revision may not be negative."""
    await assert_refused(server, client, with_(SET, local_revision=-1), request_id="r")


async def test_negative_since_is_bad_request(server: SyncServer, client: Client):
    """hello's since may not be negative."""
    await assert_refused(server, client, json.dumps({"type": "hello", "device_id": 1, "since": -1}))


async def test_int_beyond_64_bits_is_bad_request(server: SyncServer, client: Client):
    """Ints outside signed 64-bit are refused, both ways."""
    await assert_refused(server, client, with_(SET, device_id=2**63), request_id="r")
    await assert_refused(server, client, with_(SET, device_id=-(2**63) - 1), request_id="r")


async def test_empty_key_is_bad_request(server: SyncServer, client: Client):
    """An empty key is refused."""
    await assert_refused(server, client, with_(SET, key=""), request_id="r")


async def test_key_longer_than_256_is_bad_request(server: SyncServer, client: Client):
    """A key of 257 characters is refused; 256 is accepted."""
    await assert_refused(server, client, with_(SET, key="é" * 257), request_id="r")
    assert (await client.set("é" * 256, 1))["server_revision"] == 1


async def test_binary_frame_is_bad_request(server: SyncServer, client: Client):
    """Binary frames are refused, even if they hold valid JSON."""
    await assert_refused(server, client, with_(SET).encode())


async def test_value_over_64_kib_is_too_large(server: SyncServer, client: Client):
    """A value whose JSON exceeds 64 KiB is refused with too_large."""
    await assert_refused(server, client, with_(SET, value="x" * 65536), "too_large", "r")


async def test_value_of_exactly_64_kib_is_accepted(server: SyncServer, client: Client):
    """The limit is inclusive: a value of exactly 64 KiB of JSON is stored and pushed."""
    ack = await client.set("big", "x" * (65536 - 2))
    assert ack["server_revision"] == 1
    assert (await client.recv_type("push"))["value"] == "x" * (65536 - 2)


async def test_frame_over_1_mib_closes_only_that_connection(
    server: SyncServer, client: Client, clients: Clients
):
    """A frame over 1 MiB closes its connection with 1009; other clients notice nothing."""
    bystander = await clients(server.url)
    await client.send(with_(SET, value="x" * (1024 * 1024)))
    with pytest.raises(ConnectionClosed) as closed:
        await client.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
    assert server.revision == 0
    assert (await bystander.set("k", 1))["server_revision"] == 1


async def test_flood_is_rate_limited(db_path: Path, clients: Clients):
    """Messages beyond the per-connection rate get rate_limited errors and are not processed."""
    async with serve(db_path=db_path, rate_limit=1, rate_burst=4) as limited:
        client = await clients(limited.url)
        await client.hello()  # one of the four
        for i in range(5):
            await client.send({**SET, "request_id": i, "key": f"k{i}"})
        replies: list[dict[str, Any]] = []
        while len(replies) < 5:
            reply = await client.recv()
            if reply["type"] != "push":
                replies.append(reply)
        codes = [r.get("code") for r in replies if r["type"] == "error"]
        assert codes == ["rate_limited", "rate_limited"]
        assert {r["request_id"] for r in replies if r["type"] == "error"} == {3, 4}
        assert sorted(r["server_revision"] for r in replies if r["type"] == "ack") == [1, 2, 3]


async def test_connections_beyond_the_cap_are_refused_with_503(db_path: Path, clients: Clients):
    """The connection cap refuses the next handshake; existing connections keep working."""
    async with serve(db_path=db_path, max_connections=2) as capped:
        first, _second = await clients(capped.url), await clients(capped.url)
        with pytest.raises(InvalidStatus) as refused:
            await asyncio.wait_for(connect(capped.url), TIMEOUT)
        assert refused.value.response.status_code == 503
        assert (await first.set("k", 1))["server_revision"] == 1


async def test_set_before_hello_on_a_token_server_closes_with_1008(db_path: Path, clients: Clients):
    """On a server with a token, a set before hello closes 1008 and writes nothing."""
    async with serve(db_path=db_path, token="s3cret") as guarded:
        client = await clients(guarded.url)
        await client.send(SET)
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008
        assert guarded.revision == 0


async def test_wrong_token_closes_with_1008(db_path: Path, clients: Clients):
    """A hello with the wrong token closes the connection with 1008."""
    async with serve(db_path=db_path, token="s3cret") as guarded:
        client = await clients(guarded.url)
        await client.send({"type": "hello", "device_id": 1, "since": 0, "token": "guess"})
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008


async def test_right_token_is_served_and_pushed_to(db_path: Path, clients: Clients):
    """With the right token in hello a client is served and receives pushes; others don't."""
    async with serve(db_path=db_path, token="s3cret") as guarded:
        client = await clients(guarded.url)
        await client.hello(token="s3cret")
        assert (await client.set("k", 1))["server_revision"] == 1
        assert (await client.recv_type("push"))["server_revision"] == 1
