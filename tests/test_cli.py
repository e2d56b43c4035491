"""The commands users type, run as subprocesses from another directory: outputs and clean errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import make_image_folder
from tests.helpers import run_module

pytestmark = pytest.mark.slow  # end to end: subprocesses of the package's own commands


def test_train_then_evaluate_from_any_directory(tmp_path: Path) -> None:
    data = make_image_folder(tmp_path / "photos", per_class=16, size=(48, 48))
    run_dir = tmp_path / "run"
    train = run_module(
        "mushroom.train",
        "experiment=smoke",
        f"data.root={data}",
        "data.image_size=32",
        "data.num_workers=0",
        "trainer.max_epochs=1",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        measured=False,  # the same code is measured in-process (test_train); tracing it here costs ~15 s
    )
    assert train.returncode == 0, train.stderr[-3000:]
    assert (run_dir / "checkpoints" / "best.ckpt").is_file() and (run_dir / "test_metrics.json").is_file()
    assert (run_dir / "train.log").is_file()
    assert "print(" not in train.stdout
    console = train.stdout + train.stderr
    # Lightning's lines once each on the console (its own handler printed them a second time) and in the log
    for line in ("Seed set to 42", "GPU available: False"):
        assert console.count(line) == 1, console[-3000:]
        assert line in (run_dir / "train.log").read_text()

    metrics = tmp_path / "eval" / "metrics.json"
    evaluate = run_module(
        "mushroom.evaluate",
        f"model_path={run_dir}/checkpoints/best.ckpt",
        "data=folder",
        f"data.root={data}",
        f"metrics_path={metrics}",
        "data.num_workers=0",
        f"hydra.run.dir={tmp_path / 'eval'}",
        cwd=tmp_path,
        measured=False,
    )
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    assert json.loads(metrics.read_text())["n_images"] == 48


def test_missing_data_folder_is_one_clear_line_not_a_traceback(tmp_path: Path) -> None:
    result = run_module(
        "mushroom.train",
        "experiment=smoke",
        f"data.root={tmp_path / 'missing'}",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "does not exist" in output and "data.root" in output
    assert "Traceback" not in output
