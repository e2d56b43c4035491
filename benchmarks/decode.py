"""Images/s of decoding the photos into RGB arrays at training size: PIL vs OpenCV, full vs reduced.

The pipeline decodes with PIL and lets the JPEG decoder scale down by a power of two while the shorter
side stays at least the resize size (``load_rgb(min_side=...)``); this compares that with the others.

    python benchmarks/decode.py --data ../shared/data/mushrooms-real --min-side 256
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from mushroom.core.images import load_rgb


def pil_full(path: Path, min_side: int) -> np.ndarray:
    return load_rgb(path)


def pil_reduced(path: Path, min_side: int) -> np.ndarray:
    return load_rgb(path, min_side=min_side)


def opencv_full(path: Path, min_side: int) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def opencv_reduced(path: Path, min_side: int) -> np.ndarray:
    """OpenCV's own DCT scaling: decide the factor from the header (read with PIL, no decode)."""
    with Image.open(path) as image:
        scale = min(image.size) / min_side
    flag = cv2.IMREAD_COLOR
    if scale >= 8:
        flag = cv2.IMREAD_REDUCED_COLOR_8
    elif scale >= 4:
        flag = cv2.IMREAD_REDUCED_COLOR_4
    elif scale >= 2:
        flag = cv2.IMREAD_REDUCED_COLOR_2
    return cv2.cvtColor(cv2.imread(str(path), flag), cv2.COLOR_BGR2RGB)


def rate(decode: Callable[[Path, int], np.ndarray], paths: list[Path], min_side: int) -> float:
    start = time.perf_counter()
    for path in paths:
        decode(path, min_side)
    return len(paths) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--min-side", type=int, default=256)
    parser.add_argument("--limit", type=int, default=600)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # as in a DataLoader worker
    paths = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg"})[: args.limit]
    for path in paths:  # warm the page cache so that disk speed is not measured
        path.read_bytes()
    results = {
        name: round(rate(fn, paths, args.min_side), 1)
        for name, fn in [
            ("pil_full", pil_full),
            ("pil_reduced", pil_reduced),
            ("opencv_full", opencv_full),
            ("opencv_reduced", opencv_reduced),
        ]
    }
    print(json.dumps({"images": len(paths), "min_side": args.min_side, "images_per_s": results}, indent=2))


if __name__ == "__main__":
    main()
