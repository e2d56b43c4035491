"""``mushroom.predict``: top-k with calibrated probabilities, "not sure", formats, broken photos."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mushroom.core.answer import NOT_SURE, SAFETY_WARNING
from mushroom.core.images import find_images
from mushroom.errors import MushroomError
from tests.conftest import make_image_folder
from tests.helpers import run_predict


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("photos"), per_class=4, size=(64, 48), seed=31)


def test_checkpoint_and_onnx_give_the_same_top_k(
    photos: Path, trained_checkpoint: Path, exported_model: Path, tmp_path: Path
) -> None:
    single = photos / "Boletus" / "boletus_000.jpg"
    inputs = f"inputs=[{single},{photos / 'Amanita'},{photos / 'Lactarius'}]"
    from_ckpt = run_predict([f"model_path={trained_checkpoint}", inputs, "top_k=2"], tmp_path)
    from_onnx = run_predict([f"model_path={exported_model}", inputs, "top_k=2"], tmp_path)
    assert [r["path"] for r in from_ckpt] == [str(single)] + [
        str(p) for cls in ("Amanita", "Lactarius") for p in sorted((photos / cls).glob("*.jpg"))
    ]
    for a, b in zip(from_ckpt, from_onnx, strict=True):
        assert [row["name"] for row in a["top_k"]] == [row["name"] for row in b["top_k"]]
        assert a["confidence"] == pytest.approx(b["confidence"], abs=1e-4)
        assert len(a["top_k"]) == 2 and a["top_k"][0]["probability"] >= a["top_k"][1]["probability"]
    top1 = [r["top_k"][0]["name"] for r in from_onnx]
    truth = ["Boletus"] + ["Amanita"] * 4 + ["Lactarius"] * 4
    assert sum(a == b for a, b in zip(top1, truth, strict=True)) >= 6  # chance: 3


def test_below_the_threshold_the_answer_is_not_sure(
    photos: Path, exported_model: Path, tmp_path: Path
) -> None:
    # open_set=false: the model's fitted open-set threshold flags a few known photos as "not a genus I know"
    # by design (it keeps 95% of them), and that answer has its own tests.
    settings = [f"model_path={exported_model}", f"inputs=[{photos}]", "open_set=false"]
    results = run_predict([*settings, "abstain_threshold=1.0"], tmp_path)
    assert all(r["confidence"] < 1.0 for r in results)  # so that 1.0, the highest threshold, covers all
    assert all(r["prediction"] == NOT_SURE and r["not_sure"] and r["note"] is None for r in results)
    confident = run_predict([*settings, "abstain_threshold=0.0"], tmp_path)
    assert all(r["prediction"] == r["top_k"][0]["name"] for r in confident)
    amanita = next(r for r in confident if r["prediction"] == "Amanita")
    assert "death cap" in amanita["note"]
    assert any(row["name"] == "Amanita" and row["deadly"] for row in amanita["dangerous"])


@pytest.mark.parametrize("model_kind", ["ckpt", "onnx"])
def test_the_stored_threshold_applies_unless_one_is_passed(
    model_kind: str, trained_checkpoint: Path, exported_model: Path, tmp_path: Path
) -> None:
    from mushroom.checkpoints import load_classifier

    model = trained_checkpoint if model_kind == "ckpt" else exported_model
    stored = load_classifier(trained_checkpoint).fitted_abstain_threshold()
    assert stored is not None and 0.0 < stored < 1.0
    unsure_photos = make_image_folder(
        tmp_path / "photos", per_class=8, size=(48, 48), seed=5, look_alikes=0.5
    )
    inputs = f"inputs=[{unsure_photos}]", "open_set=false"  # the "not sure" threshold alone

    fitted = run_predict([f"model_path={model}", *inputs], tmp_path)
    assert [r["abstain_threshold"] for r in fitted] == pytest.approx([stored] * len(fitted))
    assert [r["not_sure"] for r in fitted] == [r["confidence"] < stored for r in fitted]
    assert 0 < sum(r["not_sure"] for r in fitted) < len(fitted)  # the photos fall on both sides

    # A threshold that decides some photos differently from the stored one.
    explicit = float(np.median([r["confidence"] for r in fitted]))
    assert [r["confidence"] < explicit for r in fitted] != [r["not_sure"] for r in fitted]
    passed = run_predict([f"model_path={model}", *inputs, f"abstain_threshold={explicit}"], tmp_path)
    assert [r["not_sure"] for r in passed] == [r["confidence"] < explicit for r in passed]
    assert [r["prediction"] == NOT_SURE for r in passed] == [r["not_sure"] for r in passed]


def test_broken_photo_gets_an_error_row_and_the_rest_are_answered(
    photos: Path, exported_model: Path, tmp_path: Path
) -> None:
    mixed = tmp_path / "mixed"
    shutil.copytree(photos / "Amanita", mixed)
    good = (mixed / "amanita_000.jpg").read_bytes()
    (mixed / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (mixed / "notes.jpg").write_text("not a photo")
    out = tmp_path / "results.json"
    run_predict(
        [f"model_path={exported_model}", f"inputs=[{mixed}]", "format=json", f"output_path={out}"], tmp_path
    )
    results = json.loads(out.read_text())
    errors = {Path(r["path"]).name: r["error"] for r in results if "error" in r}
    assert set(errors) == {"truncated.jpg", "notes.jpg"}
    assert all("cannot decode" in message for message in errors.values())
    assert sum("prediction" in r for r in results) == 4


@pytest.mark.slow
def test_cli_prints_a_table_and_writes_csv(photos: Path, exported_model: Path, tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "mushroom.predict",
        f"model_path={exported_model}",
        f"inputs=[{photos / 'Boletus'}]",
    ]
    table = subprocess.run(
        [*command, f"hydra.run.dir={tmp_path}/a"], capture_output=True, text=True, check=True
    )
    lines = table.stdout.strip().splitlines()
    assert lines[0].split() == ["photo", "answer", "top-k"]
    assert sum("boletus_" in line for line in lines) == 4 and lines[-1] == SAFETY_WARNING
    csv_run = subprocess.run(
        [*command, "format=csv", f"hydra.run.dir={tmp_path}/b"], capture_output=True, text=True, check=True
    )
    rows = list(csv.DictReader(io.StringIO(csv_run.stdout)))
    assert len(rows) == 4 and {"path", "prediction", "confidence", "top_k", "note"} <= set(rows[0])
    # The CSV holds the same answers as the in-process prediction.
    expected = {r["path"]: r for r in run_predict([command[3], command[4]], tmp_path / "c")}
    assert {row["path"] for row in rows} == set(expected)
    for row in rows:
        assert float(row["confidence"]) == pytest.approx(expected[row["path"]]["confidence"], abs=1e-6)
        assert row["prediction"] == expected[row["path"]]["prediction"]


def test_no_images_and_missing_paths_are_clear_errors(exported_model: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(MushroomError, match="No images found"):
        run_predict([f"model_path={exported_model}", f"inputs=[{tmp_path / 'empty'}]"], tmp_path)
    with pytest.raises(MushroomError, match="does not exist"):
        run_predict([f"model_path={exported_model}", f"inputs=[{tmp_path / 'nowhere.jpg'}]"], tmp_path)
    with pytest.raises(MushroomError, match="does not exist"):
        run_predict([f"model_path={tmp_path / 'missing.ckpt'}", f"inputs=[{tmp_path / 'empty'}]"], tmp_path)


def test_the_deadly_risk_rule_set_for_training_travels_to_every_answer(tmp_path: Path) -> None:
    """calibration.deadly_risk: stored in the checkpoint, written into the ONNX file, applied by predict and
    in the fold's predictions table; a harmless genus is named only below that mass on Amanita."""
    from mushroom.checkpoints import load_classifier
    from mushroom.core.onnx_model import OnnxClassifier
    from mushroom.predict import predict_files
    from mushroom.predictions import Predictions
    from tests.conftest import run_export, run_train

    risk = 0.25
    # Half the photos drawn halfway to another genus: some answers are unsure between Amanita and the rest.
    data = make_image_folder(tmp_path / "data", per_class=24, look_alikes=0.5, seed=1)
    photos = make_image_folder(tmp_path / "new", per_class=12, look_alikes=0.5, seed=5)
    overrides = ["trainer.max_epochs=4", "model.optimizer.lr=0.01", f"calibration.deadly_risk={risk}"]
    run_train([f"data.root={data}", *overrides], tmp_path)
    checkpoint = tmp_path / "checkpoints" / "best.ckpt"
    assert load_classifier(checkpoint).fitted_deadly_risk() == risk  # as set, not float32's approximation
    table = Predictions.read(tmp_path / "test_predictions.csv")
    assert np.allclose(table.deadly_risk, risk)
    refused = (table.probs.argmax(1) != 0) & (table.probs[:, 0] >= risk)  # class 0 is Amanita
    passed_open_set = table.open_set[:, 0] >= table.open_set_threshold
    assert (refused & passed_open_set).any()
    assert (table.answer[refused & passed_open_set] == NOT_SURE).all()

    onnx_path = tmp_path / "model.onnx"
    run_export([f"model_path={checkpoint}", f"output_path={onnx_path}", f"parity_dir={photos}"], tmp_path)
    model = OnnxClassifier(onnx_path)
    assert model.info.deadly_risk == pytest.approx(risk)
    rows = predict_files(model, find_images([photos]), open_set=False, abstain_threshold=0.0)
    kinds = set()
    for row in rows:
        amanita = next(r["probability"] for r in row["top_k"] if r["name"] == "Amanita")
        harmless = row["top_k"][0]["name"] != "Amanita"
        assert (row["prediction"] == NOT_SURE) == (harmless and amanita >= risk), row
        kinds.add((harmless, amanita >= risk))
    # Refused and answered harmless genera both occur: the rule is tested on both sides of its line.
    assert {(True, True), (True, False)} <= kinds
