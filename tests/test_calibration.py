"""Temperature scaling and ECE against known answers: a model whose over-confidence is known, and a
hand-computed ECE. The calibrated path through a real training run is checked in test_train."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mushroom.calibration import (
    TEMPERATURE_BOUNDS,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
)
from mushroom.models import MushroomClassifier


def honest_logits(n: int = 4000, classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from ``softmax(logits)``: a perfectly calibrated model (T = 1)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, size=(n, classes))
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    labels = np.array([rng.choice(classes, p=row) for row in probs])
    return logits, labels


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


@pytest.mark.parametrize("scale", [3.0, 0.5])
def test_fit_temperature_undoes_a_known_over_or_under_confidence(scale: float) -> None:
    """Logits of an honest model multiplied by ``scale``: the temperature that fixes them is ``scale``."""
    logits, labels = honest_logits()
    fitted = fit_temperature(torch.from_numpy(logits * scale), torch.from_numpy(labels))
    assert fitted == pytest.approx(scale, rel=0.1)


def test_calibration_lowers_ece_of_an_over_confident_model() -> None:
    logits, labels = honest_logits(seed=1)
    over_confident = logits * 4.0
    before = expected_calibration_error(softmax(over_confident), labels)
    temperature = fit_temperature(torch.from_numpy(over_confident), torch.from_numpy(labels))
    after = expected_calibration_error(softmax(over_confident / temperature), labels)
    assert before > 0.1  # a confidence far above its accuracy
    assert after < before / 3
    # Temperature scaling never changes an answer, only how sure it sounds.
    assert (softmax(over_confident / temperature).argmax(1) == over_confident.argmax(1)).all()


def test_ece_and_reliability_bins_match_a_hand_computation() -> None:
    # Confidences 0.95, 0.95 (one right, one wrong) and 0.55, 0.55, 0.55, 0.55 (three right).
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.55, 0.45], [0.55, 0.45], [0.45, 0.55]])
    labels = np.array([0, 1, 0, 0, 1, 1])
    bins = reliability_bins(probs, labels, n_bins=10)
    filled = {round(b["high"], 1): b for b in bins if b["count"]}
    assert set(filled) == {0.6, 1.0}
    assert filled[1.0]["count"] == 2 and filled[1.0]["accuracy"] == pytest.approx(0.5)
    assert filled[0.6]["count"] == 4 and filled[0.6]["accuracy"] == pytest.approx(0.75)
    # ECE = 2/6 * |0.5 - 0.95| + 4/6 * |0.75 - 0.55|
    assert expected_calibration_error(probs, labels) == pytest.approx(2 / 6 * 0.45 + 4 / 6 * 0.2)
    # A confidence exactly on a bin edge belongs to the lower bin (bins are (low, high]).
    edge = reliability_bins(np.array([[0.6, 0.4]]), np.array([0]), n_bins=10)
    assert [b["count"] for b in edge if b["count"]] == [1] and edge[5]["count"] == 1


@pytest.mark.parametrize("tta_hflip", [False, True])
def test_predict_proba_is_softmax_of_logits_over_the_temperature(tta_hflip: bool) -> None:
    torch.manual_seed(0)
    model = MushroomClassifier(
        ["a", "b", "c"], name="small_cnn", pretrained=False, cnn_channels=(4, 8), tta_hflip=tta_hflip
    ).eval()
    model.temperature.fill_(2.5)
    images = torch.rand(5, 3, 24, 24)
    with torch.no_grad():
        got = model.predict_proba(images).numpy()
        expected = softmax(model(images).numpy() / 2.5)
        if tta_hflip:
            expected = (expected + softmax(model(torch.flip(images, dims=[-1])).numpy() / 2.5)) / 2
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # ... and not the uncalibrated probabilities, which these random weights make differ.
    with torch.no_grad():
        assert not np.allclose(got, softmax(model(images).numpy()), atol=1e-4)


def test_the_temperature_stays_within_its_bounds() -> None:
    """A validation split the model gets all right pushes T to 0 (certainty); all wrong, to infinity."""
    labels = torch.tensor([0, 1, 0, 1])
    right = torch.tensor([[0.05, 0.0], [0.0, 0.05], [0.05, 0.0], [0.0, 0.05]])
    assert fit_temperature(right, labels) == pytest.approx(TEMPERATURE_BOUNDS[0]) == 0.05
    assert fit_temperature(-right * 60, labels) == pytest.approx(TEMPERATURE_BOUNDS[1]) == 20.0


def test_empty_bins_have_no_accuracy_and_ece_uses_the_bins_asked_for() -> None:
    probs = np.array([[0.95, 0.05], [0.75, 0.25], [0.72, 0.28], [0.65, 0.35]])
    labels = np.array([0, 0, 1, 0])
    bins = reliability_bins(probs, labels, n_bins=10)
    empty = [b for b in bins if not b["count"]]
    assert len(empty) == 7 and all(b["accuracy"] is None and b["confidence"] is None for b in empty)
    # 5 bins: 0.65, 0.72, 0.75 share (0.6, 0.8]; 10 bins split them, and ECE changes (0.0425 / 0.2175).
    assert expected_calibration_error(probs, labels, n_bins=5) != pytest.approx(
        expected_calibration_error(probs, labels, n_bins=10)
    )
    # Bins of 0.05: 0.65 alone, 0.72 and 0.75 together, 0.95 alone.
    by_hand = (abs(1 - 0.65) + 2 * abs(0.5 - 0.735) + abs(1 - 0.95)) / 4
    assert expected_calibration_error(probs, labels, n_bins=20) == pytest.approx(by_hand)
