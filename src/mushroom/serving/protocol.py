"""The HTTP protocol uvicorn runs the service with: bounded request heads, timed-out idle and trickling
connections, and a load limit that idle sockets cannot fill.

uvicorn's h11 protocol bounds the request line and headers (``h11_max_incomplete_event_size``); its faster
httptools protocol does not, and joins the pieces of a long header on the event loop: one client sending
160 MB of header made every other request wait seconds. Here the bytes before the end of the headers are
counted as they arrive, and past the limit the client gets 431 and the connection is closed before any
parsing.

uvicorn's ``limit_concurrency`` counts open connections: 200 clients that connected and sent nothing (or one
header byte every few seconds) locked every other client out with 503s, for as long as they liked. Here a
connection must finish its request head within ``head_timeout_s`` or is closed, and the load limit counts
requests being answered (``max_requests``), with open connections capped much higher (``max_connections``).

Every answer these limits give is JSON with the service's security headers, like the app's own errors.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

#: What every answer carries (``serving.page_policy.SecurityHeaders`` adds a content policy per kind of page).
NO_SNIFFING_OR_FRAMING = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
#: The headers of every API answer: nothing may run.
SECURITY_HEADERS = [
    *NO_SNIFFING_OR_FRAMING,
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]


def json_error(
    error: str, detail: str, *extra: tuple[bytes, bytes]
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The headers and body of a JSON error answer that closes its connection, security headers included."""
    body = json.dumps({"error": error, "detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"connection", b"close"),
        (b"content-length", str(len(body)).encode()),
        *extra,
        *SECURITY_HEADERS,
    ]
    return headers, body


def raw_json_response(status: str, error: str, detail: str) -> bytes:
    """A complete HTTP/1.1 JSON error answer, written to the socket before any app runs."""
    headers, body = json_error(error, detail)
    lines = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return f"HTTP/1.1 {status}\r\n".encode() + lines + b"\r\n" + body


async def busy_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI answer past the load limit: 503 JSON, try again in a few seconds."""
    detail = "The service is answering as many photos as it can; try again shortly."
    headers, body = json_error("busy", detail, (b"retry-after", b"5"))
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def http_protocol(
    max_head_bytes: int, head_timeout_s: float, max_requests: int, max_connections: int
) -> type[asyncio.Protocol] | str:
    """httptools with these bounds when it is installed (``requirements.txt`` has it), else ``"h11"``."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return "h11"

    class BoundedProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.limit_concurrency = None  # uvicorn's own limit counts idle connections: this one decides
            self.head_bytes = 0
            self.in_head = True
            self.head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.start_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self.stop_head_timer()
            super().connection_lost(exc)

        def start_head_timer(self) -> None:
            self.stop_head_timer()
            self.head_timer = self.loop.call_later(head_timeout_s, self.head_timed_out)

        def stop_head_timer(self) -> None:
            if self.head_timer is not None:
                self.head_timer.cancel()
                self.head_timer = None

        def head_timed_out(self) -> None:
            """The request head did not arrive in time (an idle or trickling client): close the connection,
            with a 408 when it had started a request."""
            if self.transport.is_closing() or not self.in_head:
                return
            if self.head_bytes:
                detail = f"The request line and headers did not arrive within {head_timeout_s:g} s."
                self.transport.write(raw_json_response("408 Request Timeout", "head_timeout", detail))
            self.transport.close()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.in_head = True
            self.start_head_timer()

        def on_headers_complete(self) -> None:
            self.in_head = False
            self.head_bytes = 0
            self.stop_head_timer()
            if len(self.tasks) >= max_requests or len(self.connections) > max_connections:
                self.logger.warning(
                    "Busy: %d requests in progress, %d connections", len(self.tasks), len(self.connections)
                )
                app, self.app = self.app, busy_app
                try:
                    super().on_headers_complete()
                finally:
                    self.app = app
                return
            super().on_headers_complete()

        def data_received(self, data: bytes) -> None:
            if self.transport.is_closing():
                return
            if self.in_head:
                end = data.find(b"\r\n\r\n")
                self.head_bytes += len(data) if end < 0 else end
                if self.head_bytes > max_head_bytes:
                    self.refuse_head()
                    return
            super().data_received(data)

        def send_400_response(self, msg: str) -> None:
            """uvicorn's answer to a request it cannot parse, in JSON with the security headers (it was
            plain text)."""
            detail = "The request is not valid HTTP/1.1; send the photo with a browser or an HTTP library."
            self.transport.write(raw_json_response("400 Bad Request", "bad_request", detail))
            self.transport.close()

        def refuse_head(self) -> None:
            detail = (
                f"The request line and headers are over {max_head_bytes // 1024} KB; "
                "a photo upload needs a few hundred bytes of them."
            )
            status = "431 Request Header Fields Too Large"
            self.transport.write(raw_json_response(status, "headers_too_large", detail))
            self.transport.close()

    return BoundedProtocol
