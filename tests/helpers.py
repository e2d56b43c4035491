"""Callbacks that tests plug into real training runs through Hydra (``+callbacks.x._target_=...``)."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L

import mushroom


class RecordTrainIndices(L.Callback):
    """Write the dataset indices this rank will train on in the first epoch to ``rank<N>.json``."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch != 0:
            return
        sampler = trainer.train_dataloader.sampler  # type: ignore[union-attr]
        indices = [int(i) for i in sampler]
        path = Path(trainer.default_root_dir) / f"rank{trainer.global_rank}.json"
        record = {"world_size": trainer.world_size, "indices": indices, "package": mushroom.__file__}
        path.write_text(json.dumps(record))
