"""Metrics from a confusion matrix, checked against figures worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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


# Six images, classes as NAMES; the safety table marks Amanita deadly.
PROBS = np.array(
    [
        [0.90, 0.05, 0.05],  # Amanita, right, sure
        [0.20, 0.70, 0.10],  # Amanita called Boletus at 0.70: a dangerous confusion
        [0.40, 0.45, 0.15],  # Amanita called Boletus at 0.45: dangerous unless we abstain below 0.5
        [0.10, 0.85, 0.05],  # Boletus, right
        [0.60, 0.30, 0.10],  # Boletus called Amanita: wrong, but not dangerous
        [0.05, 0.15, 0.80],  # Lactarius, right
    ]
)
LABELS = np.array([0, 0, 0, 1, 1, 2])
TABLE = {"Amanita": {"deadly": True}, "Boletus": {"deadly": False}, "Lactarius": {"deadly": False}}


def test_evaluation_report_matches_a_hand_computation(tmp_path: Path) -> None:
    from mushroom.report import write_evaluation_report

    paths = []
    for i in range(len(LABELS)):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (20, 16), (40 * i, 80, 120)).save(paths[-1])
    report = write_evaluation_report(
        PROBS,
        LABELS,
        NAMES,
        tmp_path / "r" / "m.json",
        paths=paths,
        safety_table=TABLE,
        abstain_threshold=0.5,
    )
    assert report["accuracy"] == pytest.approx(3 / 6)
    # Bins of width 0.1 by top-1 confidence: 0.90 (right) | 0.70 (wrong) | 0.45 (wrong) | 0.85 (right)
    # | 0.60 (wrong) | 0.80 (right) -> every bin holds one image: ECE = mean |correct - confidence|.
    gaps = [0.10, 0.70, 0.45, 0.15, 0.60, 0.20]
    assert report["ece"] == pytest.approx(sum(gaps) / 6)
    plain = report["safety"]["without_abstaining"]
    assert (plain["deadly_genus_images"], plain["dangerous_confusions"]) == (3, 2)
    assert plain["dangerous_confusion_rate"] == pytest.approx(2 / 3)
    cut = report["safety"]["abstaining"]
    assert cut["coverage"] == pytest.approx(5 / 6)  # only the 0.45 answer is withheld
    assert cut["accuracy_answered"] == pytest.approx(3 / 5)
    assert cut["dangerous_confusion_rate"] == pytest.approx(1 / 3)
    out = tmp_path / "r"
    table = (out / "m_per_class.md").read_text()
    assert "| Boletus | 0.333 | 0.500 | 0.400 | 2 |" in table
    for name in (report["reliability_png"], report["mistakes_png"], report["confusion_matrix_png"]):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "m.json").read_text())["safety"]["abstaining"]["threshold"] == 0.5


def test_threshold_for_target_answers_as_much_as_the_target_allows() -> None:
    from mushroom.core.safety import threshold_for_target

    deadly = np.array([True, False, False])
    # At 0.45 both confusions are answered (2/3); from 0.60 only the 0.70 one is (1/3); from 0.80, none.
    assert threshold_for_target(PROBS, LABELS, deadly, target=0.5) == pytest.approx(0.60)
    assert threshold_for_target(PROBS, LABELS, deadly, target=0.0) == pytest.approx(0.80)


def test_temperature_scaling_recovers_an_overconfident_scale() -> None:
    import torch

    from mushroom.calibration import expected_calibration_error, fit_temperature

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4000, 4, generator=generator) * 2
    labels = torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(1)  # calibrated at T=1
    overconfident = logits * 3
    temperature = fit_temperature(overconfident, labels)
    assert temperature == pytest.approx(3.0, rel=0.15)
    before = expected_calibration_error(overconfident.softmax(-1).numpy(), labels.numpy())
    after = expected_calibration_error((overconfident / temperature).softmax(-1).numpy(), labels.numpy())
    assert after < before / 2


def test_confusion_matrix_drops_cell_counts_past_thirty_classes(tmp_path: Path) -> None:
    """215 classes used to draw 46,225 text labels (over a minute, unreadable); the counts are in the JSON."""
    from unittest import mock

    import matplotlib.axes

    from mushroom.report import ANNOTATED_CLASSES, plot_confusion_matrix

    for n, texts in ((5, 25), (ANNOTATED_CLASSES + 1, 0)):
        with mock.patch.object(matplotlib.axes.Axes, "text", autospec=True) as text:
            path = plot_confusion_matrix(
                np.eye(n, dtype=int), [f"c{i}" for i in range(n)], tmp_path / f"{n}.png"
            )
        assert text.call_count == texts and path.stat().st_size > 0
