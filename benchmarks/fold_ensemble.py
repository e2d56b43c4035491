"""Would an ensemble of the k fold models beat one model? Judged on a frozen backbone's features, paired.

    python benchmarks/fold_ensemble.py logs/oof/base/source --data ../shared/data/mushrooms-real \
        --open-set ../shared/data/open-set --hf-cache ../shared/weights/hf-cache --out logs/oof/ens-src

With a frozen backbone, an ensemble of the k models a cross-validation leaves behind costs nothing at
inference beyond k heads on one set of features; it costs k trainings. Whether it is worth them is a question
about the heads, so it is answered on cached features (mirror-averaged, as ``tta_hflip`` answers) without
training the backbone's folds again. For each outer fold of a cross-validation (``invoke cv``,
``benchmarks/out_of_fold.py``) two candidates learn from the photos that fold's model trained on and
predict its validation and test photos:

- **one head** trained on all of them, as the shipped recipe trains one model;
- **k heads**, each trained on k-1 of k inner folds of them (by ``--unit``: duplicate group, or source for the
  source view), their probabilities averaged: the fold models' ensemble, one level down.

Each head is the recipe's head (a linear layer on the pooled features; AdamW at ``--lr``, weight decay 0.05,
dropout 0.2, label smoothing 0.1, the danger term, genera drawn with weight n^-0.5, cosine schedule), trained
without augmentation. Both are written as fold tables with thresholds fitted again on the fold's validation
rows, pooled, and compared (``python -m mushroom.cv``'s paired verdicts). About 5 minutes on 2 cores once the
features are cached (``<out>/teacher-features.npz``; extracting them takes about 3 minutes).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from second_view import as_table, folds_arguments, table_and_features, targets

from mushroom.core.open_set import NEGATIVE_KINDS
from mushroom.cv import compare, deadly_classes, pooled_report, refit, write_folds
from mushroom.predictions import Predictions

log = logging.getLogger("fold_ensemble")


def train_head(
    feats: np.ndarray, y: np.ndarray, deadly: torch.Tensor, seed: int, lr: float, epochs: int
) -> torch.nn.Linear:
    """The recipe's head on fixed features: what training a frozen backbone's model amounts to."""
    from mushroom.models.scoring import danger_term  # imports timm: after --hf-cache set the hub offline

    generator = torch.Generator().manual_seed(seed)
    x, target = torch.from_numpy(feats).float(), torch.from_numpy(y)
    counts = np.bincount(y, minlength=len(deadly))
    draw = torch.from_numpy(counts[y] ** -0.5).float()
    head = torch.nn.Linear(x.shape[1], len(deadly))
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.05)
    steps = max(1, len(x) // 32)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps)
    for _ in range(epochs * steps):
        batch = torch.multinomial(draw, 32, replacement=True, generator=generator)
        dropped = torch.nn.functional.dropout(x[batch], 0.2)
        logits = head(dropped)
        loss = torch.nn.functional.cross_entropy(logits, target[batch], label_smoothing=0.1)
        loss = loss + danger_term(logits, target[batch], deadly)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return head


def predict(head: torch.nn.Linear, feats: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return head(feats).softmax(-1).numpy()


def head_predictions(
    table: Predictions,
    feats: np.ndarray,
    deadly_genera: np.ndarray,
    k: int,
    unit: str,
    lr: float,
    epochs: int,
) -> dict[str, np.ndarray]:
    """Per outer fold, one head and the mean of k inner-fold heads, predicting that fold's rows."""
    y = targets(table)
    deadly = torch.from_numpy(np.concatenate([deadly_genera, np.zeros(len(NEGATIVE_KINDS), dtype=bool)]))
    units = table.group if unit == "group" else table.source
    width = len(deadly)
    out = {"one-head": np.zeros((len(table), width)), f"{k}-heads": np.zeros((len(table), width))}
    for fold in sorted(set(table.fold.tolist())):
        rows = table.fold == fold
        trained_on = np.flatnonzero(table.trained_on(fold))
        held = torch.from_numpy(feats[rows]).float()
        one = train_head(feats[trained_on], y[trained_on], deadly, 0, lr, epochs)
        out["one-head"][rows] = predict(one, held)
        names = sorted(set(units[trained_on].tolist()))
        inner = np.random.default_rng(fold).permutation(len(names)) % k
        inner_fold = inner[np.searchsorted(names, units[trained_on])]
        members = []
        for j in range(k):
            part = trained_on[inner_fold != j]
            members.append(predict(train_head(feats[part], y[part], deadly, j + 1, lr, epochs), held))
        out[f"{k}-heads"][rows] = np.mean(members, 0)
        log.info("fold %s: %d training photos, %d inner units", fold, len(trained_on), len(names))
    return out


def main() -> None:
    parser = folds_arguments(__doc__ or "", "tf_efficientnet_lite0.in1k", 256)
    parser.add_argument("--k", type=int, default=3, help="heads in the ensemble (inner folds)")
    parser.add_argument("--unit", choices=("group", "source"), default="group", help="what inner folds hold")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--open-set-tpr", type=float, default=0.9)
    parser.add_argument("--dangerous-target", type=float, default=0.01)
    parser.add_argument("--deadly-risk", type=float, default=0.01)
    args = parser.parse_args()
    torch.manual_seed(0)
    table, feats = table_and_features(args)
    deadly = deadly_classes(table.class_names, "genus")
    if deadly is None:
        raise SystemExit("The genus safety table does not cover these classes: the danger term needs it.")
    candidates = head_predictions(table, feats, deadly, args.k, args.unit, args.lr, args.epochs)
    for name, six in candidates.items():
        answered = refit(
            as_table(table, six), deadly, args.open_set_tpr, args.dangerous_target, args.deadly_risk
        )
        write_folds(answered, args.out / name)
        pooled_report(args.out / name)
    compare(args.out / "one-head", args.out / f"{args.k}-heads")


if __name__ == "__main__":
    main()
