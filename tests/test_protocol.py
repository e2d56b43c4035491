"""The answers the connection layer writes before any app runs (``mushroom.serving.protocol``): JSON that
names the problem, closes the connection and carries the security headers every answer carries."""

from __future__ import annotations

import asyncio
import json

from mushroom.serving.protocol import SECURITY_HEADERS, busy_app, json_error, raw_json_response


def test_a_raw_answer_is_a_whole_http_response_with_json_and_the_security_headers() -> None:
    raw = raw_json_response("431 Request Header Fields Too Large", "headers_too_large", "Send fewer headers.")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 431 Request Header Fields Too Large"
    headers = dict(line.split(b": ", 1) for line in lines[1:])
    assert json.loads(body) == {"error": "headers_too_large", "detail": "Send fewer headers."}
    assert headers[b"content-length"] == str(len(body)).encode() and headers[b"connection"] == b"close"
    assert headers[b"content-type"] == b"application/json"
    assert all(headers[name] == value for name, value in SECURITY_HEADERS)


def test_extra_headers_come_before_the_security_ones() -> None:
    headers, _ = json_error("busy", "later", (b"retry-after", b"5"))
    names = [name for name, _ in headers]
    assert names.index(b"retry-after") < names.index(SECURITY_HEADERS[0][0])


def test_the_busy_answer_is_503_json_with_retry_after() -> None:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(busy_app({"type": "http"}, None, send))
    start, body = sent
    assert start["status"] == 503 and (b"retry-after", b"5") in start["headers"]
    assert json.loads(body["body"])["error"] == "busy"
