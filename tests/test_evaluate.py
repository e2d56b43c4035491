"""``mushroom.evaluate`` on a trained checkpoint: JSON figures, subsets of classes, foreign classes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from mushroom.errors import MushroomError
from mushroom.evaluate import evaluate
from tests.conftest import compose_config, make_image_folder


def run_evaluate(ckpt: Path, root: Path, metrics_path: Path, *overrides: str) -> dict:
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="mushroom.configs", version_base="1.3"):
        cfg = compose_config(
            "evaluate",
            [
                f"model_path={ckpt}",
                f"data.root={root}",
                f"metrics_path={metrics_path}",
                "data.num_workers=0",
                "trainer=cpu",
                "trainer.enable_progress_bar=false",
                *overrides,
            ],
            metrics_path.parent,
        )
    return evaluate(cfg)


def test_evaluate_writes_metrics_json_and_confusion_png(trained_checkpoint: Path, tmp_path: Path) -> None:
    fresh = make_image_folder(tmp_path / "fresh", per_class=10, size=(40, 40), seed=123)
    metrics = run_evaluate(trained_checkpoint, fresh, tmp_path / "out" / "metrics.json")
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["n_images"] == 30
    for key in ("accuracy", "balanced_accuracy", "macro_f1"):
        assert saved[key] == pytest.approx(metrics[key])
    assert saved["balanced_accuracy"] >= 0.8  # new images drawn the same way: the model generalises
    assert set(saved["per_class"]) == {"Amanita", "Boletus", "Lactarius"}
    assert set(saved["per_class"]["Boletus"]) == {"precision", "recall", "f1", "support"}
    assert sum(row["support"] for row in saved["per_class"].values()) == 30
    assert (tmp_path / "out" / "metrics_confusion.png").is_file()


def test_evaluate_answers_at_the_stored_threshold_unless_one_is_passed(
    trained_checkpoint: Path, tmp_path: Path
) -> None:
    from mushroom.checkpoints import load_classifier

    stored = load_classifier(trained_checkpoint).fitted_abstain_threshold()
    assert stored is not None and 0.0 < stored < 1.0
    photos = make_image_folder(tmp_path / "photos", per_class=6, size=(40, 40), seed=8, look_alikes=0.5)
    fitted = run_evaluate(trained_checkpoint, photos, tmp_path / "a" / "m.json")
    assert fitted["safety"]["abstaining"]["threshold"] == pytest.approx(stored)
    passed = run_evaluate(trained_checkpoint, photos, tmp_path / "b" / "m.json", "abstain_threshold=0.99")
    assert passed["safety"]["abstaining"]["threshold"] == pytest.approx(0.99)
    assert passed["safety"]["abstaining"]["coverage"] < fitted["safety"]["abstaining"]["coverage"]


def test_folder_with_some_of_the_classes_is_fine(trained_checkpoint: Path, tmp_path: Path) -> None:
    subset = make_image_folder(tmp_path / "subset", classes=("Boletus",), per_class=8, size=(40, 40), seed=5)
    metrics = run_evaluate(trained_checkpoint, subset, tmp_path / "m.json")
    assert metrics["n_images"] == 8 and list(metrics["per_class"]) == ["Boletus"]
    assert metrics["class_names"] == ["Amanita", "Boletus", "Lactarius"]


def test_folder_with_foreign_classes_is_a_clear_error(trained_checkpoint: Path, tmp_path: Path) -> None:
    foreign = make_image_folder(tmp_path / "foreign", classes=("Amanita", "Russula"), per_class=4)
    with pytest.raises(MushroomError, match=r"Russula.*does not know"):
        run_evaluate(trained_checkpoint, foreign, tmp_path / "m.json")


def test_missing_or_foreign_checkpoint_is_a_clear_error(tmp_path: Path, toy_folder: Path) -> None:
    with pytest.raises(MushroomError, match="does not exist"):
        run_evaluate(tmp_path / "nope.ckpt", toy_folder, tmp_path / "m.json")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(MushroomError, match="mushroom checkpoint"):
        run_evaluate(tmp_path / "junk.ckpt", toy_folder, tmp_path / "m.json")
