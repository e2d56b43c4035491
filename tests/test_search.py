"""``python -m mushroom.search``: Optuna trials that train, prune, share a study and name the winner."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf

from mushroom.cluster.study import StudyLock, open_storage
from mushroom.errors import MushroomError
from mushroom.trials import suggest, trial_config, trial_metric
from tests.conftest import compose_config
from tests.helpers import assert_one_clear_line, run_module

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


def two_workers(tmp_path: Path, *overrides: str) -> None:
    """Start two search workers at once (runs in ``worker0/`` and ``worker1/``); both must succeed."""
    workers = [
        run_search(*overrides, f"hydra.run.dir={tmp_path / f'worker{i}'}", cwd=tmp_path) for i in range(2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err[-3000:]


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
    two_workers(
        tmp_path,
        f"data.root={toy_folder}",
        "trainer.max_epochs=4",
        "search.n_trials=8",
        f"search.storage={journal}",
        "search.pruner._target_=optuna.pruners.ThresholdPruner",
        "~search.pruner.n_startup_trials",
        "+search.pruner.lower=1.01",  # nothing reaches it: every trial is pruned after warm-up
        "search.pruner.n_warmup_steps=1",
    )
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    trials = optuna.load_study(study_name="mushroom", storage=storage).trials
    numbers = [trial.number for trial in trials]
    assert sorted(numbers) == list(range(8))  # exactly the budget, each number once
    assert len({trial.user_attrs["worker"] for trial in trials}) == 2
    assert all(trial.state.name == "PRUNED" for trial in trials)
    assert {max(trial.intermediate_values) for trial in trials} == {1}  # stopped after epoch 2 of 4


@contextmanager
def postgres_server() -> Iterator[tuple[str, list[str]]]:
    """Debian's ``postgresql`` started in a temporary directory (as the ``postgres`` user when the tests run
    as root, since initdb refuses root): its URL and the command that stops it at once."""
    initdb = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not initdb:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql; .ci/run installs it)")
    bin_dir = initdb[-1].parent
    home = Path(tempfile.mkdtemp(prefix="mushroom-postgres-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = home / "data"
    stop = [*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]

    def postgres(*command: str) -> None:
        subprocess.run([*as_postgres, *command], check=True, capture_output=True, timeout=120)

    postgres(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust")
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1"
    postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(home / "log"), "-w", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", stop
    finally:
        subprocess.run(stop, capture_output=True, timeout=120)  # fails harmlessly if stopped already
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server for the module: ``MUSHROOM_TEST_POSTGRES_URL`` if set, else one started here."""
    if url := os.environ.get("MUSHROOM_TEST_POSTGRES_URL"):
        yield url
        return
    with postgres_server() as (url, _):
        yield url


@pytest.mark.slow
def test_two_workers_share_one_postgresql_study_and_run_exactly_the_budget(
    toy_folder: Path, tmp_path: Path, postgres_url: str
) -> None:
    """Two workers start together on a fresh database: one creates the study's tables while the other
    waits, and between them they run the budget exactly, each trial number once."""
    two_workers(
        tmp_path,
        f"data.root={toy_folder}",
        "trainer.max_epochs=2",
        "search.n_trials=5",
        f"search.storage={postgres_url}",
        "search.study_name=shared",
    )
    trials = optuna.load_study(study_name="shared", storage=postgres_url).trials
    assert sorted(trial.number for trial in trials) == list(range(5))
    assert len({trial.user_attrs["worker"] for trial in trials}) == 2
    assert all(trial.state.name in ("COMPLETE", "PRUNED") for trial in trials)


def test_an_unreachable_database_is_named_in_one_line(toy_folder: Path, tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://trainer:s3cret@127.0.0.1:{port}/studies"
    line = assert_one_clear_line(
        "mushroom.search", *QUICK, f"data.root={toy_folder}", f"search.storage={url}", cwd=tmp_path,
        expected=f"postgresql://trainer:***@127.0.0.1:{port}/studies cannot be reached",
    )  # fmt: skip
    assert "s3cret" not in line and "Is the server running" in line


def test_file_locks_sit_beside_the_study(tmp_path: Path) -> None:
    for url, lock in (
        (f"sqlite:///{tmp_path}/a/study.db", tmp_path / "a" / "study.db.study-lock"),
        (str(tmp_path / "b" / "study.journal"), tmp_path / "b" / "study.journal.study-lock"),
    ):
        with StudyLock(url, "mushroom").held():
            assert lock.is_file()
    with StudyLock(None, "mushroom").held():  # in memory: nothing to lock
        pass


@pytest.mark.slow
def test_a_database_lost_while_a_trial_trains_ends_the_worker_in_one_line(
    toy_folder: Path, tmp_path: Path
) -> None:
    """The server goes away after the first epoch of the first trial (its own server, stopped at once):
    the worker says which database it lost and that the finished trials are kept, in one line."""
    with postgres_server() as (url, stop):
        script = tmp_path / "stop_database.sh"
        script.write_text("#!/bin/sh\ncd / && exec " + " ".join(stop) + "\n")
        script.chmod(0o755)
        result = run_module(
            "mushroom.search", *QUICK, f"data.root={toy_folder}", "trainer.max_epochs=3",
            f"search.storage={url}", "+callbacks.lose._target_=tests.helpers.RunAtEpochEnd",
            f"+callbacks.lose.script={script}", "+callbacks.lose.epoch=0",
            f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, measured=False,
        )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output, output[-3000:]
    errors = [line for line in output.splitlines() if "][ERROR]" in line]
    assert len(errors) == 1 and "cannot be reached" in errors[0], output[-3000:]
    assert "run the same command again" in errors[0]


def test_a_trial_metric_that_was_not_logged_is_named() -> None:
    """Both schedulers (Optuna's loop and Ray Tune's trials) take a trial's value through trial_metric."""
    assert trial_metric({"val/loss": 0.5, "val/balanced_acc": 0.8}, "val/balanced_acc") == 0.8
    with pytest.raises(
        MushroomError, match=r"search.metric=val/bal_acc was not logged; logged: val/acc, val/loss"
    ):
        trial_metric({"val/loss": 0.5, "val/acc": 0.7}, "val/bal_acc")
