"""Callbacks that tests plug into real training runs through Hydra (``+callbacks.x._target_=...``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import lightning as L

import mushroom


class RecordTrainIndices(L.Callback):
    """Write the dataset indices this rank will train on in the first epoch to ``rank<N>.json``."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch != 0:
            return
        sampler = trainer.train_dataloader.sampler  # type: ignore[union-attr]
        # EpochSampler yields (epoch, index) pairs, which the distributed wrapper passes on as they are.
        indices = [int(i[1]) if isinstance(i, tuple) else int(i) for i in sampler]
        path = Path(trainer.default_root_dir) / f"rank{trainer.global_rank}.json"
        record = {"world_size": trainer.world_size, "indices": indices, "package": mushroom.__file__}
        path.write_text(json.dumps(record))


class RecordFinalWeights(L.Callback):
    """Write this rank's node, rank and a checksum of its weights after fitting to ``weights<N>.json``."""

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        total = sum(float(p.detach().double().sum()) for p in pl_module.parameters())
        record = {"node": trainer.node_rank, "rank": trainer.global_rank, "world_size": trainer.world_size}
        record["checksum"] = round(total, 9)
        (Path(trainer.default_root_dir) / f"weights{trainer.global_rank}.json").write_text(json.dumps(record))


class KillAt(L.Callback):
    """SIGKILL this process at the start of batch ``batch`` of epoch ``epoch``: no handler runs, no
    checkpoint is written, as when a job is killed or a node is lost."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch = epoch
        self.batch = batch

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: object, batch_idx: int
    ) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), signal.SIGKILL)


class SignalAt(L.Callback):
    """Send this process ``signal_name`` ``times`` times at the start of batch ``batch`` of epoch ``epoch``,
    as SLURM does before a job's time limit; only in a job's first start (``SLURM_RESTART_COUNT`` unset or 0),
    since a requeued job runs the same command."""

    def __init__(self, epoch: int, batch: int, signal_name: str = "SIGUSR1", times: int = 1) -> None:
        self.epoch, self.batch, self.times = epoch, batch, times
        self.signal = signal.Signals[signal_name]

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: object, batch_idx: int
    ) -> None:
        first_start = os.environ.get("SLURM_RESTART_COUNT", "0") == "0"
        if first_start and trainer.current_epoch == self.epoch and batch_idx == self.batch:
            for _ in range(self.times):
                os.kill(os.getpid(), self.signal)


class RunAtEpochEnd(L.Callback):
    """Run ``script`` once, at the end of training epoch ``epoch``: something in the world changes while a
    run trains (a database goes away)."""

    def __init__(self, script: str, epoch: int) -> None:
        self.script, self.epoch, self.done = script, epoch, False

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch and not self.done:
            self.done = True
            subprocess.run([self.script], check=True, timeout=120)
