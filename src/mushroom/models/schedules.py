"""Learning-rate schedules, built from the ``scheduler`` config group (``_partial_: true``).

Each is called by :meth:`MushroomClassifier.configure_optimizers` with the optimizer and the run's length
in optimizer steps (only the Trainer knows it), and is stepped once per optimizer step. The keys each
takes, and their defaults, are in ``configs/scheduler/<name>.yaml``.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Learning-rate factor: linear warm-up to 1, then cosine decay to ``min_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_steps_for(warmup_epochs: float, total_steps: int, steps_per_epoch: float) -> int:
    """``warmup_epochs`` in steps, leaving at least one step of decay."""
    steps = round(warmup_epochs * steps_per_epoch)
    return min(steps, total_steps - 1) if total_steps > 1 else 0


def warmup_cosine(
    optimizer: Optimizer,
    *,
    total_steps: int,
    steps_per_epoch: float,
    warmup_epochs: float,
    min_lr_ratio: float,
) -> LRScheduler:
    """Linear warm-up over ``warmup_epochs``, then cosine decay to ``min_lr_ratio`` x each group's lr."""
    warmup = warmup_steps_for(warmup_epochs, total_steps, steps_per_epoch)
    return LambdaLR(optimizer, lambda step: warmup_cosine_factor(step, warmup, total_steps, min_lr_ratio))


def one_cycle(
    optimizer: Optimizer,
    *,
    total_steps: int,
    steps_per_epoch: float,
    pct_start: float,
    div_factor: float,
    final_div_factor: float,
) -> LRScheduler:
    """Smith's one-cycle policy peaking at each parameter group's lr (so the backbone's stays scaled)."""
    return OneCycleLR(
        optimizer,
        max_lr=[group["lr"] for group in optimizer.param_groups],
        total_steps=max(1, total_steps),
        pct_start=pct_start,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
    )


def constant(optimizer: Optimizer, *, total_steps: int, steps_per_epoch: float) -> LRScheduler:
    """No schedule: every group keeps its lr for the whole run."""
    return LambdaLR(optimizer, lambda step: 1.0)
