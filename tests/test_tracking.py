"""The test report reaches W&B (``mushroom.tracking``): its three pictures and a table of sample predictions
are logged to a real W&B run (offline: files on disk); other loggers are left alone."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from omegaconf import OmegaConf

from mushroom.tracking import send_report_to_loggers


def test_pictures_and_sample_predictions_go_to_wandb(
    trained_run: tuple[Path, dict[str, float]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run, _ = trained_run
    report_path = run / "test_metrics.json"
    report = json.loads(report_path.read_text())
    names = report["class_names"]
    with (run / "test_predictions.csv").open() as file:
        rows = [row for row in csv.DictReader(file) if row["part"] == "test" and row["kind"] == "known"]
    data_root = Path(OmegaConf.load(run / "config.yaml").data.root)
    photos = [data_root / row["photo"] for row in rows]
    labels = np.array([names.index(row["label"]) for row in rows])
    probs = np.array([[float(row[f"p:{name}"]) for name in names] for row in rows])

    wandb_logger = WandbLogger(save_dir=str(tmp_path), project="mushroom-test", offline=True)
    csv_logger = CSVLogger(str(tmp_path / "csv"))
    try:
        send_report_to_loggers(
            [csv_logger, wandb_logger], report, report_path, probs, labels, photos, samples=5
        )
        run_dir = Path(wandb_logger.experiment.dir)
    finally:
        wandb_logger.experiment.finish()
    images = sorted(p.name.rsplit("_", 2)[0] for p in (run_dir / "media" / "images" / "test").glob("*.png"))
    assert images == ["confusion_matrix", "mistakes", "reliability"]
    (table,) = (run_dir / "media" / "table" / "test").glob("sample_predictions_*.table.json")
    logged = json.loads(table.read_text())
    assert logged["columns"] == ["image", "true", "predicted", "confidence"] and len(logged["data"]) == 5
    assert {row[1] for row in logged["data"]} <= set(names)
    assert not (tmp_path / "csv").exists()  # the CSV logger was given nothing
