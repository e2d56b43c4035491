"""The photo out of a ``multipart/form-data`` upload, with the body's size bounded while it streams in.

Starlette's ``request.form()`` spools every part to a temporary file and only then lets the caller look
at sizes, so a chunked upload without Content-Length was read in full before being refused. Here the
parser sees each chunk as it arrives, keeps only the bytes of the ``file`` part, and stops at the limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from mushroom.serving.budget import Budget
from mushroom.serving.uploads import UploadError, check_content_type

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

FIELD = "file"
MAX_PARTS = 10
FRAMING_BYTES = 2**20  # room for the multipart boundaries and part headers besides the photo


class _PhotoPart:
    """python-multipart callbacks that keep the ``file`` part's bytes and headers; a form with any other
    field is refused as it arrives (the API takes the photo alone)."""

    def __init__(self, boundary: bytes) -> None:
        self.parser = MultipartParser(boundary, self.callbacks())
        self.parts = 0
        self.headers: dict[bytes, bytes] = {}
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.chunks: list[bytes] | None = None  # a list while the ``file`` part is being received
        self.data: bytes | None = None
        self.content_type: str | None = None

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": lambda data, start, end: self.header_field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self.header_value.extend(data[start:end]),
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
        }

    def part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            message = f"The form has more than {MAX_PARTS} parts; send only the photo."
            raise UploadError(400, "bad_form", message)
        self.headers = {}

    def header_end(self) -> None:
        self.headers[bytes(self.header_field).lower()] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition"))
        name = options.get(b"name")
        if name != FIELD.encode():
            shown = repr(name.decode("utf-8", "replace")[:40]) if name is not None else "without a name"
            raise UploadError(
                400,
                "unexpected_field",
                f"The form has a field {shown}; send only the photo, in a field named '{FIELD}' "
                f"(curl -F {FIELD}=@photo.jpg http://host:port/predict).",
            )
        if b"filename" not in options:
            return
        if self.data is not None or self.chunks is not None:
            raise UploadError(400, "bad_form", "The form has more than one photo; send one per request.")
        self.chunks = []
        content_type = self.headers.get(b"content-type")
        self.content_type = content_type.decode("latin-1") if content_type is not None else None

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.chunks is not None:
            self.chunks.append(data[start:end])

    def part_end(self) -> None:
        if self.chunks is not None:
            self.data = b"".join(self.chunks)
            self.chunks = None

    def write(self, chunk: bytes) -> None:
        try:
            self.parser.write(chunk)
        except FormParserError as error:
            raise _unreadable() from error

    def finish(self) -> None:
        try:
            self.parser.finalize()
        except FormParserError as error:
            raise _unreadable() from error


def _unreadable() -> UploadError:
    """400 for a form the parser cannot read; the parser's own words (which name the library) are not
    repeated to the client."""
    return UploadError(
        400, "bad_form", "The multipart body could not be read: send the photo as multipart/form-data."
    )


#: RFC 2046: a multipart boundary is 1 to 70 characters (the parser failed, with a 500, past 256).
MAX_BOUNDARY = 70


async def read_photo(
    request: Request, max_bytes: int, timeout_s: float | None = None, memory: Budget | None = None
) -> bytes:
    """The bytes of the multipart field ``file``; :class:`UploadError` for other content types, malformed
    or oversized bodies, a missing photo, a body that takes longer than ``timeout_s`` to arrive (408)
    and, when the uploads being received together would hold more than ``memory`` allows, 503."""
    content_type = request.headers.get("content-type", "")
    media_type, options = parse_options_header(content_type)
    if media_type != b"multipart/form-data":
        raise UploadError(
            415,
            "wrong_content_type",
            f"Send the photo as multipart/form-data in a field named '{FIELD}' "
            f"(got {content_type or 'none'}). Example: curl -F {FIELD}=@photo.jpg http://host:port/predict",
        )
    if b"boundary" not in options:
        raise UploadError(400, "bad_form", "The multipart content type has no boundary.")
    boundary = options[b"boundary"]
    if not 1 <= len(boundary) <= MAX_BOUNDARY:
        raise UploadError(
            400,
            "bad_form",
            f"The multipart boundary is {len(boundary)} characters; it must be 1 to {MAX_BOUNDARY} "
            "(RFC 2046). Let the browser or HTTP library write the form.",
        )
    photo = _PhotoPart(boundary)
    held = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in _bounded_body(request, max_bytes):
                if memory is not None:
                    memory.take_now(len(chunk))
                    held += len(chunk)
                photo.write(chunk)
        photo.finish()
    except TimeoutError:
        raise UploadError(
            408,
            "upload_timeout",
            f"The upload did not arrive within {timeout_s:g} s (or was shorter than its Content-Length). "
            "Check the connection and send the photo again.",
        ) from None
    finally:
        if memory is not None:
            memory.give_back(held)
    if photo.chunks is not None:
        raise UploadError(400, "bad_form", "The upload ended before the photo did; send it again.")
    if photo.data is None:
        raise UploadError(
            400, "missing_file", f"No file in the field '{FIELD}'. Send the photo as {FIELD}=@photo.jpg."
        )
    check_content_type(photo.content_type)
    return photo.data


async def _bounded_body(request: Request, max_bytes: int) -> AsyncIterator[bytes]:
    """The body's chunks as they arrive; 413 once it passes the limit (or declares it will)."""
    limit = max_bytes + FRAMING_BYTES
    length = request.headers.get("content-length", "")
    declared = int(length) if length.isdigit() else 0
    try:
        stream = request.stream()
        if declared > limit:
            await _drain_and_refuse(stream, declared, max_bytes)
        received = 0
        async for chunk in stream:
            received += len(chunk)
            if received > limit:
                await _drain_and_refuse(stream, received, max_bytes)
            yield chunk
    except ClientDisconnect as error:
        raise _unreadable() from error


async def _drain_and_refuse(stream: AsyncIterator[bytes], size: int, max_bytes: int) -> None:
    """Read (and drop) the rest of the body, so that the client gets the 413 instead of a reset
    connection; past four times the limit the rest is left unread."""
    drained = 0
    async for chunk in stream:
        drained += len(chunk)
        if drained > 4 * max_bytes:
            break
    raise UploadError(
        413,
        "too_large",
        f"The upload is {size / 2**20:.1f} MB or more; the limit is {max_bytes / 2**20:.0f} MB. "
        "Send a smaller photo (most phones can share a reduced size).",
    )
