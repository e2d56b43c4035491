"""Metrics from a confusion matrix, checked against figures worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mushroom.report import metrics_from_confusion, write_report

# rows = true class, columns = predicted
CONFUSION = np.array([[8, 2, 0], [1, 3, 0], [0, 0, 0]])
NAMES = ["Amanita", "Boletus", "Lactarius"]


def test_metrics_match_a_hand_computation() -> None:
    m = metrics_from_confusion(CONFUSION, NAMES)
    assert m["n_images"] == 14
    assert m["accuracy"] == pytest.approx(11 / 14)
    # recall: Amanita 8/10, Boletus 3/4; Lactarius has no images and is left out of the averages.
    assert m["balanced_accuracy"] == pytest.approx((0.8 + 0.75) / 2)
    precision_a, precision_b = 8 / 9, 3 / 5
    f1_a = 2 * precision_a * 0.8 / (precision_a + 0.8)
    f1_b = 2 * precision_b * 0.75 / (precision_b + 0.75)
    assert m["macro_f1"] == pytest.approx((f1_a + f1_b) / 2)
    assert set(m["per_class"]) == {"Amanita", "Boletus"}
    assert m["per_class"]["Boletus"] == pytest.approx(
        {"precision": precision_b, "recall": 0.75, "f1": f1_b, "support": 4}
    )


def test_write_report_writes_json_and_png(tmp_path: Path) -> None:
    write_report(CONFUSION, NAMES, tmp_path / "out" / "metrics.json")
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["accuracy"] == pytest.approx(11 / 14)
    png = tmp_path / "out" / saved["confusion_matrix_png"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
