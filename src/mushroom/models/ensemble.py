"""Several networks as one: their calibrated genus probabilities and open-set scores averaged."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import torch

from mushroom.errors import MushroomError
from mushroom.models.classifier import MushroomClassifier


class Ensemble(torch.nn.Module):
    """The members' calibrated genus probabilities and open-set scores, averaged: what the exported graph
    computes. The members answer in the same classes and read the same input (one graph, one input)."""

    def __init__(self, members: Sequence[MushroomClassifier]) -> None:
        super().__init__()
        if len(members) < 2:
            raise MushroomError("An ensemble needs two models or more: give ensemble_with=[...].")
        first = members[0]
        for i, member in enumerate(members[1:], start=1):
            if member.hparams.get("class_names") != first.hparams.get("class_names"):
                raise MushroomError(
                    f"Member {i} answers in the classes {member.class_names}, the first in "
                    f"{first.class_names}: an ensemble averages answers in one set of classes. Train the "
                    "members on the same data."
                )
            if member.hparams.get("open_set_classes") != first.hparams.get("open_set_classes"):
                raise MushroomError(
                    f"Member {i} and the first were not trained on the same kinds of negatives: their "
                    "open-set scores do not mean the same. Train the members with the same data.open_set."
                )
            mine, theirs = first.hparams.get("preprocessing") or {}, member.hparams.get("preprocessing") or {}
            if differ := sorted(key for key in {*mine, *theirs} if mine.get(key) != theirs.get(key)):
                found = ", ".join(f"{key} {theirs.get(key)} against {mine.get(key)}" for key in differ)
                fix = " ".join(f"data.{key}={override_text(mine.get(key))}" for key in differ)
                raise MushroomError(
                    f"Member {i} reads its photos otherwise than the first ({found}): one graph takes one "
                    f"input. Train it with {fix}."
                )
        self.members = torch.nn.ModuleList(members)
        self.class_names = list(first.class_names)

    def predict_scores(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean of the members' :meth:`MushroomClassifier.predict_scores`."""
        scores = [member.predict_scores(images) for member in self.members]  # type: ignore[operator]
        return torch.stack([p for p, _ in scores]).mean(0), torch.stack([o for _, o in scores]).mean(0)


def override_text(value: Any) -> str:
    """A value as a Hydra override takes it on a command line (``[0.5,0.5,0.5]``, ``0.875``)."""
    return json.dumps(value, separators=(",", ":"))
