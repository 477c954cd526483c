"""The push endpoint bounds what it reads and parses before any signature is checked."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from device_host.http.agent import MAX_PUSH_BYTES

PATH = "/agent/v1/desired-state"


def _post(agent, body: bytes | Iterable[bytes], **headers: str) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    address = urlsplit(agent.host.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        connection.request(
            "POST",
            PATH,
            body=body,
            headers={"Content-Type": "application/json", **headers},
            encode_chunked=not isinstance(body, bytes),
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def _envelope_of(size: int) -> bytes:
    padding = "a" * size
    return json.dumps({"statement": padding, "key_id": "0" * 16, "signature": "AA=="}).encode()


def test_a_chunked_push_over_the_limit_is_refused_with_413(agent):
    body = _envelope_of(MAX_PUSH_BYTES + 1024)
    chunks = (body[i : i + 16384] for i in range(0, len(body), 16384))

    status, answer = _post(agent, chunks, **{"Transfer-Encoding": "chunked"})

    assert status == 413
    assert str(MAX_PUSH_BYTES) in answer["error"]


def test_a_chunked_push_under_the_limit_is_read_whole_and_verified(agent):
    body = _envelope_of(MAX_PUSH_BYTES // 2)

    status, answer = _post(agent, iter([body[:1000], body[1000:]]))

    assert status == 403
    assert "untrusted key" in answer["error"]


def test_json_nested_deeper_than_the_parser_can_recurse_gets_400_not_500(agent):
    status, answer = _post(agent, b"[" * 100_000 + b"]" * 100_000)

    assert status == 400
    assert "nested deeper than 32 levels" in answer["error"]


def test_json_nested_a_little_too_deeply_gets_400(agent):
    status, answer = _post(agent, b'{"a":' * 40 + b"1" + b"}" * 40)

    assert status == 400
    assert "nested deeper than 32 levels" in answer["error"]


def test_json_that_is_not_an_object_gets_400(agent):
    status, answer = _post(agent, b"[1, 2, 3]")

    assert status == 400
    assert "must be a JSON object" in answer["error"]
