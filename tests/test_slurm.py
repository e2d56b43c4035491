"""SLURM jobs that reach their time limit requeue themselves once and resume where they stopped.

The cluster is simulated: SLURM's variables in the environment, a fake ``scontrol`` on PATH that records
what it is asked, and the signal SLURM sends before the limit (USR1) sent by the run itself mid-epoch. A
real cluster would then kill the job and start the same command again with ``SLURM_RESTART_COUNT=1``;
the test does the same by hand.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.strategies import SingleDeviceStrategy

from mushroom.cluster import slurm
from mushroom.cluster.requeue import JobRequeued, RequeueOnSignal
from mushroom.errors import MushroomError
from tests.conftest import FAST_TRAIN, make_image_folder

SLURM_JOB = {
    "SLURM_JOB_ID": "4242",
    "SLURM_JOB_NAME": "mushroom",
    "SLURM_NTASKS": "1",
    "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0",
    "SLURM_NODEID": "0",
    "SLURM_NODELIST": "localhost",
}


def fake_scontrol(folder: Path, status: int = 0) -> Path:
    """An ``scontrol`` that appends its arguments to ``scontrol.log`` and exits with ``status``."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "scontrol"
    script.write_text(f'#!/bin/sh\necho "$@" >> "{folder}/scontrol.log"\nexit {status}\n')
    script.chmod(0o755)
    return folder / "scontrol.log"


def train(cwd: Path, overrides: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SUBMITIT_", "COVERAGE_"))}
    return subprocess.run(
        [sys.executable, "-m", "mushroom.train", *FAST_TRAIN, *overrides],
        cwd=cwd, capture_output=True, text=True, timeout=300,
        env={**clean, "HF_HUB_OFFLINE": "1", **env},
    )  # fmt: skip


def trained_epochs(log: Path) -> list[int]:
    with (log / "metrics.csv").open() as file:
        return sorted({int(row["epoch"]) for row in csv.DictReader(file) if row.get("train/loss_epoch")})


def last_weights(run: Path) -> dict[str, torch.Tensor]:
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return checkpoint["state_dict"]


@pytest.mark.slow
def test_a_job_signalled_before_its_time_limit_requeues_once_and_ends_as_the_uninterrupted_run(
    tmp_path: Path,
) -> None:
    data = make_image_folder(tmp_path / "photos", per_class={"Amanita": 24, "Boletus": 16, "Lactarius": 12})
    common = [
        f"data.root={data}", "seed=7", "model.optimizer.lr=0.01", "data.val_fraction=0.2",
        "trainer.max_epochs=4", "data.num_workers=2", "callbacks=[model_checkpoint,slurm_requeue]",
        "logger=csv", f"paths.log_dir={tmp_path / 'logs'}",
    ]  # fmt: skip
    whole = train(tmp_path, [*common, f"hydra.run.dir={tmp_path / 'whole'}"], {})
    assert whole.returncode == 0, whole.stderr[-3000:]

    bin_dir = tmp_path / "bin"
    requeues = fake_scontrol(bin_dir)
    job = {**SLURM_JOB, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    # SLURM's warning arrives twice (the batch script and the step both get it) in the first batch of
    # epoch 2; the job stops at the next batch, with 1 of the epoch's 2 batches trained: one requeue.
    signalled = [*common, "+callbacks.signal._target_=tests.helpers.SignalAt", "+callbacks.signal.epoch=2",
                 "+callbacks.signal.batch=0", "+callbacks.signal.times=2"]  # fmt: skip
    first = train(tmp_path, signalled, job)
    run = tmp_path / "logs" / "train" / "runs" / "slurm-4242"  # the job's run dir, the same when requeued
    assert first.returncode == slurm.REQUEUED_EXIT_STATUS, first.stderr[-3000:]
    assert requeues.read_text().splitlines() == ["requeue 4242"]
    assert "requeued (requeue 1 of at most 3)" in first.stdout + first.stderr
    assert not (run / "test_metrics.json").exists()  # stopped, not finished

    again = train(tmp_path, signalled, {**job, "SLURM_RESTART_COUNT": "1"})  # what SLURM starts next
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from" in again.stdout + again.stderr and (run / "test_metrics.json").is_file()
    assert requeues.read_text().splitlines() == ["requeue 4242"]  # the resumed job was not signalled
    assert trained_epochs(run / "csv" / "version_1") == [2, 3]  # resumed, not trained again from the start

    expected, resumed = last_weights(tmp_path / "whole"), last_weights(run)
    assert expected.keys() == resumed.keys()
    for name in expected:
        assert torch.allclose(expected[name].float(), resumed[name].float(), atol=1e-6, equal_nan=True), name


def fake_trainer() -> SimpleNamespace:
    """What the callback reads of a trainer, with Lightning's own one-process strategy."""
    return SimpleNamespace(
        strategy=SingleDeviceStrategy("cpu"), is_global_zero=True, default_root_dir="/runs/x"
    )


@pytest.fixture
def in_a_job(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for key in [k for k in os.environ if k.startswith(("SLURM_", "SUBMITIT_"))]:
        monkeypatch.delenv(key)
    for key, value in SLURM_JOB.items():
        monkeypatch.setenv(key, value)
    bin_dir = tmp_path / "bin"
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return fake_scontrol(bin_dir)


def signalled_callback(max_requeues: int = 3) -> RequeueOnSignal:
    callback = RequeueOnSignal(max_requeues=max_requeues)
    callback.setup(fake_trainer(), None, "fit")  # type: ignore[arg-type]
    os.kill(os.getpid(), signal.SIGUSR1)
    return callback


def test_past_the_cap_the_job_is_not_requeued_and_runs_on(
    in_a_job: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SLURM_RESTART_COUNT", "3")
    callback = signalled_callback(max_requeues=3)
    try:
        callback.on_train_batch_start(fake_trainer(), None, None, 0)  # type: ignore[arg-type]
    finally:
        callback.teardown(fake_trainer(), None, "fit")  # type: ignore[arg-type]
    assert not in_a_job.exists() and "not requeued" in caplog.text


def test_a_failed_requeue_keeps_training(in_a_job: Path, caplog: pytest.LogCaptureFixture) -> None:
    fake_scontrol(in_a_job.parent, status=1)
    callback = signalled_callback()
    try:
        callback.on_train_batch_start(fake_trainer(), None, None, 0)  # type: ignore[arg-type]
    finally:
        callback.teardown(fake_trainer(), None, "fit")  # type: ignore[arg-type]
    assert in_a_job.read_text().splitlines() == ["requeue 4242"]
    assert "is the job requeueable" in caplog.text


def test_the_handler_is_installed_only_in_a_job_outside_submitit_and_restored(
    in_a_job: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = signal.getsignal(signal.SIGUSR1)
    callback = signalled_callback()
    with pytest.raises(JobRequeued) as stopped:
        callback.on_train_batch_start(fake_trainer(), None, None, 0)  # type: ignore[arg-type]
    assert stopped.value.code == slurm.REQUEUED_EXIT_STATUS
    callback.on_train_batch_start(fake_trainer(), None, None, 1)  # type: ignore[arg-type]  # once only
    callback.teardown(fake_trainer(), None, "fit")  # type: ignore[arg-type]
    assert signal.getsignal(signal.SIGUSR1) == before
    assert in_a_job.read_text().splitlines() == ["requeue 4242"]

    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")  # submitit requeues: the callback stands aside
    standing_aside = RequeueOnSignal()
    standing_aside.setup(fake_trainer(), None, "fit")  # type: ignore[arg-type]
    assert signal.getsignal(signal.SIGUSR1) == before


def test_an_unknown_signal_is_named() -> None:
    with pytest.raises(MushroomError, match="SIGUSR1"):
        RequeueOnSignal(signal_name="USR1")


def test_run_names_and_resume_paths(in_a_job: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert slurm.run_name("2026-12-04_10-00-00") == "slurm-4242"
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "4240")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    assert slurm.run_name("x") == "slurm-4240_2" and slurm.job_id() == "4240_2"  # each array task its own

    run = tmp_path / "run"
    assert slurm.requeued_resume_path(run) is None  # first start: a fresh run, even with a last.ckpt
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert slurm.requeued_resume_path(run) is None
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    assert slurm.requeued_resume_path(run) == str(run / "checkpoints" / "last.ckpt")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "not a number")
    assert slurm.restart_count() == 0

    for key in [k for k in os.environ if k.startswith("SLURM_")]:
        monkeypatch.delenv(key)
    assert slurm.run_name("2026-12-04_10-00-00") == "2026-12-04_10-00-00"
    assert slurm.requeued_resume_path(run) is None
