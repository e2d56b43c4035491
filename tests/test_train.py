"""Training end to end with a real Trainer on generated JPEGs: learning, outputs, resume, bad resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from mushroom.errors import MushroomError
from tests.conftest import TRAINED_COUNTS, compose_config, make_image_folder, run_train


def test_small_cnn_learns_the_classes(trained_run: tuple[Path, dict[str, float]]) -> None:
    _, metrics = trained_run
    # Three classes: chance is 0.33; 30% of the test photos are drawn halfway to another class.
    assert metrics["test/balanced_acc"] >= 0.65, metrics


def test_run_dir_holds_checkpoints_config_logs_and_test_report(trained_run: tuple[Path, dict]) -> None:
    out, metrics = trained_run
    assert (out / "checkpoints" / "best.ckpt").is_file() and (out / "checkpoints" / "last.ckpt").is_file()
    assert "model:" in (out / "config.yaml").read_text()
    assert (out / "csv" / "version_0" / "metrics.csv").is_file()
    report = json.loads((out / "test_metrics.json").read_text())
    assert report["balanced_accuracy"] == pytest.approx(metrics["test/balanced_acc"], abs=1e-6)
    # The test split is fold 0 of 5, stratified: a fifth of each class, give or take one photo.
    assert abs(report["n_images"] - sum(TRAINED_COUNTS.values()) / 5) <= len(TRAINED_COUNTS)
    assert (out / report["confusion_matrix_png"]).is_file()
    checkpoint = torch.load(out / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["hyper_parameters"]["class_names"] == ["Amanita", "Boletus", "Lactarius"]
    assert checkpoint["hyper_parameters"]["preprocessing"]["image_size"] == 32


def refit_on_validation(out: Path) -> tuple[float, float]:
    """Temperature and abstain threshold fitted again, independently, on the run's validation split."""
    import numpy as np
    from omegaconf import OmegaConf

    from mushroom.calibration import fit_temperature
    from mushroom.checkpoints import load_classifier
    from mushroom.core.safety import deadly_mask, table_from_config, threshold_for_target
    from mushroom.train import build_datamodule

    cfg = OmegaConf.load(out / "config.yaml")
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    model = load_classifier(out / "checkpoints" / "best.ckpt")
    images, labels = zip(*datamodule.val_dataloader().dataset, strict=True)
    with torch.no_grad():
        logits = model(torch.stack(images))
    temperature = fit_temperature(logits, torch.tensor(labels))
    probs = (logits / temperature).softmax(-1).numpy()
    deadly = deadly_mask(model.class_names, table_from_config(cfg.safety))
    assert deadly is not None
    return temperature, threshold_for_target(
        probs, np.array(labels), deadly, cfg.calibration.dangerous_target
    )


def test_run_is_calibrated_reported_and_carded(trained_run: tuple[Path, dict]) -> None:
    from mushroom.checkpoints import load_classifier

    out, _ = trained_run
    report = json.loads((out / "test_metrics.json").read_text())
    checkpoint = torch.load(out / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    temperature = float(checkpoint["state_dict"]["temperature"])
    assert report["calibration"]["temperature"] == pytest.approx(temperature)
    # Fitted, not left at 1 or stuck on a clamp bound (0.05, 20): the validation split has look-alikes.
    assert 0.06 < temperature < 19 and abs(temperature - 1.0) > 0.05
    threshold = float(checkpoint["state_dict"]["abstain_threshold"])  # Amanita is deadly: one is fitted
    assert 0.0 < threshold < 1.0
    assert report["safety"]["abstaining"]["threshold"] == pytest.approx(threshold)
    loaded = load_classifier(out / "checkpoints" / "best.ckpt")
    assert float(loaded.temperature) == pytest.approx(temperature)
    assert loaded.fitted_abstain_threshold() == pytest.approx(threshold)
    # Both were fitted on the validation split, from the best weights' raw logits.
    assert (temperature, threshold) == pytest.approx(refit_on_validation(out), rel=1e-3)
    # The report's ECE is the one its reliability bins give.
    bins = [b for b in report["reliability_bins"] if b["count"]]
    by_hand = sum(b["count"] / report["n_images"] * abs(b["accuracy"] - b["confidence"]) for b in bins)
    assert report["ece"] == pytest.approx(by_hand)
    for suffix in ("_per_class.md", "_reliability.png", "_confusion.png"):
        assert (out / f"test_metrics{suffix}").is_file()
    card = (out / "checkpoints" / "model_card.md").read_text()
    assert "No photo-based tool can make a mushroom safe to eat" in card
    assert f"balanced accuracy {report['balanced_accuracy']:.3f}" in card


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["model.mixup_alpha=0.2", "model.cutmix_alpha=1.0"],
        pytest.param(["data.prepare.enabled=true"], marks=pytest.mark.slow),
    ],
    ids=["plain", "mixup-cutmix", "from-manifest-and-cache"],
)
def test_fast_dev_run_completes(extra: list[str], toy_folder: Path, tmp_path: Path) -> None:
    overrides = [
        f"data.root={toy_folder}",
        "+trainer.fast_dev_run=true",
        f"paths.root_dir={tmp_path}",
        *extra,
    ]
    metrics = run_train(overrides, tmp_path)
    assert "test/acc" in metrics
    if "data.prepare.enabled=true" in extra:
        assert (tmp_path / "data" / "processed" / toy_folder.name / "manifest.csv").is_file()


def test_a_run_without_a_test_fold_ships_a_calibrated_carded_model(toy_folder: Path, tmp_path: Path) -> None:
    """data.fold=null: nothing to test, so no test report; the best checkpoint is calibrated on validation
    and its card says where the recipe's figures are instead."""
    metrics = run_train([f"data.root={toy_folder}", "data.fold=null", "trainer.max_epochs=2"], tmp_path)
    assert not any(name.startswith("test/") for name in metrics)
    assert not (tmp_path / "test_metrics.json").exists()
    stored = torch.load(tmp_path / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    temperature = float(stored["state_dict"]["temperature"])
    card = (tmp_path / "checkpoints" / "model_card.md").read_text()
    assert "no test fold" in card and "open-set figures of the cross-validation" in card
    assert f"Temperature (fitted on validation): {temperature:.3f}" in card
    assert temperature != pytest.approx(1)


def test_averaged_weights_are_calibrated_tested_and_shipped(toy_folder: Path, tmp_path: Path) -> None:
    """With ``callbacks=[...,ema]`` best.ckpt holds the averaged weights (and the raw ones, for resuming): the
    test after fitting must score the averaged weights with the thresholds fitted on them, as every later
    load does. It once restored the raw weights, uncalibrated, and answered every photo."""
    import numpy as np

    from mushroom.predict import load_any, predict_files
    from mushroom.predictions import Predictions

    run_train(
        [
            f"data.root={toy_folder}",
            "callbacks=[model_checkpoint,ema]",
            "callbacks.ema.decay=0.7",
            "trainer.max_epochs=3",
            "data.val_fraction=0.25",
        ],
        tmp_path,
    )
    best = tmp_path / "checkpoints" / "best.ckpt"
    checkpoint = torch.load(best, map_location="cpu", weights_only=False)
    stored, raw = checkpoint["state_dict"], checkpoint["current_model_state"]
    assert any(not torch.equal(stored[k], raw[k]) for k in raw if raw[k].is_floating_point())  # averaged
    report = json.loads((tmp_path / "test_metrics.json").read_text())
    assert report["calibration"]["temperature"] == pytest.approx(float(stored["temperature"]))
    assert float(stored["temperature"]) != pytest.approx(1.0)
    tested = Predictions.read(tmp_path / "test_predictions.csv").tested
    assert np.allclose(tested.abstain_threshold, float(stored["abstain_threshold"]))
    shipped = predict_files(load_any(best), [toy_folder / p for p in tested.photo], top_k=3)
    for row, probs in zip(shipped, tested.probs, strict=True):
        by_class = {entry["name"]: entry["probability"] for entry in row["top_k"]}
        assert [by_class[name] for name in tested.class_names] == pytest.approx(probs.tolist(), abs=1e-5)


def test_resume_from_last_continues_where_it_stopped(toy_folder: Path, tmp_path: Path) -> None:
    run_train([f"data.root={toy_folder}", "trainer.max_epochs=2", "test=false"], tmp_path)
    first = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    steps_per_epoch = first["global_step"] // 2

    run_train([f"data.root={toy_folder}", "trainer.max_epochs=3", "ckpt_path=last", "test=false"], tmp_path)
    resumed = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert first["epoch"] == 1 and resumed["epoch"] == 2
    assert resumed["global_step"] == 3 * steps_per_epoch
    optimizer_steps = next(iter(resumed["optimizer_states"][0]["state"].values()))["step"]
    assert int(optimizer_steps) == 3 * steps_per_epoch
    # The resumed run trained epoch 2 only; epochs 0-1 stay in the first run's log.
    new_log = (tmp_path / "csv" / "version_1" / "metrics.csv").read_text().splitlines()
    epochs = {line.split(",")[0] for line in new_log[1:]} - {""}
    assert epochs == {"2"}


def test_resume_needs_an_existing_last_checkpoint(toy_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(MushroomError, match=r"hydra\.run\.dir"):
        run_train([f"data.root={toy_folder}", "ckpt_path=last"], tmp_path)


def test_resume_with_other_classes_is_refused(trained_run: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = trained_run
    other = make_image_folder(tmp_path / "other", classes=("Boletus", "Russula"), per_class=6)
    with pytest.raises(MushroomError, match="trained on classes"):
        run_train([f"data.root={other}", f"ckpt_path={out}/checkpoints/last.ckpt"], tmp_path / "run")


@pytest.mark.slow
def test_wandb_offline_run_writes_its_files(toy_folder: Path, tmp_path: Path) -> None:
    run_train([f"data.root={toy_folder}", "trainer.max_epochs=1", "logger=wandb"], tmp_path)
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list((tmp_path / "wandb").iterdir())
    assert list(runs[0].glob("run-*.wandb"))  # the run's log, for `wandb sync`
    media = [p.name for p in (runs[0] / "files" / "media").rglob("*") if p.is_file()]
    assert any(name.endswith(".png") for name in media), media  # confusion matrix and friends
    assert list((runs[0] / "files" / "media" / "table").rglob("*.table.json"))  # sample predictions


def test_wandb_sweep_file_drives_train_with_valid_overrides(tmp_path: Path) -> None:
    import yaml

    sweep_file = Path(__file__).resolve().parents[1] / "sweeps/real_photos_lite0.yaml"
    sweep = yaml.safe_load(sweep_file.read_text())
    assert sweep["command"][1:4] == ["python", "-m", "mushroom.train"]
    assert "${args_no_hyphens}" in sweep["command"]
    overrides = [
        f"{name}={spec['values'][0] if 'values' in spec else spec['min']}"
        for name, spec in sweep["parameters"].items()
    ]
    fixed = [arg for arg in sweep["command"][4:] if "=" in arg and not arg.startswith("$")]
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="mushroom.configs", version_base="1.3"):
        cfg = compose_config("train", fixed + overrides, tmp_path)  # a misspelt key would raise here
    assert cfg.model.optimizer.lr == sweep["parameters"]["model.optimizer.lr"]["min"]
    assert cfg.optimized_metric == sweep["metric"]["name"]  # the sweep maximises what train() returns


def test_balanced_accuracy_picks_the_best_checkpoint_on_an_imbalanced_set(
    trained_run: tuple[Path, dict],
) -> None:
    """The classes are imbalanced (40/30/20), so plain accuracy and balanced accuracy differ."""
    import csv

    import numpy as np

    out, metrics = trained_run
    report = json.loads((out / "test_metrics.json").read_text())
    confusion = np.array(report["confusion_matrix"])
    recall = np.diag(confusion) / confusion.sum(axis=1)
    precision = np.diag(confusion) / np.maximum(confusion.sum(axis=0), 1)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
    assert len(set(confusion.sum(axis=1))) > 1  # the test split is imbalanced too
    assert report["balanced_accuracy"] == pytest.approx(recall.mean())
    assert report["macro_f1"] == pytest.approx(f1.mean())
    assert report["accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
    assert report["balanced_accuracy"] != pytest.approx(report["accuracy"])
    assert metrics["test/balanced_acc"] == pytest.approx(recall.mean(), abs=1e-6)
    assert metrics["test/acc"] == pytest.approx(report["accuracy"], abs=1e-6)
    # best.ckpt is the epoch with the highest validation balanced accuracy.
    with (out / "csv" / "version_0" / "metrics.csv").open() as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("val/balanced_acc")]
    per_epoch = {int(row["epoch"]): float(row["val/balanced_acc"]) for row in rows}
    checkpoint = torch.load(out / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    best_epoch = max(per_epoch, key=lambda epoch: (per_epoch[epoch], -epoch))
    assert checkpoint["epoch"] == best_epoch, per_epoch
    monitor = next(state for key, state in checkpoint["callbacks"].items() if "val/balanced_acc" in key)
    assert float(monitor["best_model_score"]) == pytest.approx(max(per_epoch.values()))


def test_a_checkpoint_from_before_the_deadly_risk_rule_loads_and_resumes(
    trained_checkpoint: Path, tmp_path: Path
) -> None:
    """Older checkpoints lack the deadly_risk buffer: loading, and calibrating a resumed run (which reads the
    best checkpoint's state directly), must still work, with no rule."""
    from mushroom.checkpoints import load_classifier, model_state

    checkpoint = torch.load(trained_checkpoint, map_location="cpu", weights_only=False)
    del checkpoint["state_dict"]["deadly_risk"]
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    model = load_classifier(old)
    assert model.fitted_deadly_risk() is None
    assert model.fitted_abstain_threshold() == load_classifier(trained_checkpoint).fitted_abstain_threshold()
    model.deadly_risk.fill_(0.5)
    model.load_state_dict(model_state(old))  # strict: every buffer is there
    assert model.thresholds().deadly_risk is None
