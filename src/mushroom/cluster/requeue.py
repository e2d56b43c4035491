"""The callback that requeues a SLURM job at SLURM's warning signal (see :mod:`mushroom.cluster.slurm`)."""

from __future__ import annotations

import logging
import signal
import subprocess
from types import FrameType
from typing import Any

import lightning as L

from mushroom.cluster.slurm import REQUEUED_EXIT_STATUS, job_id, restart_count, under_submitit
from mushroom.errors import MushroomError

log = logging.getLogger(__name__)


class JobRequeued(SystemExit):
    """Stops the run: the job is requeued and will resume from ``last.ckpt``."""


class RequeueOnSignal(L.Callback):
    """Requeue this SLURM job when SLURM signals that its time is up, then stop the run at the next batch.

    The signal handler only takes note: the requeue and the stop wait for the start of a batch, where no
    checkpoint is being written, and every process of a multi-process run stops at the same batch (the
    note is shared across ranks). A second signal for the same interruption does nothing; a job that was
    requeued ``max_requeues`` times already is left to run until SLURM ends it.
    """

    def __init__(self, max_requeues: int = 3, signal_name: str = "SIGUSR1") -> None:
        if signal_name not in signal.Signals.__members__:
            raise MushroomError(
                f"callbacks.slurm_requeue.signal_name={signal_name!r} is not a signal: use the one sbatch "
                "--signal sends, such as SIGUSR1 (--signal=USR1@120)."
            )
        self.max_requeues = max_requeues
        self.signal_name = signal_name
        self.signal = signal.Signals[signal_name]
        self._signalled = False
        self._handled = False
        self._previous: Any = None
        self._installed = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Installed before Lightning registers its own handlers, which then leave this signal alone (its
        # own requeue saves a checkpoint in the middle of an epoch, from which a resume is not exact).
        if stage != "fit" or job_id() is None or under_submitit():
            return
        try:
            self._previous = signal.signal(self.signal, self._note)
        except ValueError:  # not the main thread: the signal cannot be caught here
            return
        self._installed = True

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._installed:
            signal.signal(self.signal, self._previous)
            self._installed = False

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self._signalled = True

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if not self._installed or self._handled:
            return
        if not trainer.strategy.reduce_boolean_decision(self._signalled, all=False):
            return
        self._handled = True  # one requeue per interruption, however many signals arrive
        job = job_id()
        if restart_count() >= self.max_requeues:
            log.warning(
                "SLURM signalled job %s, which was requeued %d times already (callbacks.slurm_requeue."
                "max_requeues=%d): not requeued; it runs on until SLURM ends it. Resume it by hand with "
                "hydra.run.dir=%s ckpt_path=last.",
                job, restart_count(), self.max_requeues, trainer.default_root_dir,
            )  # fmt: skip
            return
        # Rank 0 requeues; every rank learns whether it did, so that all stop or all train on together.
        requeued = self._requeue(str(job)) if trainer.is_global_zero else False
        if not trainer.strategy.broadcast(requeued, src=0):
            return
        log.info(
            "SLURM job %s requeued (requeue %d of at most %d); it resumes from the last epoch's last.ckpt.",
            job, restart_count() + 1, self.max_requeues,
        )  # fmt: skip
        raise JobRequeued(REQUEUED_EXIT_STATUS)

    def _requeue(self, job: str) -> bool:
        try:
            result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as error:
            log.error("Could not requeue SLURM job %s (%s): training goes on till SLURM ends it.", job, error)
            return False
        if result.returncode != 0:
            log.error(
                "scontrol requeue %s failed (%s): training goes on until SLURM ends it; is the job "
                "requeueable (sbatch --requeue)?", job, (result.stderr or result.stdout).strip(),
            )  # fmt: skip
            return False
        return True
