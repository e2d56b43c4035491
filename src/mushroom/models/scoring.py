"""The math the classifier's answers and its safety loss rest on, as functions of logits.

The outputs are one logit per genus, then (with outlier exposure) one per kind of negative, "not a genus I
know" before "not a mushroom".
"""

from __future__ import annotations

import torch


def open_set_scores(logits: torch.Tensor, num_genera: int) -> torch.Tensor:
    """``N x 2``: the known score and the share of the doubt that says "not a mushroom".

    With negative outputs: the softmax mass on the genera, and ``p(not mushroom) / p(any negative)``.
    Without: the energy ``logsumexp`` of the genus logits, and 0 (it cannot tell which kind).
    """
    if logits.shape[-1] == num_genera:
        known = logits.logsumexp(-1)
        return torch.stack([known, torch.zeros_like(known)], -1)
    probs = logits.softmax(-1)
    negative = probs[:, num_genera:]
    share = negative[:, -1] / negative.sum(-1).clamp_min(1e-12)
    return torch.stack([probs[:, :num_genera].sum(-1), share], -1)


def danger_term(logits: torch.Tensor, targets: torch.Tensor, deadly: torch.Tensor) -> torch.Tensor:
    """``-log p(any deadly genus)`` for each photo of a deadly genus, summed and divided by the batch size.

    Cross-entropy costs calling an Amanita a Boletus no more than calling it another deadly genus; this
    term costs only the mass put on harmless answers, the confusion that poisons a forager (as
    FungiCLEF's poisonous-confusion score weighs it). ``deadly``: which outputs are deadly genera (a mask
    at least as long as the logits; validation and test score the genera alone).
    """
    deadly = deadly[: logits.shape[-1]]
    at_risk = deadly[targets]
    if not at_risk.any():
        return logits.new_zeros(())
    deadly_mass = logits[at_risk].softmax(-1)[:, deadly].sum(-1)
    return -deadly_mass.clamp_min(1e-6).log().sum() / len(targets)
