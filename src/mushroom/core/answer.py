"""Turning probabilities into what a forager reads: top-k, "not sure", and the safety note.

Shared by ``mushroom.predict`` and the web service, so both answer the same way. :class:`Answer` is the
one description of an answer: the service's response model (OpenAPI), predict's CSV columns and the web
page's details all follow its fields, so a new field is added here, in :class:`Answer` and :func:`answer`.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NamedTuple

import numpy as np
from pydantic import Field

from mushroom.core.open_set import NOT_A_MUSHROOM, REASONS, UNKNOWN_GENUS, verdict
from mushroom.core.safety import class_entries, confident, deadly_of
from mushroom.errors import MushroomError

SAFETY_WARNING = (
    "Never eat a wild mushroom because an app named it. Photos cannot show spore prints, smell or "
    "the base of the stem, and deadly species look like edible ones. Ask a local expert."
)
NOT_SURE = "not sure"
# What kind of answer a photo gets, for programs (the prediction says it in words).
VERDICTS = {NOT_SURE: "not_sure", NOT_A_MUSHROOM: "not_a_mushroom", UNKNOWN_GENUS: "unknown_genus"}


class Thresholds(NamedTuple):
    """A model's operating point, fitted or set at calibration and stored in it: the "not sure" confidence,
    the open-set known score and the deadly-risk rule (``None``: not applied)."""

    abstain: float | None = None
    open_set: float | None = None
    deadly_risk: float | None = None


def chosen_threshold(override: float | None, stored: float | None) -> float | None:
    """The "not sure" threshold to answer with: ``override`` when given, else the one fitted on validation
    and stored in the model (``None``: never "not sure"). An override outside [0, 1] is refused by name."""
    if override is None:
        return stored
    if isinstance(override, bool) or not isinstance(override, (int, float)) or not 0.0 <= override <= 1.0:
        raise MushroomError(
            f"abstain_threshold={override}: a confidence threshold is a probability between 0 and 1 "
            "(e.g. abstain_threshold=0.5), or null for the threshold fitted on validation."
        )
    return float(override)


@dataclass
class RankedClass:
    name: Annotated[str, Field(description="A class the model knows (a genus).")]
    probability: Annotated[float, Field(ge=0.0, le=1.0, description="Calibrated probability.")]


@dataclass
class DangerousClass(RankedClass):
    deadly: Annotated[bool, Field(description="The genus holds deadly species.")]
    poisonous: Annotated[bool, Field(description="The genus holds poisonous species.")]
    note: Annotated[str | None, Field(description="What to know about this genus.")]


@dataclass
class Answer:
    """What a photo gets: the service's JSON (its OpenAPI response model), a row of predict's output."""

    prediction: Annotated[
        str,
        Field(
            description="The most likely class; 'not a mushroom' or 'not a genus I know' when the photo is "
            "unlike the known genera; 'not sure' below the confidence threshold."
        ),
    ]
    verdict: Annotated[
        Literal["genus", "not_sure", "not_a_mushroom", "unknown_genus"],
        Field(description="Which kind of answer the prediction is."),
    ]
    reason: Annotated[str | None, Field(description="Why the answer is not a genus (null when it is one).")]
    confidence: Annotated[float, Field(ge=0.0, le=1.0, description="The top class's probability.")]
    not_sure: Annotated[
        bool,
        Field(
            description="The confidence is below the abstain threshold, or the top genus holds no deadly "
            "species while the genera that do hold at least deadly_risk."
        ),
    ]
    abstain_threshold: Annotated[
        float | None, Field(description="Below this confidence the answer is 'not sure'.")
    ]
    deadly_risk: Annotated[
        float | None,
        Field(
            description="A genus without deadly species is named only while the genera with deadly species "
            "together hold less than this probability (null: no such rule)."
        ),
    ]
    known_score: Annotated[
        float | None,
        Field(
            description="How much the photo looks like the known genera (open-set score; null for models "
            "exported without it)."
        ),
    ]
    open_set_threshold: Annotated[
        float | None,
        Field(description="Below this known score the answer is 'not a mushroom' or 'not a genus I know'."),
    ]
    top_k: Annotated[list[RankedClass], Field(description="The most likely classes, most likely first.")]
    note: Annotated[str | None, Field(description="The safety note of the predicted class.")]
    dangerous: Annotated[
        list[DangerousClass], Field(description="Classes among the top k with dangerous species.")
    ]
    warning: Annotated[str, Field(description="Never eat a mushroom because of this answer.")]


def scalar_fields() -> list[str]:
    """The answer's fields that hold one value (not a list): predict's CSV columns, the page's details."""
    hints = typing.get_type_hints(Answer)
    return [f.name for f in dataclasses.fields(Answer) if typing.get_origin(hints[f.name]) is not list]


def top_k(probs: np.ndarray, class_names: Sequence[str], k: int) -> list[dict[str, Any]]:
    order = np.argsort(-probs, kind="stable")[: max(1, k)]
    return [{"name": class_names[i], "probability": round(float(probs[i]), 6)} for i in order]


def decide(
    probs: np.ndarray,
    class_names: Sequence[str],
    thresholds: Thresholds,
    open_set: np.ndarray | None = None,
    deadly: np.ndarray | None = None,
) -> tuple[str, str | None]:
    """What one photo is called and why (``None`` when it is called a class).

    ``"not a mushroom"`` or ``"not a genus I know"`` when its known score (``open_set[0]``,
    :mod:`mushroom.core.open_set`) is below the open-set threshold; else ``"not sure"`` when its most
    likely class is below the abstain threshold, or is a genus without deadly species while the genera
    with deadly species (``deadly``) hold at least the deadly risk (:func:`mushroom.core.safety.confident`);
    else that class. ``open_set=None``: a model without open-set scores, whose threshold cannot apply.
    """
    if open_set is not None:
        rejected = verdict(float(open_set[0]), float(open_set[1]), thresholds.open_set)
        if rejected is not None:
            return rejected, REASONS.get(rejected)
    row = np.asarray(probs, dtype=np.float64).reshape(1, -1)
    best = int(row[0].argmax())
    if confident(row, thresholds.abstain, deadly, thresholds.deadly_risk)[0]:
        return class_names[best], None
    name, probability = class_names[best], row[0, best]
    if thresholds.abstain is not None and probability < thresholds.abstain:
        return NOT_SURE, (
            f"{name} is the most likely genus, but at {probability:.0%} the model is not confident enough "
            f"(it answers from {thresholds.abstain:.0%})."
        )
    assert deadly is not None and thresholds.deadly_risk is not None  # the only other way to not be sure
    look_alikes = ", ".join(other for other, d in zip(class_names, deadly, strict=True) if d)
    return NOT_SURE, (
        f"{name} is the most likely genus, but genera with deadly species ({look_alikes}) hold "
        f"{row[0, deadly].sum():.1%}: too much to name a genus without them (the model names one only "
        f"below {thresholds.deadly_risk:.1%})."
    )


def answer(
    probs: np.ndarray,
    class_names: Sequence[str],
    k: int = 3,
    abstain_threshold: float | None = None,
    safety: Mapping[str, Any] | None = None,
    open_set: np.ndarray | None = None,
    open_set_threshold: float | None = None,
    deadly_risk: float | None = None,
) -> dict[str, Any]:
    """The answer for one photo: the prediction and its reason (:func:`decide`, with the classes that
    hold deadly species read from the ``safety`` table), the top k, and the safety notes. ``dangerous``
    lists every class among the top k whose genus holds deadly or poisonous species, so that a deadly
    look-alike is named even when it is not the top answer. A species class counts as its genus
    (:func:`mushroom.core.safety.class_entries`).
    """
    if open_set is None:
        open_set_threshold = None  # a model without open-set scores cannot apply the threshold
    thresholds = Thresholds(abstain_threshold, open_set_threshold, deadly_risk)
    per_class = class_entries(class_names, safety)
    prediction, reason = decide(probs, class_names, thresholds, open_set, deadly_of(per_class))
    ranked = top_k(probs, class_names, k)
    entries = dict(zip(class_names, per_class, strict=True))
    best = ranked[0]
    dangerous = [
        DangerousClass(row["name"], row["probability"], **_danger(entries[row["name"]]))  # type: ignore[arg-type]
        for row in ranked
        if _is_dangerous(entries[row["name"]])
    ]
    reply = Answer(
        prediction=prediction,
        verdict=VERDICTS.get(prediction, "genus"),  # type: ignore[arg-type]
        reason=reason,
        confidence=best["probability"],
        not_sure=prediction == NOT_SURE,
        abstain_threshold=abstain_threshold,
        deadly_risk=deadly_risk,
        known_score=round(float(open_set[0]), 6) if open_set is not None else None,
        open_set_threshold=open_set_threshold,
        top_k=[RankedClass(**row) for row in ranked],
        note=(entries[best["name"]] or {}).get("note") if prediction == best["name"] else None,
        dangerous=dangerous,
        warning=SAFETY_WARNING,
    )
    return dataclasses.asdict(reply)


def _is_dangerous(entry: Mapping[str, Any] | None) -> bool:
    return bool(entry) and bool(entry.get("deadly") or entry.get("poisonous"))  # type: ignore[union-attr]


def _danger(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "deadly": bool(entry.get("deadly", False)),
        "poisonous": bool(entry.get("poisonous", False)),
        "note": entry.get("note"),
    }
