"""The model card says what the run's own report says: the network, the split, the test figures, the safety
and open-set views (``mushroom.model_card``), read from a trained run's files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mushroom.model_card import CARD_WARNING
from tests.conftest import TRAINED_COUNTS


@pytest.fixture(scope="module")
def card_and_report(trained_run: tuple[Path, dict[str, float]]) -> tuple[str, dict]:
    run, _ = trained_run
    card = (run / "checkpoints" / "model_card.md").read_text()
    return card, json.loads((run / "test_metrics.json").read_text())


def test_the_card_names_the_network_the_classes_and_the_warning(card_and_report: tuple[str, dict]) -> None:
    card, report = card_and_report
    assert card.startswith("# Model card: small_cnn on ")
    assert "- Network: `small_cnn` (ours; pretrained=" in card  # not "timm" for our own network
    assert f"{len(TRAINED_COUNTS)} classes: {', '.join(report['class_names'])}." in card
    assert CARD_WARNING in card


def test_the_figures_are_the_reports(card_and_report: tuple[str, dict]) -> None:
    card, report = card_and_report
    figures = (
        f"Accuracy {report['accuracy']:.3f}, balanced accuracy {report['balanced_accuracy']:.3f}, "
        f"macro F1 {report['macro_f1']:.3f}, expected calibration error {report['ece']:.3f} "
        f"on {report['n_images']} images."
    )
    assert figures in card
    assert f"Temperature (fitted on validation): {report['calibration']['temperature']:.3f}." in card
    assert f"test {report['n_images']} (test = fold 0 of" in card
    for name in report["class_names"]:
        assert f"| {name} |" in card  # a row of the per-class table


def test_the_safety_and_open_set_sections_follow_the_report(card_and_report: tuple[str, dict]) -> None:
    card, report = card_and_report
    assert "## Safety" in card and "## Photos of no known class (open set)" in card
    deadly = report["safety"]["deadly_genera"]
    assert deadly == ["Amanita"] and "Genera with deadly species: Amanita." in card


def test_the_safety_section_states_the_deadly_risk_rule_when_the_model_has_one(
    card_and_report: tuple[str, dict],
) -> None:
    from mushroom.model_card import _safety_lines as safety_lines

    _, report = card_and_report
    without = "\n".join(safety_lines(report))
    assert "Answering only at confidence" in without and "without deadly species only below" not in without
    ruled = json.loads(json.dumps(report))
    ruled["safety"]["abstaining"]["deadly_risk"] = 0.01
    assert "naming a genus without deadly species only below 1% on those that have them" in "\n".join(
        safety_lines(ruled)
    )
