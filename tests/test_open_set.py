"""The open-set answer: scores and their metrics by hand, the negatives' split, a model trained with
negatives that says "not a mushroom", and the answer, report and exported model that carry it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from mushroom.core.answer import NOT_SURE, answer
from mushroom.core.open_set import (
    NOT_A_MUSHROOM,
    UNKNOWN_GENUS,
    answered_with_genus,
    auroc,
    fit_threshold,
    fpr_at_tpr,
    open_set_view,
    verdict,
)
from mushroom.data.negatives import scan_negatives
from mushroom.errors import MushroomError
from mushroom.schemas import OpenSetSettings, from_mapping
from tests.conftest import make_image_folder, make_negatives

NAMES = ["Amanita", "Boletus", "Lactarius"]


# -- scores and metrics -------------------------------------------------------------------------------
def test_auroc_counts_pairs_and_ties_by_hand() -> None:
    assert auroc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auroc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
    # Pairs (known, unknown): (2,1) above, (2,3) below, (5,1) above, (5,3) above, tie (3,3) half of one.
    assert auroc(np.array([2.0, 5.0, 3.0]), np.array([1.0, 3.0])) == pytest.approx(
        (1 + 0 + 1 + 1 + 1 + 0.5) / 6
    )
    assert np.isnan(auroc(np.array([1.0]), np.array([])))
    assert np.isnan(fpr_at_tpr(np.array([1.0]), np.array([])))
    assert np.isnan(fpr_at_tpr(np.array([]), np.array([1.0])))


def test_threshold_lets_the_asked_share_of_known_photos_through() -> None:
    known = np.arange(1.0, 21.0)  # 1 .. 20
    threshold = fit_threshold(known, 0.9)
    assert threshold == 3.0 and (known >= threshold).mean() == 0.9
    assert fit_threshold(known, 1.0) == 1.0
    for outside in (0.0, 1.01):
        with pytest.raises(ValueError, match="tpr"):
            fit_threshold(known, outside)
    # Unknown photos at or above 3 are let through: 2 of 4.
    assert fpr_at_tpr(known, np.array([0.5, 2.9, 3.0, 30.0]), 0.9) == 0.5


def test_verdict_says_which_kind_of_stranger() -> None:
    assert verdict(0.8, 0.9, 0.5) is None  # passes: a known genus, whatever the share says
    assert verdict(0.5, 0.9, 0.5) is None  # equal to the threshold passes
    assert verdict(0.4, 0.9, 0.5) == NOT_A_MUSHROOM
    assert verdict(0.4, 0.2, 0.5) == UNKNOWN_GENUS
    assert verdict(0.4, 0.5, 0.5) == UNKNOWN_GENUS  # an even split is the milder claim
    assert verdict(-10.0, 1.0, None) is None  # no threshold: never


def test_answered_with_genus_applies_both_thresholds() -> None:
    probs = np.array([[0.9, 0.1], [0.55, 0.45], [0.95, 0.05]])
    open_set = np.array([[0.9, 0.0], [0.9, 0.0], [0.1, 1.0]])
    assert answered_with_genus(probs, open_set, 0.6, 0.5).tolist() == [True, False, False]
    assert answered_with_genus(probs, open_set, None, 0.5).tolist() == [True, True, False]
    assert answered_with_genus(probs, open_set, None, None).tolist() == [True, True, True]


def test_open_set_view_per_folder() -> None:
    known = (np.array([[0.9, 0.1]] * 4), np.array([[0.9, 0.0], [0.8, 0.0], [0.7, 0.0], [0.2, 0.0]]))
    # A confident stranger that passes, one that passes the open set but not "not sure", one rejected.
    strangers = (
        np.array([[0.9, 0.1], [0.6, 0.4], [0.95, 0.05]]),
        np.array([[0.75, 0.9], [0.75, 0.9], [0.1, 0.9]]),
    )
    view = open_set_view(known, {"cats": strangers}, abstain_threshold=0.7, open_set_threshold=0.5)
    assert view["known_answered_with_genus"] == 0.75 and view["known_rejected_open_set"] == 0.25
    cats = view["folders"]["cats"]
    assert cats["images"] == 3 and cats["answered_with_genus"] == pytest.approx(1 / 3)
    assert cats["said_not_a_mushroom"] == pytest.approx(1 / 3) and cats["said_unknown_genus"] == 0.0
    # Of 12 (known, stranger) pairs, 0.7 and 0.2 lose to each 0.75 and win against 0.1.
    assert cats["auroc"] == 8 / 12


# -- the answer ---------------------------------------------------------------------------------------
def test_an_open_set_rejection_comes_before_not_sure_and_names_no_genus() -> None:
    table = {"Amanita": {"deadly": True, "note": "deadly"}, "Boletus": {"note": "porcini"}}
    probs = np.array([0.2, 0.7, 0.1])
    cat = answer(probs, NAMES, 3, 0.9, table, open_set=np.array([0.1, 0.8]), open_set_threshold=0.5)
    assert cat["prediction"] == NOT_A_MUSHROOM and cat["verdict"] == "not_a_mushroom"
    assert not cat["not_sure"] and cat["note"] is None and "non-mushroom" in cat["reason"]
    assert cat["known_score"] == 0.1 and cat["open_set_threshold"] == 0.5
    assert [row["name"] for row in cat["dangerous"]] == ["Amanita"]  # still named among the top k

    other = answer(probs, NAMES, 3, 0.9, table, open_set=np.array([0.1, 0.3]), open_set_threshold=0.5)
    assert other["prediction"] == UNKNOWN_GENUS and other["verdict"] == "unknown_genus"

    unsure = answer(probs, NAMES, 3, 0.9, table, open_set=np.array([0.6, 0.8]), open_set_threshold=0.5)
    assert unsure["prediction"] == NOT_SURE and unsure["verdict"] == "not_sure" and unsure["not_sure"]
    assert "Boletus" in unsure["reason"] and "70%" in unsure["reason"]

    sure = answer(probs, NAMES, 3, 0.5, table, open_set=np.array([0.6, 0.8]), open_set_threshold=0.5)
    assert sure["prediction"] == "Boletus" and sure["verdict"] == "genus" and sure["note"] == "porcini"
    assert sure["reason"] is None


def test_a_model_without_open_set_scores_ignores_the_threshold() -> None:
    said = answer(np.array([0.2, 0.7, 0.1]), NAMES, open_set=None, open_set_threshold=0.5)
    assert (
        said["prediction"] == "Boletus" and said["known_score"] is None and said["open_set_threshold"] is None
    )


# -- negatives on disk --------------------------------------------------------------------------------
def test_negatives_are_split_by_genus_and_by_photo(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = make_negatives(tmp_path / "open-set")
    (root / "not_mushroom" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    settings = OpenSetSettings(root=str(root), val_fraction=0.2)
    with caplog.at_level(logging.WARNING):
        negatives = scan_negatives(settings, seed=1, fold=0, num_folds=3)
    assert negatives is not None and "broken.jpg" in caplog.text
    assert len(negatives.paths) == 40 + 10 * 8
    assert {p.name for p in negatives.paths}.isdisjoint({"broken.jpg"})
    kinds = {
        p.parts[-2] if "other_genera" in p.parts else "nm": k
        for p, k in zip(negatives.paths, negatives.kinds, strict=True)
    }
    assert kinds["nm"] == 1 and kinds["Russula"] == 0
    # A genus lies in one part only: its test photos are of genera never trained on.
    for genus in {p.parent.name for p in negatives.paths if "other_genera" in p.parts}:
        in_genus = negatives.parts[[p.parent.name == genus for p in negatives.paths]]
        assert len(set(in_genus)) == 1
    # The non-mushroom photos are spread over all three parts, and the split follows the seed alone.
    assert set(negatives.parts[negatives.kinds == 1]) == {"train", "val", "test"}
    again = scan_negatives(settings, seed=1, fold=0, num_folds=3)
    assert again is not None and again.parts.tolist() == negatives.parts.tolist()
    other_seed = scan_negatives(settings, seed=2, fold=0, num_folds=3)
    assert other_seed is not None and other_seed.parts.tolist() != negatives.parts.tolist()
    # Over the folds of a cross-validation every negative is tested exactly once, like the known photos.
    tested = np.zeros(len(negatives.paths), dtype=int)
    for fold in range(3):
        parted = scan_negatives(settings, seed=1, fold=fold, num_folds=3)
        assert parted is not None and parted.paths == negatives.paths
        tested += parted.parts == "test"
        # val_fraction (0.2) of the other folds' groups validate, the rest train.
        assert 0 < np.sum(parted.parts == "val") < np.sum(parted.parts == "train")
    assert tested.tolist() == [1] * len(negatives.paths)


def test_a_missing_negatives_folder_is_an_error_unless_optional(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = str(tmp_path / "nowhere")
    with pytest.raises(MushroomError, match=r"data.open_set.root: .*nowhere is not a folder"):
        scan_negatives(OpenSetSettings(root=missing), seed=0, fold=0, num_folds=5)
    with caplog.at_level(logging.WARNING):
        assert (
            scan_negatives(OpenSetSettings(root=missing, required=False), seed=0, fold=0, num_folds=5) is None
        )
    assert "energy score" in caplog.text
    assert scan_negatives(OpenSetSettings(root=None), seed=0, fold=0, num_folds=5) is None
    with pytest.raises(MushroomError, match=r"data.open_set.share=1.0: must be in \(0, 1\)"):
        from_mapping(OpenSetSettings, {"share": 1.0}, "data.open_set")


# -- trained with negatives ---------------------------------------------------------------------------
def test_training_with_negatives_learns_to_say_not_a_mushroom(open_set_run: tuple[Path, Path]) -> None:
    from mushroom.checkpoints import load_classifier

    run, _ = open_set_run
    model = load_classifier(run / "checkpoints" / "best.ckpt")
    assert model.net(__import__("torch").zeros(1, 3, 32, 32)).shape[-1] == len(model.class_names) + 2
    threshold = model.fitted_open_set_threshold()
    assert threshold is not None and 0.0 < threshold < 1.0  # a softmax mass on the genera
    report = json.loads((run / "test_metrics.json").read_text())
    view = report["open_set"]
    assert view["threshold"] == pytest.approx(threshold)
    assert set(view["folders"]) == {"other_genus", "not_mushroom"}
    stripes_seen = view["folders"]["not_mushroom"]
    # Stripes are nothing like the genera: separated, and (almost) never answered with a genus.
    assert stripes_seen["auroc"] > 0.95 and stripes_seen["answered_with_genus"] <= 0.1
    assert stripes_seen["said_not_a_mushroom"] >= 0.8
    assert view["known_answered_with_genus"] >= 0.7
    card = (run / "checkpoints" / "model_card.md").read_text()
    assert "not_mushroom (" in card and "AUROC" in card


def test_the_sampler_draws_the_configured_share_of_negatives(
    open_set_run: tuple[Path, Path], tmp_path: Path
) -> None:
    from mushroom.data import MushroomDataModule

    data = make_image_folder(tmp_path / "genera", per_class=30, size=(40, 40), seed=3)
    module = MushroomDataModule(
        data, image_size=32, num_workers=0, open_set={"root": str(open_set_run[1]), "share": 0.25}
    )
    module.setup("fit")
    known = len(module.index_and_split()[1].train)
    loader = module.train_dataloader()
    drawn = [index for _, index in loader.sampler]
    assert len(drawn) == round(known / 0.75)
    negatives = np.mean([index >= known for index in drawn])
    assert negatives == pytest.approx(0.25, abs=0.07)
    assert module.open_set_classes == 2


def test_predict_and_export_carry_the_open_set_answer(
    open_set_run: tuple[Path, Path], tmp_path: Path
) -> None:
    from tests.conftest import run_export
    from tests.helpers import run_predict

    run, negatives = open_set_run
    ckpt = run / "checkpoints" / "best.ckpt"
    photos = sorted((negatives / "not_mushroom").glob("*.jpg"))[:10]
    onnx = tmp_path / "model.onnx"
    run_export([f"model_path={ckpt}", f"parity_dir={negatives}", f"output_path={onnx}"], tmp_path)
    folder = tmp_path / "things"
    folder.mkdir()
    for photo in photos:
        (folder / photo.name).write_bytes(photo.read_bytes())
    by_model = {}
    for model in (ckpt, onnx):
        results = run_predict([f"model_path={model}", f"inputs=[{folder}]", "format=json"], tmp_path)
        by_model[model.suffix] = results
        said = [r["prediction"] for r in results]
        assert said.count(NOT_A_MUSHROOM) >= 8, said
        assert all(r["verdict"] == "not_a_mushroom" for r in results if r["prediction"] == NOT_A_MUSHROOM)
    # The exported graph computes the same known scores as the checkpoint.
    assert [r["known_score"] for r in by_model[".onnx"]] == pytest.approx(
        [r["known_score"] for r in by_model[".ckpt"]], abs=1e-4
    )


def test_evaluate_reports_each_open_set_folder(open_set_run: tuple[Path, Path], tmp_path: Path) -> None:
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from mushroom.evaluate import evaluate
    from tests.conftest import compose_config

    run, negatives = open_set_run
    known = make_image_folder(tmp_path / "known", per_class=6, size=(40, 40), seed=11)
    metrics = tmp_path / "eval.json"
    overrides = [
        f"model_path={run / 'checkpoints' / 'best.ckpt'}",
        f"data.root={known}",
        f"metrics_path={metrics}",
        "data.num_workers=0",
        f"open_set_dirs=[{negatives / 'not_mushroom'},{negatives / 'other_genera'}]",
    ]
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="mushroom.configs", version_base="1.3"):
        evaluate(compose_config("evaluate", overrides, tmp_path))
    view = json.loads(metrics.read_text())["open_set"]
    assert set(view["folders"]) == {str(negatives / "not_mushroom"), str(negatives / "other_genera")}
    assert view["folders"][str(negatives / "not_mushroom")]["images"] == 40
    assert view["folders"][str(negatives / "not_mushroom")]["auroc"] > 0.95
    assert view["known_images"] == 18
