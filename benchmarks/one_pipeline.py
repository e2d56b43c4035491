"""One data pipeline: the manifest that ``prepare`` writes and the one training makes in memory (without
``data.prepare.enabled``) must be the same rows, and so the same split. Prints a digest of each, the
split sizes and the seconds each took.

    python benchmarks/one_pipeline.py experiment=real_photos_cpu data.root=../shared/data/mushrooms-real

Any overrides of ``python -m mushroom.train`` apply. Compare the digest across commits to show that a change
left the split of a dataset alone.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from hydra import compose, initialize_config_module

from mushroom.data.kaggle import locate_dataset
from mushroom.data.manifest import Manifest
from mushroom.data.prepare import audit_and_split, prepare_dataset
from mushroom.schemas import data_config


def digest(manifest: Manifest) -> str:
    return hashlib.sha256(json.dumps(manifest.rows, sort_keys=True).encode()).hexdigest()[:16]


def main(overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        with initialize_config_module(config_module="mushroom.configs", version_base="1.3"):
            cfg = compose("train", overrides=[*overrides, f"data.processed_root={scratch}"])
        data = data_config(cfg)
        # No cache: the manifest is what is compared, and resizing every photo would only add time.
        data = replace(data, prepare=replace(data.prepare, enabled=True, cache_size=None))
        start = time.perf_counter()
        prepared = prepare_dataset(data)
        written = Manifest.read(prepared.manifest_path)
        prepare_s = time.perf_counter() - start
        start = time.perf_counter()
        source = locate_dataset(data.kaggle_handle, Path(data.root)) or prepared.source
        in_memory = audit_and_split(data, source)
        memory_s = time.perf_counter() - start
    result = {
        "images": len(written),
        "split": dict(Counter(written.column("split"))),
        "prepare_digest": digest(written),
        "in_memory_digest": digest(in_memory),
        "same": written.rows == in_memory.rows,
        "prepare_s": round(prepare_s, 1),
        "in_memory_s": round(memory_s, 1),
    }
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
