"""``mushroom.drift``: the statistics the service recorded against those of the training photos."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image
from scipy.stats import ks_2samp

from mushroom.core.onnx_model import OnnxClassifier
from mushroom.core.preprocessing import resize_and_crop
from mushroom.core.stats import image_stats
from mushroom.drift import cached_reference, compare, ks_test, psi
from tests.conftest import make_image_folder


def test_ks_test_matches_scipy_and_psi_grows_with_the_shift() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, 400)
    for shift in (0.0, 0.3, 1.0):
        live = rng.normal(shift, 1, 120)
        statistic, p_value = ks_test(reference, live)
        expected = ks_2samp(reference, live, method="asymp")
        assert statistic == pytest.approx(expected.statistic)
        assert p_value == pytest.approx(expected.pvalue, rel=0.3, abs=1e-3)
    assert psi(reference, rng.normal(0, 1, 400)) < 0.05 < psi(reference, rng.normal(0.5, 1, 400)) < 0.5
    assert psi(reference, rng.normal(2, 1, 400)) > 1.0


def test_compare_names_what_moved_and_which_way() -> None:
    rng = np.random.default_rng(1)
    reference = {"brightness": rng.normal(0.5, 0.1, 300), "contrast": rng.normal(0.2, 0.05, 300)}
    live = {"brightness": rng.normal(0.3, 0.1, 100), "contrast": rng.normal(0.2, 0.05, 100)}
    result = compare(reference, live, alpha=0.01, psi_threshold=0.1)
    assert result["brightness"]["moved"] and result["brightness"]["shift_sd"] < -1.5
    assert not result["contrast"]["moved"]


def record_like_the_service(model: OnnxClassifier, folder: Path, path: Path, darken: float = 1.0) -> None:
    with path.open("w") as file:
        for photo in sorted(folder.rglob("*.jpg")):
            rgb = (np.asarray(Image.open(photo).convert("RGB"), dtype=np.float32) * darken).astype(np.uint8)
            pixels = resize_and_crop(rgb, model.pre)
            stats = image_stats(pixels, (rgb.shape[1], rgb.shape[0]))
            stats["confidence"] = float(model.predict_pixels(pixels)[0].max())
            file.write(json.dumps(stats) + "\n")


@pytest.mark.slow
def test_cli_finds_darker_photos_and_nothing_in_photos_like_training(
    exported_model: Path, tmp_path: Path
) -> None:
    training = make_image_folder(tmp_path / "train", per_class=40, size=(64, 48), seed=1)
    fresh = make_image_folder(tmp_path / "fresh", per_class=15, size=(64, 48), seed=2)
    model = OnnxClassifier(exported_model)
    record_like_the_service(model, fresh, tmp_path / "same.jsonl")
    record_like_the_service(model, fresh, tmp_path / "dark.jsonl", darken=0.4)

    def run(recorded: str, *extra: str) -> subprocess.CompletedProcess:
        command = [
            sys.executable, "-m", "mushroom.drift", f"model_path={exported_model}",
            f"reference_dir={training}", f"reference_path={tmp_path / 'reference.json'}",
            f"recorded={tmp_path / recorded}",
            f"report_path={tmp_path / recorded}.report.json", f"hydra.run.dir={tmp_path / 'hydra'}", *extra,
        ]  # fmt: skip
        return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    same = run("same.jsonl")
    assert same.returncode == 0, same.stdout
    report = json.loads((tmp_path / "same.jsonl.report.json").read_text())
    assert report["recorded_photos"] == 45 and report["reference_photos"] == 120
    assert report["moved"] == [] and "No drift" in same.stdout

    dark = run("dark.jsonl", "fail_on_drift=true")
    assert dark.returncode == 3
    report = json.loads((tmp_path / "dark.jsonl.report.json").read_text())
    assert "brightness" in report["moved"] and report["features"]["brightness"]["shift_sd"] < 0
    assert "MOVED  brightness" in dark.stdout


@pytest.mark.slow
def test_reference_cache_is_used_only_for_the_same_model_file_and_photos(
    exported_model: Path, tmp_path: Path
) -> None:
    photos = make_image_folder(tmp_path / "train", per_class=4, size=(64, 48), seed=1)
    cfg = OmegaConf.create(
        {"model_path": str(exported_model), "reference_dir": str(photos), "reference_samples": None,
         "reference_path": str(tmp_path / "reference.json")}
    )  # fmt: skip
    computed = cached_reference(cfg)
    assert len(computed["brightness"]) == 12
    cache = json.loads((tmp_path / "reference.json").read_text())
    cache["statistics"]["brightness"] = [0.123] * 12  # marks what is read back from the cache
    (tmp_path / "reference.json").write_text(json.dumps(cache))
    assert cached_reference(cfg)["brightness"] == [0.123] * 12

    retrained = tmp_path / "retrained.onnx"  # another model file: same graph, one byte of metadata apart
    retrained.write_bytes(exported_model.read_bytes().replace(b"Amanita", b"Amanitb"))
    cfg = OmegaConf.merge(cfg, {"model_path": str(retrained)})
    assert cached_reference(cfg)["brightness"] != [0.123] * 12
    (tmp_path / "train" / "Amanita" / "amanita_000.jpg").unlink()
    assert len(cached_reference(cfg)["brightness"]) == 11


@pytest.mark.slow
def test_too_few_or_no_recorded_photos_are_clear_errors(exported_model: Path, tmp_path: Path) -> None:
    (tmp_path / "few.jsonl").write_text(json.dumps({"brightness": 0.5}) + "\n")
    for recorded, message in (
        ("few.jsonl", "needs at least 30"),
        ("missing.jsonl", "No recorded statistics"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "mushroom.drift", f"model_path={exported_model}",
             f"recorded={tmp_path / recorded}", f"hydra.run.dir={tmp_path / 'hydra'}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert result.returncode == 1 and message in result.stdout and "Traceback" not in result.stdout
