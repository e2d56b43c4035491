"""Decoding images into RGB arrays, and telling which files cannot be decoded."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import cv2
import numpy as np
import simplejpeg
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from mushroom.errors import MushroomError

# A truncated file must fail loudly, never be padded with grey/black pixels.
ImageFile.LOAD_TRUNCATED_IMAGES = False

T = TypeVar("T")
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def find_images(inputs: Sequence[str | Path]) -> list[Path]:
    """Image files among ``inputs``: files as given, folders searched recursively (sorted, hidden skipped)."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*")
                if p.suffix.lower() in IMAGE_EXTENSIONS
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            found.append(path)
        else:
            raise MushroomError(f"{path} does not exist: pass image files or folders of images.")
    return found


def sample_evenly(items: list[T], count: int | None) -> list[T]:
    """At most ``count`` items, spread evenly over the list (every class of a sorted folder tree)."""
    if count is None or len(items) <= count:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode (L, CMYK, P, RGBA, LA, I;16 ...) to RGB.

    Transparent pixels are composited on white rather than dropped to black, so an RGBA cut-out keeps
    the colours a person sees.
    """
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")  # convert copies even RGBA
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode.startswith("I;16") or image.mode == "I":
        array = np.asarray(image, dtype=np.float32)
        peak = max(float(array.max()), 1.0)
        return Image.fromarray((array * (255.0 / peak)).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def load_rgb(path: str | Path | BinaryIO, min_side: int | None = None) -> np.ndarray:
    """Decode an image file fully into an upright ``H x W x 3`` uint8 array.

    Upright: the EXIF orientation is applied, as the service does with uploads, so that a phone's
    portrait photo is trained on, predicted and served the way its owner sees it.
    ``min_side`` lets the JPEG decoder downscale by a power of two while keeping the shorter side
    at least that long: the result is the same for training at that size, and decoding is faster.
    """
    with Image.open(path) as image:
        return decode_opened(image, min_side, upright=True)


def decode_opened(image: Image.Image, min_side: int | None = None, upright: bool = False) -> np.ndarray:
    """Decode an opened PIL image into RGB (see :func:`load_rgb`).

    ``upright`` applies the EXIF orientation, as phones record it and browsers show it.
    """
    reduction = jpeg_reduction(image.size, min_side) if image.format == "JPEG" else 1
    if reduction > 1:
        width, height = image.size
        image.draft("RGB", (width // reduction, height // reduction))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. PIL's "palette images with transparency" notice
        image.load()
        stages = [image]
        if upright and image.getexif().get(0x0112, 1) != 1:  # EXIF orientation; 1 means as stored
            stages.append(ImageOps.exif_transpose(image))
        rgb = to_rgb(stages[-1])
        rgb.load()
    # The decoded stages are not needed once the RGB copy exists: freeing them before the array copy
    # lowers the peak by hundreds of MB for a 64-megapixel RGBA upload.
    for stage in stages:
        if stage is not rgb:
            stage.close()
    return np.asarray(rgb, dtype=np.uint8)


def jpeg_reduction(size: tuple[int, int], min_side: int | None) -> int:
    """The largest factor (1, 2, 4 or 8) by which a JPEG decoder can shrink while the shorter side stays
    at least ``min_side``: libjpeg shrinks in the DCT domain, so a big photo decodes several times faster."""
    reduction = 1
    while min_side and reduction < 8 and min(size) // (2 * reduction) >= min_side:
        reduction *= 2
    return reduction


def decode_jpeg_strict(image: Image.Image, data: bytes, min_side: int | None = None) -> np.ndarray | None:
    """Upright RGB pixels of a colour or grey JPEG already opened with PIL, decoded strictly by
    libjpeg-turbo (simplejpeg), or ``None`` when PIL must decode it (CMYK, or not a JPEG).

    The same pixels as :func:`decode_opened` (the same library with the same settings: tests compare
    them, shrunk in the DCT domain by :func:`jpeg_reduction` and turned by the EXIF orientation alike),
    faster than PIL or OpenCV, and strict: data that ends early raises ``ValueError`` even when an
    end-of-image marker was appended, where PIL and OpenCV fill the missing part with grey.
    """
    if image.format != "JPEG" or image.mode not in ("RGB", "L"):
        return None
    width, height = image.size
    reduction = jpeg_reduction(image.size, min_side)
    shrunk = {"min_height": -(-height // reduction), "min_width": -(-width // reduction)}
    rgb = simplejpeg.decode_jpeg(data, colorspace="RGB", strict=True, **shrunk)
    return upright(rgb, image.getexif().get(0x0112, 1))


def upright(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """``rgb`` turned as EXIF ``orientation`` (1-8) says, as :func:`PIL.ImageOps.exif_transpose` turns it."""
    turned = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.rot90(a, -1)[::-1],
        8: lambda a: np.rot90(a, 1),
    }.get(orientation)
    return np.ascontiguousarray(turned(rgb)) if turned else rgb


def load_rgb_opencv(path: str | Path) -> np.ndarray:
    """Decode a plain RGB JPEG with OpenCV: about 25% faster than PIL on the resized cache.

    Only for files this package wrote itself (the cache): OpenCV treats odd colour modes (CMYK,
    palette, alpha) differently from PIL and reports a truncated file with a warning, not an error.
    Anything OpenCV cannot read goes through :func:`load_rgb`, which raises a clear error.
    """
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        return load_rgb(path)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class CheckedPhoto:
    """A file that decoded completely: its full size and mode, and its pixels at reduced scale."""

    width: int
    height: int
    mode: str
    rgb: np.ndarray


def decode_or_problem(
    path: str | Path, draft_side: int = 64
) -> tuple[CheckedPhoto | None, tuple[str, str] | None]:
    """The one rule for "this file is a usable image" (the folder scan and the audit both apply it): the
    photo, or ``(kind, detail)`` of why not: ``not_an_image``, ``truncated`` or ``undecodable``.

    JPEGs are decoded at reduced scale (``draft_side``; the decoder still reads every byte, so a truncated
    file is caught), which makes checking a whole dataset several times faster than a full decode.
    """
    try:
        with Image.open(path) as image:
            width, height, mode = *image.size, image.mode
            if image.format == "JPEG":
                image.draft(image.mode, (draft_side, draft_side))
            rgb = np.asarray(to_rgb(image))
    except UnidentifiedImageError:
        return None, ("not_an_image", "not a file format any image decoder recognises")
    except OSError as error:
        kind = "truncated" if "truncated" in str(error).lower() else "undecodable"
        return None, (kind, f"{type(error).__name__}: {error}")
    except Exception as error:  # PIL also raises SyntaxError, ValueError, DecompressionBombError...
        return None, ("undecodable", f"{type(error).__name__}: {error}")
    if min(width, height) < 1:
        return None, ("undecodable", "image has no pixels")
    return CheckedPhoto(width, height, mode, rgb), None


def decode_error(path: str | Path) -> str | None:
    """Why ``path`` is not a usable image (:func:`decode_or_problem`), or ``None`` if it is one."""
    problem = decode_or_problem(path)[1]
    return None if problem is None else problem[1]


def decoding_threads(workers: int | None = None) -> int:
    """Threads for decoding many images at once: ``workers`` when given, else twice the cores, at most 8
    (PIL and OpenCV release the GIL while they decode, and the files are read meanwhile)."""
    return workers or min(8, 2 * (os.cpu_count() or 1))
