"""Bar of the training spine: train `experiment=real_photos_cpu` on the shared real photos,
time it, and report the test-split figures (and, with --external DIR, the figures on a further folder).

    python benchmarks/real_photos.py --data ../shared/data/mushrooms-real \
        --hf-cache ../shared/weights/hf-cache
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def run(args: list[str], env: dict[str, str]) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run(args, check=True, env=env)


def hub_env(hf_cache: Path | None) -> dict[str, str]:
    """This environment, reading pretrained weights offline from ``hf_cache`` when given."""
    env = dict(os.environ)
    if hf_cache:
        env.update(HF_HUB_CACHE=str(hf_cache.resolve()), HF_HUB_OFFLINE="1")
    return env


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="class folders of real photos")
    parser.add_argument("--hf-cache", type=Path, help="Hugging Face hub cache with the lite0 weights")
    parser.add_argument("--external", type=Path, help="further real photos to evaluate the checkpoint on")
    parser.add_argument("--out", type=Path, default=Path("logs/benchmarks/real_photos_cpu"))
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for the training run")
    args = parser.parse_args()

    env = hub_env(args.hf_cache)
    out = args.out.resolve()
    start = time.perf_counter()
    run(
        [
            sys.executable,
            "-m",
            "mushroom.train",
            "experiment=real_photos_cpu",
            f"data.root={args.data.resolve()}",
            f"hydra.run.dir={out}",
            *args.overrides,
        ],
        env,
    )
    minutes = (time.perf_counter() - start) / 60
    test = json.loads((out / "test_metrics.json").read_text())
    summary = {
        "train_and_test_minutes": round(minutes, 2),
        "test_images": test["n_images"],
        "test_accuracy": round(test["accuracy"], 4),
        "test_balanced_accuracy": round(test["balanced_accuracy"], 4),
        "test_macro_f1": round(test["macro_f1"], 4),
    }
    if args.external:
        metrics_path = out / "external_metrics.json"
        run(
            [
                sys.executable,
                "-m",
                "mushroom.evaluate",
                f"model_path={out / 'checkpoints' / 'best.ckpt'}",
                "data=folder",
                f"data.root={args.external.resolve()}",
                f"metrics_path={metrics_path}",
                f"hydra.run.dir={out / 'external'}",
            ],
            env,
        )
        external = json.loads(metrics_path.read_text())
        summary |= {
            "external_images": external["n_images"],
            "external_balanced_accuracy": round(external["balanced_accuracy"], 4),
        }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
