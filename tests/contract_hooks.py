"""Schemathesis hooks: what a schema-valid photo is, so that its fuzzer sends photos, not random bytes.

The OpenAPI document can say "a JPEG, PNG or WebP file" (``encoding.contentType``) but JSON Schema cannot
say what the bytes of one look like; without these strategies schemathesis sends arbitrary bytes as
"valid" data and counts the service's 415 as a contract failure. ``schemathesis.toml`` loads this module.
"""

from __future__ import annotations

import io

import schemathesis
from hypothesis import strategies as st
from PIL import Image

FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}


@st.composite
def photos(draw: st.DrawFn, image_format: str) -> bytes:
    """A real image of any size from 32 to 320 pixels a side (within the service's 10:1 aspect limit)."""
    width, height = draw(st.integers(32, 320)), draw(st.integers(32, 320))
    colour = tuple(draw(st.integers(0, 255)) for _ in range(3))
    image = Image.new("RGB", (width, height), colour)
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


for media_type, pil_format in FORMATS.items():
    schemathesis.openapi.media_type(media_type, photos(pil_format))
