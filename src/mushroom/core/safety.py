"""What a mistake costs a forager: the dangerous-confusion rate and answering "not sure".

The safety table (``configs/safety/genus.yaml``) says which genera hold deadly species. Calling a photo
of such a genus by a genus without deadly species is the mistake that can kill; everything here
counts that mistake, and trades answered images (coverage) against it with a confidence threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# -- the vocabulary -------------------------------------------------------------------------------------
#: Labels that tell a forager a mushroom may be eaten, and the label of the most dangerous class.
EDIBLE_LABELS = ("edible", "conditionally_edible")
DEADLY_LABEL = "deadly"

#: What ``data.prepare.safety_conflicts`` may say: drop those photos, keep them, or relabel them deadly.
SAFETY_POLICIES = ("drop", "keep", "relabel")


def check_safety_policy(policy: str) -> None:
    """Refuse, by name, a ``data.prepare.safety_conflicts`` that is not a policy."""
    from mushroom.errors import MushroomError

    if policy not in SAFETY_POLICIES:
        raise MushroomError(
            f"data.prepare.safety_conflicts={policy!r} is not a policy; "
            f"use one of {', '.join(SAFETY_POLICIES)}."
        )


def deadly_genera(table: Mapping[str, Mapping]) -> set[str]:
    """The genera the safety table marks as holding deadly species."""
    return {name for name, entry in table.items() if entry.get("deadly")}


# -- tables and masks -----------------------------------------------------------------------------------


def load_table(name: str) -> dict[str, Any]:
    """A safety table shipped in ``configs/safety/<name>.yaml``, read without Hydra."""
    import yaml

    from mushroom.errors import MushroomError

    path = Path(__file__).parents[1] / "configs" / "safety" / f"{name}.yaml"
    if not path.is_file():
        shipped = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise MushroomError(f"No safety table '{name}': the shipped ones are {', '.join(shipped)}.")
    table = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {str(key): value for key, value in table.items()}


def table_from_config(node: Any) -> dict[str, Any] | None:
    """The ``safety`` config node as a plain dict (``None`` when the config has none)."""
    from omegaconf import OmegaConf

    if not node:
        return None
    table = OmegaConf.to_container(node, resolve=True)
    return {str(key): value for key, value in table.items()} if isinstance(table, dict) else None


def class_entries(
    class_names: Sequence[str], table: Mapping[str, Any] | None
) -> list[Mapping[str, Any] | None]:
    """Each class's entry of the safety table (``None``: the table does not cover it).

    A class that is not itself a genus of the table counts as the genus its name stands for: a species
    (``Amanita phalloides``) or a common name of the 215-species set (``deathcap``), so a species model
    gets the same safety view as a genus model when the table covers their genera.
    """
    if not table:
        return [None] * len(class_names)
    from mushroom.core.taxonomy import folder_genus

    genera = set(table)
    return [table.get(name) or table.get(folder_genus(name, genera) or "") for name in class_names]


def deadly_mask(class_names: Sequence[str], table: Mapping[str, Any] | None) -> np.ndarray | None:
    """Which classes hold deadly species (:func:`class_entries`); ``None`` when the table does not cover
    every class, since a dangerous rate over part of the classes would read as the whole."""
    return deadly_of(class_entries(class_names, table)) if table else None


def deadly_of(entries: Sequence[Mapping[str, Any] | None]) -> np.ndarray | None:
    """Which of :func:`class_entries`' entries hold deadly species; ``None`` when one is missing."""
    if any(entry is None for entry in entries):
        return None
    return np.asarray([bool(entry.get("deadly", False)) for entry in entries])  # type: ignore[union-attr]


def confident(
    probs: np.ndarray,
    abstain_threshold: float | None,
    deadly: np.ndarray | None = None,
    deadly_risk: float | None = None,
) -> np.ndarray:
    """Per photo: may its most likely class be answered (rather than "not sure")?

    Its probability must reach ``abstain_threshold``; and a genus without deadly species is answered only
    while the genera with deadly species together hold less than ``deadly_risk`` (a cost-sensitive rule:
    a look-alike risk of a few percent is not worth naming a harmless genus). ``None``: no such test.
    """
    answered = np.ones(len(probs), dtype=bool)
    if abstain_threshold is not None:
        answered &= probs.max(axis=1) >= abstain_threshold
    if deadly_risk is not None and deadly is not None and deadly.any():
        harmless_answer = ~deadly[probs.argmax(axis=1)]
        answered &= ~(harmless_answer & (probs[:, deadly].sum(axis=1) >= deadly_risk))
    return answered


def dangerous_confusions(
    probs: np.ndarray,
    labels: np.ndarray,
    deadly: np.ndarray,
    threshold: float = 0.0,
    deadly_risk: float | None = None,
) -> dict[str, float | int | None]:
    """Counts and rates for images of deadly genera, answering only at confidence >= ``threshold`` (and
    under ``deadly_risk``, :func:`confident`).

    ``rate``: share of all deadly-genus images that got a confident answer naming a genus without
    deadly species (abstaining is safe). ``coverage``/``accuracy``: over every image, how many were
    answered and how many of those were right.
    """
    predicted = probs.argmax(axis=1)
    answered = confident(probs, threshold, deadly, deadly_risk)
    at_risk = deadly[labels]
    dangerous = at_risk & answered & ~deadly[predicted]
    n_answered = int(answered.sum())
    return {
        "threshold": float(threshold),
        "coverage": float(answered.mean()) if len(labels) else 0.0,
        "accuracy_answered": float((predicted == labels)[answered].mean()) if n_answered else None,
        "deadly_genus_images": int(at_risk.sum()),
        "dangerous_confusions": int(dangerous.sum()),
        "dangerous_confusion_rate": float(dangerous.sum() / at_risk.sum()) if at_risk.any() else None,
    }


def abstain_curve(
    probs: np.ndarray, labels: np.ndarray, deadly: np.ndarray, thresholds: Sequence[float] | None = None
) -> list[dict]:
    grid = np.round(np.arange(0.0, 1.0, 0.05), 2) if thresholds is None else thresholds
    return [dangerous_confusions(probs, labels, deadly, float(t)) for t in grid]


def threshold_for_target(
    probs: np.ndarray,
    labels: np.ndarray,
    deadly: np.ndarray,
    target: float,
    deadly_risk: float | None = None,
) -> float:
    """The lowest confidence threshold (most images answered) whose dangerous-confusion rate <= target,
    with the ``deadly_risk`` rule applied too (:func:`confident`).

    Fitted on the validation split; 1.0 + a hair (answer nothing) when no threshold meets the target.
    """
    candidates = np.unique(np.concatenate([[0.0], probs.max(axis=1)]))
    for threshold in candidates:
        rate = dangerous_confusions(probs, labels, deadly, float(threshold), deadly_risk)[
            "dangerous_confusion_rate"
        ]
        if rate is None or rate <= target:
            return float(threshold)
    return float(np.nextafter(1.0, 2.0))
