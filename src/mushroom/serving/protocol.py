"""The HTTP protocol uvicorn runs the service with, with a bound on the request line and headers.

uvicorn's h11 protocol bounds them (``h11_max_incomplete_event_size``); its faster httptools protocol
does not, and joins the pieces of a long header on the event loop: one client sending 160 MB of header
made every other request wait seconds. Here the bytes before the end of the headers are counted as they
arrive, and past the limit the client gets 431 and the connection is closed before any parsing.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any


def http_protocol(max_head_bytes: int) -> type[asyncio.Protocol] | str:
    """httptools with the bound when it is installed (``requirements.txt`` has it), else ``"h11"``."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return "h11"

    class BoundedHeadProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.head_bytes = 0
            self.in_head = True

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.head_bytes = 0
            self.in_head = True

        def on_headers_complete(self) -> None:
            self.in_head = False
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

        def refuse_head(self) -> None:
            detail = (
                f"The request line and headers are over {max_head_bytes // 1024} KB; "
                "a photo upload needs a few hundred bytes of them."
            )
            body = json.dumps({"error": "headers_too_large", "detail": detail}).encode()
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
                b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            self.transport.close()

    return BoundedHeadProtocol
