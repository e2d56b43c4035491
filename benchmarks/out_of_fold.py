"""The yardstick: out-of-fold figures of a recipe on the shared real photos, in two views, with 95%
bootstrap intervals, and (with --before) the paired comparison against another recipe's folds.

    python benchmarks/out_of_fold.py --data ../shared/data/mushrooms-real \
        --hf-cache ../shared/weights/hf-cache --out logs/oof/base   # the shipped recipe
    python benchmarks/out_of_fold.py ... --out logs/oof/tpr99 --before logs/oof/base \
        calibration.open_set_tpr=0.99

Views: ``random`` holds duplicate groups out at random (within sources); ``source`` holds whole source
families out (``data.prepare.split_by_source=true``), which predicts what photos from new sources get.
Each view trains ``--folds`` fold models of ``experiment=real_photos_cpu`` plus the overrides and times them.
Each ``--slice`` file (by default ``slices/agaricus_in_the_wild.txt`` beside this script, when --data holds
its photos) is judged alone too: ``python -m mushroom.cv DIR --slice FILE``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from real_photos import hub_env, run  # beside this script

from mushroom.cv import read_slice

VIEWS = {"random": [], "source": ["data.prepare.split_by_source=true"]}
SLICES = Path(__file__).resolve().parent / "slices"
SHOWN = (
    "accuracy",
    "balanced_accuracy",
    "recall/Agaricus",
    "recall/Lactarius",
    "dangerous_rate",
    "answered",
    "accuracy_answered",
    "dangerous_rate_answered",
    "said_not_a_mushroom",
    "not_mushroom/answered_with_genus",
    "other_genus/answered_with_genus",
)


def holds(data: Path, slice_file: Path) -> bool:
    """Whether every photo ``slice_file`` lists is under ``data`` (a slice of these photos, not of others)."""
    return all((data / photo).is_file() for photo in read_slice(slice_file))


def judged(env: dict[str, str], folder: Path, report: str, *options: str) -> dict:
    """``python -m mushroom.cv OPTIONS``, then the SHOWN figures of the ``report`` it wrote in ``folder``."""
    run([sys.executable, "-m", "mushroom.cv", *options], env)
    figures = json.loads((folder / report).read_text())["figures"]
    return {k: figures[k] for k in SHOWN if k in figures}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="class folders of real photos")
    parser.add_argument("--hf-cache", type=Path, help="Hugging Face hub cache with the pretrained weights")
    parser.add_argument("--out", type=Path, default=Path("logs/oof/latest"))
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--views", default="random,source", help="comma-separated: random, source")
    parser.add_argument("--before", type=Path, help="another recipe's --out: paired comparison per view")
    parser.add_argument(
        "--slice",
        type=Path,
        action="append",
        help="a file of photos to judge alone (repeatable; default: the slices/ whose photos --data holds)",
    )
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every fold")
    args = parser.parse_args()
    slices = args.slice or [path for path in sorted(SLICES.glob("*.txt")) if holds(args.data, path)]

    env = hub_env(args.hf_cache)
    summary: dict[str, dict] = {}
    for view in args.views.split(","):
        out = (args.out / view).resolve()
        start = time.perf_counter()
        run(
            [
                sys.executable,
                "-m",
                "mushroom.train",
                "-m",
                "experiment=real_photos_cpu",
                f"data.root={args.data.resolve()}",
                f"data.name=oof-{view}",  # each view its own manifest and cache
                f"data.num_folds={args.folds}",
                "data.fold=" + ",".join(map(str, range(args.folds))),
                f"hydra.sweep.dir={out}",
                "hydra.sweep.subdir=fold_${data.fold}",
                *VIEWS[view],
                *args.overrides,
            ],
            env,
        )
        minutes = (time.perf_counter() - start) / 60
        summary[view] = {
            "minutes": round(minutes, 1),
            "figures": judged(env, out, "oof_metrics.json", str(out)),
        }
        before = str((args.before / view).resolve()) if args.before else None
        if before:
            summary[view]["paired"] = judged(env, out, "comparison.json", before, "--compare", str(out))
        for listed in slices:
            name, where = f"slice {listed.stem}", ("--slice", str(listed))
            summary[view][name] = judged(env, out, f"slice_{listed.stem}.json", str(out), *where)
            if before:
                summary[view][name]["paired"] = judged(
                    env, out, f"comparison_{listed.stem}.json", before, "--compare", str(out), *where
                )
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
