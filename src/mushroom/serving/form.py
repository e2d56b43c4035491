"""The photo out of a ``multipart/form-data`` upload, with the body's size bounded while it streams in.

Starlette's ``request.form()`` spools every part to a temporary file and only then lets the caller look
at sizes, so a chunked upload without Content-Length was read in full before being refused. Here the
parser sees each chunk as it arrives, keeps only the bytes of the ``file`` part, and stops at the limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from mushroom.serving.uploads import UploadError, check_content_type

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

FIELD = "file"
MAX_PARTS = 10
FRAMING_BYTES = 2**20  # room for the multipart boundaries and part headers besides the photo


class _PhotoPart:
    """python-multipart callbacks that keep the ``file`` part's bytes and headers and drop other parts."""

    def __init__(self) -> None:
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
        if options.get(b"name") != FIELD.encode() or b"filename" not in options:
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


async def read_photo(request: Request, max_bytes: int) -> bytes:
    """The bytes of the multipart field ``file``; :class:`UploadError` for other content types, malformed
    or oversized bodies and a missing photo."""
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
    limit = max_bytes + FRAMING_BYTES
    declared = int(request.headers.get("content-length") or 0)
    photo = _PhotoPart()
    try:
        stream = request.stream()
        if declared > limit:
            await _drain_and_refuse(stream, declared, max_bytes)
        parser = MultipartParser(options[b"boundary"], photo.callbacks())
        received = 0
        async for chunk in stream:
            received += len(chunk)
            if received > limit:
                await _drain_and_refuse(stream, received, max_bytes)
            parser.write(chunk)
        parser.finalize()
    except (FormParserError, ClientDisconnect) as error:
        raise UploadError(400, "bad_form", f"The multipart body could not be read ({error}).") from error
    if photo.chunks is not None:
        raise UploadError(400, "bad_form", "The upload ended before the photo did; send it again.")
    if photo.data is None:
        raise UploadError(
            400, "missing_file", f"No file in the field '{FIELD}'. Send the photo as {FIELD}=@photo.jpg."
        )
    check_content_type(photo.content_type)
    return photo.data


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
