"""Seconds for one training epoch of data loading (decode + augment + collate, no model), read from
the original photos and from the resized cache that ``python -m mushroom.data.prepare`` builds.

    python benchmarks/data_loading.py --data ../shared/data/mushrooms-real --cache-size 256
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mushroom.data import MushroomDataModule


def epoch_seconds(dm: MushroomDataModule, epochs: int) -> float:
    """Best of ``epochs`` passes over the training loader (the first also starts the workers)."""
    loader = dm.train_dataloader()
    best = float("inf")
    for _ in range(epochs):
        start = time.perf_counter()
        for _batch in loader:
            pass
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cache-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--processed-root", type=Path, default=Path("data/processed"))
    args = parser.parse_args()

    results: dict[str, object] = {}
    for label, prepare in (
        ("originals", {"enabled": False}),
        (f"cache_{args.cache_size}", {"enabled": True, "cache_size": args.cache_size}),
    ):
        dm = MushroomDataModule(
            args.data,
            image_size=args.image_size,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            processed_root=args.processed_root,
            prepare=prepare,
        )
        start = time.perf_counter()
        dm.prepare_data()
        dm.setup("fit")
        results[f"{label}_setup_s"] = round(time.perf_counter() - start, 2)
        seconds = epoch_seconds(dm, args.epochs)
        images = len(dm.index_and_split()[1].train)
        results[f"{label}_epoch_s"] = round(seconds, 2)
        results[f"{label}_img_s"] = round(images / seconds, 1)
        results["num_workers"] = dm.num_workers
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
