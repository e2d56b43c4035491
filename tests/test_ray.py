"""``cluster=ray``: a run whose training processes Ray places writes what a local run writes and ends with the
weights of local 2-process DDP. The cluster is a local Ray instance with 2 workers (one CPU each); a real
multi-host cluster adds only where the processes run (docs/performance.md, "Ray")."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch

from tests.conftest import FAST_TRAIN, REPO, make_image_folder

pytestmark = pytest.mark.slow


def run_train(cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "RAY_ADDRESS": ""}
    env.pop("COVERAGE_PROCESS_START", None)
    return subprocess.run(
        [sys.executable, "-m", "mushroom.train", *FAST_TRAIN, *overrides],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]


def test_a_run_on_ray_writes_a_local_runs_outputs_with_the_weights_of_local_ddp(tmp_path: Path) -> None:
    pytest.importorskip("ray.train.lightning", reason="Ray Train is an extra: pip install 'mushroom[ray]'")
    data = make_image_folder(tmp_path / "photos", per_class={"Amanita": 24, "Boletus": 16, "Lactarius": 12})
    common = [f"data.root={data}", "seed=7", "model.optimizer.lr=0.01", "data.val_fraction=0.2",
              "data.batch_size=8", "trainer.max_epochs=2", "logger=csv"]  # fmt: skip
    ddp = run_train(tmp_path, *common, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                    f"hydra.run.dir={tmp_path / 'ddp'}")  # fmt: skip
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    on_ray = run_train(
        tmp_path, *common, "cluster=ray", "cluster.num_workers=2", f"hydra.run.dir={tmp_path / 'ray'}"
    )
    assert on_ray.returncode == 0, (on_ray.stdout + on_ray.stderr)[-3000:]

    run = tmp_path / "ray"
    outputs = {
        path.relative_to(run).as_posix() for path in run.rglob("*") if not path.is_relative_to(run / "ray")
    }
    local = {path.relative_to(tmp_path / "ddp").as_posix() for path in (tmp_path / "ddp").rglob("*")}
    assert outputs == local  # checkpoints, model card, report, predictions, logs: the same files
    assert (run / "ray").is_dir()  # Ray's own records of the run, under cluster.storage_path's default
    assert "Finished on Ray: val/balanced_acc = " in (run / "train.log").read_text()  # rank 0's metrics
    report = (run / "test_metrics.json").read_text()
    assert '"temperature"' in report and '"open_set"' in report  # calibrated on rank 0, then tested

    expected, trained = final_weights(tmp_path / "ddp"), final_weights(run)
    assert expected.keys() == trained.keys()
    for name in expected:
        assert torch.allclose(expected[name].float(), trained[name].float(), atol=1e-6, equal_nan=True), name


def requirements_of(distribution: str) -> list[str]:
    """Names ``distribution`` requires without any extra."""
    names = []
    for requirement in metadata.requires(distribution) or []:
        if "extra ==" in requirement:
            continue
        names.append(re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_the_default_install_does_not_pull_ray() -> None:
    """Neither the package's requirements nor theirs (as installed here) reach Ray: it is an extra."""
    seen, todo = set(), ["mushroom"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            todo.extend(requirements_of(name))
        except metadata.PackageNotFoundError:
            continue
    assert "ray" not in seen and len(seen) > 30  # the walk went through the real dependency tree
    pinned = (REPO / "requirements.txt").read_text()
    assert not re.search(r"^ray\b", pinned, re.MULTILINE)


def test_a_ray_tune_search_of_four_trials_stops_one_early_and_names_the_winner(tmp_path: Path) -> None:
    """The Optuna search's space, sampler and budget, scheduled by Ray Tune: ASHA stops a trial that falls
    behind at epoch 1 (deterministic here: the TPE seed draws the same four trials every time)."""
    pytest.importorskip("ray.tune", reason="Ray Tune is an extra: pip install 'mushroom[ray]'")
    data = make_image_folder(tmp_path / "photos", per_class={"Amanita": 24, "Boletus": 16, "Lactarius": 12})
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "RAY_ADDRESS": ""}
    env.pop("COVERAGE_PROCESS_START", None)
    run = tmp_path / "tune"
    result = subprocess.run(
        [sys.executable, "-m", "mushroom.search", *FAST_TRAIN, f"data.root={data}", "seed=7",
         "data.val_fraction=0.2", "data.batch_size=8", "trainer.max_epochs=3", "hparams_search=ray_tune",
         "search.n_trials=4", "search.metric=val/loss", "search.direction=minimize", f"hydra.run.dir={run}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    summary = re.search(r"Ray Tune search mushroom: (\d+) trials \((\d+) stopped early", output)
    assert summary is not None, output[-3000:]
    assert int(summary[1]) == 4 and int(summary[2]) >= 1
    assert len(list(run.glob("trial_*/config.yaml"))) == 4  # each trial in its own directory
    best = (run / "experiment" / "search_best.yaml").read_text()
    searched = ("lr:", "label_smoothing:", "weight_decay:", "backbone_lr_scale:")  # hparams_search=optuna's
    assert all(key in best for key in searched)
    assert (run / "best_command.txt").read_text().startswith("python -m mushroom.train data=folder")


def test_without_ray_the_extra_is_named_in_one_line() -> None:
    from mushroom.cluster.ray_train import join_ray
    from mushroom.errors import MushroomError

    with pytest.raises(
        MushroomError, match=r"cluster=ray needs Ray \(ray.no_such_part is missing\): pip install"
    ):
        join_ray(None, "cluster=ray", "ray.no_such_part")
