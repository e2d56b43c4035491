"""Checking and decoding an uploaded photo; every way it can be bad has its own 4xx and message.

Checking is split from decoding: :func:`open_upload` reads only the header (size, format, shape), so
the service can refuse a hostile image and weigh what decoding it will cost before spending anything;
:func:`decode_checked` then does the expensive part in a worker thread.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from mushroom.core.images import decode_jpeg_strict, decode_opened, jpeg_reduction

ACCEPTED_TYPES = ("image/", "application/octet-stream")
# What phones and browsers send (JPEG includes MPO, the multi-picture JPEG of many phone cameras).
# Pillow reads dozens of other formats (TGA, PCX, SGI, DDS, JPEG 2000 ...): each one more decoder for
# hostile bytes to reach.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")
#: Segments a JPEG may have before its first scan: a camera photo has 10-20 (APPn for EXIF, XMP, ICC and
#: maker notes, quantisation and Huffman tables, the frame header). Two million empty APPn markers took
#: seconds to parse, on the event loop.
MAX_HEAD_SEGMENTS = 100
#: Scans a JPEG may have: a baseline photo has 1, a progressive one about 10 (libjpeg) to 20 (mozjpeg).
#: Each scan of a large progressive JPEG costs the decoder a pass over the whole image.
MAX_SCANS = 40
_PROGRESSIVE_FRAMES = {0xC2, 0xC6, 0xCA, 0xCE}
_NO_LENGTH = {0x01, *range(0xD0, 0xD8)}  # TEM and RSTn stand alone


class UploadError(Exception):
    """A rejected upload: HTTP status, a short machine-readable reason and a message for the person."""

    def __init__(self, status_code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class UploadLimits:
    """What an upload may be. A photo is not a sliver: an image far longer than it is wide would be
    scaled up to the model's size along its short side, a 65535 x 1 PNG to gigabytes."""

    max_bytes: int
    max_pixels: int
    max_aspect_ratio: float


@dataclass
class OpenedUpload:
    """An upload whose header passed every check, not yet decoded."""

    image: Image.Image
    data: bytes
    size: tuple[int, int]  # (width, height) as sent
    decode_pixels: int  # pixels the decoder will hold: fewer than ``size`` when a JPEG decodes reduced


def check_content_type(content_type: str | None) -> None:
    """The file part must say it is an image (or say nothing specific, as some clients do)."""
    if content_type and not content_type.lower().startswith(ACCEPTED_TYPES):
        raise UploadError(
            415,
            "wrong_content_type",
            f"The file was sent as {content_type}, not as an image. Upload a JPEG, PNG or WebP photo.",
        )


def open_upload(data: bytes, limits: UploadLimits, model_side: int) -> OpenedUpload:
    """Check an upload from its bytes and header alone, or raise :class:`UploadError`.

    The pixel count and shape are checked before anything is decoded, so a decompression bomb (a small
    file that expands to gigabytes) or a 65535 x 1 sliver costs nothing. ``model_side``: the shorter side
    the model needs, which lets a large JPEG decode at reduced scale.
    """
    if not data:
        raise UploadError(400, "empty", "The upload is empty (0 bytes). Choose a photo and send it again.")
    if len(data) > limits.max_bytes:
        raise UploadError(
            413,
            "too_large",
            f"The file is {len(data) / 2**20:.1f} MB; the limit is {limits.max_bytes / 2**20:.0f} MB. "
            "Send a smaller photo (most phones can share a reduced size).",
        )
    # Before PIL, which walks every header segment in Python: a JPEG's structure is checked in bounded time.
    progressive = jpeg_structure(data) if data[:2] == b"\xff\xd8" else False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError as error:
        raise UploadError(415, "not_an_image", _not_an_image(data)) from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        # PIL refuses, from the header alone, images far beyond any photo (its own limit, ~89 MP).
        found = re.search(r"\((\d+) pixels\)", str(error))
        size = f"{int(found[1]) / 1e6:.0f} MP" if found else "far more than that"
        raise UploadError(413, "too_many_pixels", _too_many_pixels(size, limits)) from error
    except Exception as error:  # a header PIL recognised but cannot parse: SyntaxError, struct.error ...
        raise _corrupt() from error
    width, height = image.size
    try:
        _check_shape(width, height, limits)
    except UploadError:
        image.close()
        raise
    if image.format != "JPEG":
        return OpenedUpload(image, data, (width, height), width * height)
    if progressive:
        # Decoded at reduced scale or not, libjpeg keeps every coefficient of a progressive JPEG at full
        # size until the last scan: it costs the memory of the whole image.
        return OpenedUpload(image, data, (width, height), width * height)
    reduction = jpeg_reduction((width, height), model_side)
    return OpenedUpload(image, data, (width, height), -(-width // reduction) * -(-height // reduction))


def jpeg_structure(data: bytes) -> bool:
    """Check a JPEG's structure before any decoder reads it, or raise :class:`UploadError` (422); return
    whether it is progressive. Bounded work: at most :data:`MAX_HEAD_SEGMENTS` segments are walked, and
    the scans are counted by a byte search (inside the compressed data a 0xFF byte is always followed by
    0x00 or a restart marker, so every 0xFF 0xDA found is a scan header)."""
    position, segments, progressive = 2, 0, False
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise _corrupt()
        marker = data[position + 1]
        if marker == 0xFF:  # fill bytes before a marker
            position += 1
            continue
        segments += 1
        if segments > MAX_HEAD_SEGMENTS:
            raise UploadError(
                422,
                "too_many_segments",
                f"The JPEG has more than {MAX_HEAD_SEGMENTS} header segments before its image data, where a "
                "photo has about 20. Send the photo as the camera saved it, or re-save it as JPEG.",
            )
        if marker in _NO_LENGTH:
            position += 2
            continue
        progressive |= marker in _PROGRESSIVE_FRAMES
        if marker == 0xDA:  # the first scan: the header is over
            break
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
    scans = data.count(b"\xff\xda")
    if scans > MAX_SCANS:
        raise UploadError(
            422,
            "too_many_scans",
            f"The JPEG has {scans} scans, where a photo has 1 (baseline) to about 20 (progressive); each "
            "one costs a pass over the whole image. Re-save the photo as a baseline JPEG.",
        )
    return progressive


def decode_checked(upload: OpenedUpload, model_side: int) -> np.ndarray:
    """The upright ``H x W x 3`` uint8 pixels of a checked upload, or :class:`UploadError` if corrupt."""
    with upload.image as image:
        try:
            rgb = decode_jpeg_strict(image, upload.data, model_side)
            return rgb if rgb is not None else decode_opened(image, model_side, upright=True)
        except Exception as error:  # PIL raises OSError, SyntaxError, ValueError... for broken data
            raise _corrupt() from error


def _check_shape(width: int, height: int, limits: UploadLimits) -> None:
    pixels = width * height
    if pixels > limits.max_pixels:
        raise UploadError(
            413, "too_many_pixels", _too_many_pixels(f"{width} x {height} = {pixels / 1e6:.1f} MP", limits)
        )
    if max(width, height) > limits.max_aspect_ratio * min(width, height):
        raise UploadError(
            422,
            "too_thin",
            f"The image is {width} x {height} pixels: {max(width, height) / min(width, height):.0f} times "
            f"longer than wide, where a photo is at most {limits.max_aspect_ratio:g} times. "
            "Send the photo uncropped.",
        )


def _too_many_pixels(size: str, limits: UploadLimits) -> str:
    return (
        f"The image is too large: {size}; the limit is {limits.max_pixels / 1e6:g} megapixels "
        "(a small file can expand to gigabytes: a decompression bomb). Send a smaller photo."
    )


def _corrupt() -> UploadError:
    """400 for an image that cannot be decoded. The decoder's own words are not repeated to the client:
    they tell a prober which library it reached."""
    return UploadError(
        400,
        "corrupt",
        "The image could not be decoded: it is truncated or corrupt. "
        "Send the photo again; if it keeps failing, re-save it as JPEG.",
    )


def _not_an_image(data: bytes) -> str:
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftyphevc"):
        return (
            "HEIC photos are not supported. Set the camera to 'Most compatible' (JPEG), "
            "or share the photo as JPEG."
        )
    return "The file is not an image this service reads. Upload a JPEG, PNG or WebP photo."
