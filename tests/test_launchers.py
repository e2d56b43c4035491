"""Hydra launchers for clusters: the shipped SLURM config, and the same submitit code path run locally."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import compose_config
from tests.helpers import run_module


@pytest.mark.usefixtures("hydra_init")
def test_the_slurm_launcher_config_builds_on_submitit(tmp_path: Path) -> None:
    cfg = compose_config(
        "train", ["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "data.root=/photos"], tmp_path
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.tasks_per_node) == ("gpu", 1, 1)
    assert launcher.array_parallelism == 8 and launcher.timeout_min == 240


@pytest.mark.slow
def test_a_two_job_multirun_through_submitit(toy_folder: Path, tmp_path: Path) -> None:
    """hydra/launcher=submitit_local: the code path of submitit_slurm (pickled jobs, one folder each)."""
    sweep = tmp_path / "sweep"
    done = run_module(
        "mushroom.train",
        "-m",
        "experiment=smoke",
        f"data.root={toy_folder}",
        "data.image_size=32",
        "data.num_workers=0",
        "trainer.max_epochs=1",
        "callbacks=[model_checkpoint]",
        "data.fold=0,1",
        "hydra/launcher=submitit_local",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        measured=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for job, fold in (("0", 0), ("1", 1)):
        assert (sweep / job / "test_metrics.json").is_file()
        assert OmegaConf.load(sweep / job / "config.yaml").data.fold == fold
    submitted = [p for p in (sweep / ".submitit").iterdir() if p.name.isdigit()]
    assert len(submitted) == 2  # one submitit job per run, as sbatch array tasks would be
