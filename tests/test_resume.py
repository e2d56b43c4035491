"""A run killed mid-epoch and resumed from its last checkpoint ends exactly where the uninterrupted run ends.

It used to continue from the right epoch but as a different run (epoch-2 train loss 0.984 resumed vs
1.142 uninterrupted, other test metrics and temperature): shuffling, augmentation and dropout restarted
from the seed. Now every stream is drawn from (seed, epoch) (``mushroom.data.sampling``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from tests.conftest import FAST_TRAIN, make_image_folder
from tests.helpers import run_module

pytestmark = pytest.mark.slow  # three training runs in subprocesses, one of them killed

EPOCHS = 4


def train(out: Path, *extra: str) -> int:
    result = run_module(
        "mushroom.train", *FAST_TRAIN, *extra, f"trainer.max_epochs={EPOCHS}", "logger=csv",
        f"hydra.run.dir={out}", cwd=out.parent, measured=False,
    )  # fmt: skip
    return result.returncode


def epoch_losses(out: Path) -> dict[int, float]:
    """Training loss per epoch, from every CSV log of the run (a resumed run writes a second one)."""
    losses = {}
    for path in sorted((out / "csv").glob("version_*/metrics.csv")):
        with path.open() as file:
            for row in csv.DictReader(file):
                if row.get("train/loss_epoch"):
                    losses[int(row["epoch"])] = float(row["train/loss_epoch"])
    return losses


@pytest.mark.parametrize(
    ("balanced", "loading"),
    [
        (False, ["data.num_workers=0"]),
        (True, ["data.num_workers=2", "data.persistent_workers=true"]),
        (False, ["data.num_workers=2", "data.persistent_workers=false"]),
    ],
    ids=["shuffled", "class-balanced-2-persistent-workers", "shuffled-2-workers"],
)
def test_a_killed_and_resumed_run_ends_where_the_uninterrupted_run_ends(
    tmp_path: Path, balanced: bool, loading: list[str]
) -> None:
    data = make_image_folder(tmp_path / "photos", per_class={"Amanita": 24, "Boletus": 16, "Lactarius": 12})
    sampling = f"data.balanced_sampling={str(balanced).lower()}"
    common = [f"data.root={data}", sampling, *loading, "seed=7", "model.optimizer.lr=0.01"]
    common.append("data.val_fraction=0.2")

    assert train(tmp_path / "whole", *common) == 0

    kill = [
        "+callbacks.kill._target_=tests.helpers.KillAt",
        "+callbacks.kill.epoch=2",
        "+callbacks.kill.batch=1",
    ]
    assert train(tmp_path / "resumed", *common, *kill) == -9  # SIGKILL in the middle of epoch 2
    assert not (tmp_path / "resumed" / "test_metrics.json").exists()
    assert train(tmp_path / "resumed", *common, "ckpt_path=last") == 0

    whole, resumed = epoch_losses(tmp_path / "whole"), epoch_losses(tmp_path / "resumed")
    assert sorted(whole) == sorted(resumed) == list(range(EPOCHS))
    assert resumed == pytest.approx(whole, rel=1e-6, abs=1e-7)  # epochs 2 and 3 trained again, the same
    assert len(set(whole.values())) == EPOCHS  # the losses do move: the comparison means something

    metrics = [json.loads((tmp_path / run / "test_metrics.json").read_text()) for run in ("whole", "resumed")]
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "ece"):
        assert metrics[1][key] == pytest.approx(metrics[0][key], rel=1e-6, abs=1e-7), key
    assert metrics[1]["calibration"] == pytest.approx(metrics[0]["calibration"], rel=1e-5)
    assert metrics[1]["confusion_matrix"] == metrics[0]["confusion_matrix"]
    weights = [
        torch.load(tmp_path / run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)[
            "state_dict"
        ]
        for run in ("whole", "resumed")
    ]
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        assert torch.allclose(
            weights[0][name].float(), weights[1][name].float(), atol=1e-6, equal_nan=True
        ), name
