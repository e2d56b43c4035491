"""``python -m mushroom.search``: Optuna trials that train, prune, share a study and name the winner."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf

from mushroom.errors import MushroomError
from mushroom.search import open_storage, suggest, trial_config
from tests.conftest import compose_config
from tests.test_cli import run_module

QUICK = ["experiment=smoke", "data.image_size=32", "data.num_workers=0", "callbacks=[model_checkpoint]"]


def run_search(*overrides: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    env.pop("COVERAGE_PROCESS_START", None)
    return subprocess.Popen(
        [sys.executable, "-m", "mushroom.search", *QUICK, *overrides],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_space_is_drawn_per_config_key_and_checked() -> None:
    trial = optuna.create_study().ask()
    space = {
        "lr": {"key": "model.optimizer.lr", "type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "size": {"key": "data.image_size", "type": "int", "low": 32, "high": 64, "step": 32},
        "smooth": {"key": "model.label_smoothing", "type": "categorical", "choices": [0.0, 0.1]},
    }
    params = suggest(trial, space)
    assert 1e-4 <= params["model.optimizer.lr"] <= 1e-2 and params["data.image_size"] in (32, 64)
    assert params["model.label_smoothing"] in (0.0, 0.1)
    with pytest.raises(MushroomError, match=re.escape("search.space.lr: type 'loguniform'")):
        suggest(trial, {"lr": {"key": "model.optimizer.lr", "type": "loguniform", "low": 1, "high": 2}})
    with pytest.raises(MushroomError, match=re.escape("search.space.lr has no key")):
        suggest(trial, {"lr": {"type": "float", "low": 1, "high": 2}})


@pytest.mark.usefixtures("hydra_init")
def test_a_trial_config_sets_its_values_and_refuses_unknown_keys(tmp_path: Path) -> None:
    cfg = compose_config("search", ["data=folder", "data.root=/photos"], tmp_path)
    trial_cfg = trial_config(cfg, {"model.optimizer.lr": 0.5}, tmp_path / "trial_3")
    assert trial_cfg.model.optimizer.lr == 0.5 and trial_cfg.paths.output_dir == str(tmp_path / "trial_3")
    assert cfg.model.optimizer.lr != 0.5  # the search config itself is untouched
    with pytest.raises(MushroomError, match=re.escape("model.lrr")):
        trial_config(cfg, {"model.lrr": 0.5}, tmp_path)


def test_storage_urls_and_journal_files(tmp_path: Path) -> None:
    assert open_storage(None) is None
    assert open_storage("sqlite:///x.db") == "sqlite:///x.db"
    journal = open_storage(str(tmp_path / "shared" / "study.journal"))
    assert isinstance(journal, optuna.storages.JournalStorage)


@pytest.mark.slow
def test_the_readme_search_names_its_best_trial_as_a_runnable_experiment(
    toy_folder: Path, tmp_path: Path
) -> None:
    """The README's command (4 trials of the smoke experiment), with a study in SQLite to read back."""
    run = tmp_path / "search"
    readme = ["experiment=smoke", f"data.root={toy_folder}", "search.n_trials=4"]
    done = run_module(
        "mushroom.search",
        *readme,
        "data.num_workers=0",
        f"hydra.run.dir={run}",
        f"search.storage=sqlite:///{tmp_path / 'study.db'}",
        cwd=tmp_path,
        measured=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    study = optuna.load_study(study_name="mushroom", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    finished = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert study.best_value == max(t.value for t in finished)
    assert {p.name for p in run.iterdir() if p.name.startswith("trial_")} == {f"trial_{n}" for n in range(4)}

    best = OmegaConf.load(run / "experiment" / "search_best.yaml")
    assert (
        best.model.optimizer.lr == study.best_params["model.optimizer.lr"]
        and "/experiment/smoke" in best.defaults
    )
    composed = run_module(
        "mushroom.train",
        "--config-dir",
        str(run),
        "experiment=search_best",
        "--cfg",
        "job",
        cwd=tmp_path,
        measured=False,
    )
    assert composed.returncode == 0, composed.stderr[-2000:]
    job = OmegaConf.create(composed.stdout)
    assert job.model.optimizer.lr == study.best_params["model.optimizer.lr"] and job.model.name == "small_cnn"
    assert job.data.root == str(toy_folder) and job.data.image_size == 64  # the smoke experiment's own
    command = (run / "best_command.txt").read_text()
    assert command.startswith("python -m mushroom.train experiment=smoke") and "search." not in command


@pytest.mark.slow
def test_two_workers_share_one_journal_study_and_prune(toy_folder: Path, tmp_path: Path) -> None:
    """Two processes, one journal file: trial numbers are never handed out twice, both workers run trials,
    and a trial below the pruner's threshold at epoch 2 stops there instead of training on."""
    journal = tmp_path / "shared" / "study.journal"
    workers = [
        run_search(
            f"data.root={toy_folder}",
            "trainer.max_epochs=4",
            "search.n_trials=8",
            f"search.storage={journal}",
            "search.pruner._target_=optuna.pruners.ThresholdPruner",
            "~search.pruner.n_startup_trials",
            "+search.pruner.lower=1.01",  # nothing reaches it: every trial is pruned after warm-up
            "search.pruner.n_warmup_steps=1",
            f"hydra.run.dir={tmp_path / f'worker{i}'}",
            cwd=tmp_path,
        )
        for i in range(2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err[-3000:]
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    trials = optuna.load_study(study_name="mushroom", storage=storage).trials
    numbers = [trial.number for trial in trials]
    assert sorted(numbers) == list(range(len(trials))) and 8 <= len(trials) <= 9  # one may start at the edge
    assert len({trial.user_attrs["worker"] for trial in trials}) == 2
    assert all(trial.state.name == "PRUNED" for trial in trials)
    assert {max(trial.intermediate_values) for trial in trials} == {1}  # stopped after epoch 2 of 4
