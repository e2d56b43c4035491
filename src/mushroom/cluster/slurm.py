"""SLURM jobs that outlive their time limit: requeue at SLURM's warning signal, resume from ``last.ckpt``.

This module is what the configs and ``train`` read (no PyTorch); the callback is in
:mod:`mushroom.cluster.requeue`.

SLURM sends a signal some time before a job's time limit or its preemption (``#SBATCH --signal=USR1@120``;
the Hydra launcher's ``signal_delay_s``). :class:`~mushroom.cluster.requeue.RequeueOnSignal` then asks
SLURM to requeue the job, once per interruption and at most ``max_requeues`` times in all, and stops the
run at the next batch without writing a checkpoint; the requeued job finds the same run directory
(:func:`run_name`) and resumes from the last epoch's ``last.ckpt`` (:func:`requeued_resume_path`).
Resuming from an epoch's end is what makes the requeued run end with the weights of a run that was never
interrupted (``mushroom.data.sampling``); the work since that epoch's end is done again.

Under the Hydra submitit launcher, submitit handles the signal and requeues the job itself (its
``max_num_timeout`` is the cap), so the callback stands aside; the resume is the same.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

#: The exit status of a run stopped because its job was requeued (sysexits' EX_TEMPFAIL: try again
#: later), so that a script's next step (``&& python -m mushroom.export``) does not run on a half run.
REQUEUED_EXIT_STATUS = 75


def job_id() -> str | None:
    """This SLURM job's id as ``scontrol`` takes it (``<array job>_<task>`` for an array task), or None."""
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"{array_job}_{task}"
    return os.environ.get("SLURM_JOB_ID") or None


def restart_count() -> int:
    """How many times SLURM has requeued this job (``SLURM_RESTART_COUNT``; 0 on its first start)."""
    try:
        return int(os.environ.get("SLURM_RESTART_COUNT", "0"))
    except ValueError:
        return 0


def under_submitit() -> bool:
    return "SUBMITIT_EXECUTOR" in os.environ


def run_name(otherwise: str) -> str:
    """The run directory's name: ``slurm-<job id>`` in a SLURM job, so that a requeued job writes where
    it wrote before; ``otherwise`` (a timestamp) elsewhere."""
    job = job_id()
    return f"slurm-{job}" if job else otherwise


def requeued_resume_path(output_dir: Path) -> str | None:
    """``last.ckpt`` of this run directory when this process is a requeued SLURM job that has one."""
    if job_id() is None or restart_count() == 0:
        return None
    last = output_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        log.warning("SLURM job %s was requeued before any epoch ended: training starts again.", job_id())
        return None
    log.info("SLURM job %s was requeued (%d times): resuming from %s", job_id(), restart_count(), last)
    return str(last)
