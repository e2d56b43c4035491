"""``mushroom.export``: ONNX with metadata, parity with PyTorch on photos, int8 quantization."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from mushroom.checkpoints import TorchClassifier, load_classifier, model_info
from mushroom.core.images import find_images, load_rgb
from mushroom.core.onnx_model import METADATA_KEY, OnnxClassifier
from mushroom.core.preprocessing import eval_preprocess
from mushroom.errors import MushroomError
from mushroom.export import parity_check, write_onnx
from tests.conftest import make_image_folder, run_export


def test_export_writes_onnx_with_classes_preprocessing_and_parity(
    exported_model: Path, trained_checkpoint: Path
) -> None:
    metadata = {prop.key: prop.value for prop in onnx.load(str(exported_model)).metadata_props}
    info = json.loads(metadata[METADATA_KEY])
    classifier = load_classifier(trained_checkpoint)
    assert info["class_names"] == ["Amanita", "Boletus", "Lactarius"]
    assert info["preprocessing"]["image_size"] == 32
    assert set(info["preprocessing"]) == {"image_size", "crop_pct", "mean", "std"}
    assert info["temperature"] == pytest.approx(float(classifier.temperature))
    assert info["abstain_threshold"] == pytest.approx(classifier.fitted_abstain_threshold())
    assert info["safety"]["Amanita"]["deadly"] is True  # the genus table travels with the model

    report = json.loads(exported_model.with_suffix(".export.json").read_text())
    assert report["parity"]["passed"] and report["parity"]["images"] == 18
    assert report["parity"]["max_abs_diff"] <= 1e-4 and report["parity"]["top1_disagreements"] == []


def test_onnx_runtime_gives_the_checkpoints_probabilities_on_new_photos(
    exported_model: Path, trained_checkpoint: Path, tmp_path: Path
) -> None:
    photos = find_images([make_image_folder(tmp_path, per_class=4, size=(90, 60), seed=11)])
    model = OnnxClassifier(exported_model)
    batch = np.stack([eval_preprocess(load_rgb(p), model.pre) for p in photos])
    classifier = load_classifier(trained_checkpoint)
    temperature = float(classifier.temperature)
    assert abs(temperature - 1.0) > 0.05  # the calibrated path: the graph must divide by T
    with torch.no_grad():
        expected = classifier.predict_proba(torch.from_numpy(batch)).numpy()
        logits = classifier(torch.from_numpy(batch)).numpy()
    got = model.predict_batch(batch)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    scaled = np.exp(logits / temperature - (logits / temperature).max(1, keepdims=True))
    np.testing.assert_allclose(got, scaled / scaled.sum(1, keepdims=True), atol=1e-4)
    assert (got.argmax(1) == expected.argmax(1)).all()
    assert (got.argmax(1) == np.repeat([0, 1, 2], 4)).mean() >= 0.75  # and it still knows the shapes


@pytest.mark.slow
@pytest.mark.parametrize("centre", [None, 0.875])
def test_test_time_views_are_inside_the_graph(
    trained_checkpoint: Path, tmp_path: Path, centre: float | None
) -> None:
    reference = TorchClassifier(trained_checkpoint, None)
    reference.model.hparams["tta_hflip"] = True
    reference.model.hparams["tta_centre_crop"] = centre
    info = model_info(reference.model, None, source="test")
    write_onnx(reference.model, info, tmp_path / "tta.onnx", opset=18)
    photos = find_images([make_image_folder(tmp_path / "photos", per_class=2, size=(50, 70), seed=3)])
    result = parity_check(reference, OnnxClassifier(tmp_path / "tta.onnx"), photos, tolerance=1e-4)
    assert result["passed"], result
    exported = OnnxClassifier(tmp_path / "tta.onnx").info
    assert (exported.tta_hflip, exported.tta_centre_crop) == (True, centre)


@pytest.mark.slow
def test_quantize_writes_int8_model_and_reports_accuracy_change(
    trained_checkpoint: Path, tmp_path: Path
) -> None:
    photos = make_image_folder(tmp_path / "photos", per_class=8, size=(48, 40), seed=21)
    out = tmp_path / "model.onnx"
    summary = run_export(
        [f"model_path={trained_checkpoint}", f"parity_dir={photos}", f"output_path={out}", "quantize=true"],
        tmp_path,
    )
    int8 = summary["int8"]
    assert Path(int8["path"]).is_file() and int8["images"] == 24
    assert int8["accuracy_change"] == pytest.approx(int8["int8_accuracy"] - int8["fp32_accuracy"])
    assert int8["fp32_accuracy"] >= 0.75 and abs(int8["accuracy_change"]) <= 0.25
    quantized = OnnxClassifier(int8["path"])
    assert quantized.class_names == ["Amanita", "Boletus", "Lactarius"]  # metadata kept
    graph_ops = {node.op_type for node in onnx.load(int8["path"]).graph.node}
    assert graph_ops & {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}


def test_export_without_photos_for_the_parity_check_is_a_clear_error(
    trained_checkpoint: Path, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    out = tmp_path / "model.onnx"
    with pytest.raises(MushroomError, match="parity_dir"):
        run_export(
            [f"model_path={trained_checkpoint}", f"parity_dir={tmp_path / 'empty'}", f"output_path={out}"],
            tmp_path,
        )
    assert not out.exists()


def test_unknown_format_and_foreign_onnx_are_clear_errors(trained_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(MushroomError, match="format=tflite"):
        run_export([f"model_path={trained_checkpoint}", "format=tflite"], tmp_path)
    foreign = tmp_path / "foreign.onnx"
    torch.onnx.export(torch.nn.Linear(3, 2), (torch.zeros(1, 3),), str(foreign), dynamo=False)
    with pytest.raises(MushroomError, match="not one exported by mushroom"):
        OnnxClassifier(foreign)
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(MushroomError, match="not a readable ONNX model"):
        OnnxClassifier(tmp_path / "junk.onnx")
