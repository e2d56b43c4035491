"""The per-photo predictions table: one row per evaluated photo, what the model said and why.

Every training run writes ``test_predictions.csv`` beside ``test_metrics.json``: the test photos of the
known genera and the held-out negatives (part ``test``), then the validation ones (part ``val``, which
the thresholds were fitted on), each with its fold, duplicate group, source family, calibrated
probabilities, open-set scores, the thresholds of the model that answered and the answer itself. The
folds of a cross-validation concatenate into the out-of-fold table that :mod:`mushroom.cv` pools, and
any analysis can start from it (``pandas.read_csv``).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from mushroom.core.answer import Thresholds, decide
from mushroom.errors import MushroomError


@dataclass
class TestScores:
    """What a model said about a test set: calibrated probabilities, open-set scores and labels of the
    photos of known classes, and the probabilities and open-set scores of each set of negatives."""

    probs: np.ndarray
    open_set: np.ndarray
    labels: np.ndarray
    negatives: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


KNOWN = "known"
#: Columns before the per-class probabilities (``p:<class>``).
COLUMNS = (
    "photo",
    "part",
    "kind",
    "label",
    "fold",
    "group",
    "source",
    "known_score",
    "not_mushroom_share",
    "abstain_threshold",
    "open_set_threshold",
    "deadly_risk",
    "answer",
)
#: The columns of tables written before the deadly-risk rule (read with no such rule).
COLUMNS_BEFORE_DEADLY_RISK = tuple(name for name in COLUMNS if name != "deadly_risk")
PROBABILITY_PREFIX = "p:"


@dataclass(frozen=True)
class Predictions:
    """Columns of the table as arrays; ``label`` is -1 and ``kind`` the negative's kind for negatives,
    ``open_set`` and the thresholds are NaN where the model has none."""

    class_names: list[str]
    photo: np.ndarray
    part: np.ndarray
    kind: np.ndarray
    label: np.ndarray
    fold: np.ndarray
    group: np.ndarray
    source: np.ndarray
    probs: np.ndarray
    open_set: np.ndarray
    abstain_threshold: np.ndarray
    open_set_threshold: np.ndarray
    deadly_risk: np.ndarray
    answer: np.ndarray

    def __len__(self) -> int:
        return len(self.photo)

    @property
    def known(self) -> np.ndarray:
        """Which rows are photos of the known genera."""
        return self.kind == KNOWN

    @property
    def tested(self) -> Predictions:
        """The rows of held-out (test) photos: what the figures are measured on."""
        return self.subset(self.part == "test")

    @property
    def answered_with_genus(self) -> np.ndarray:
        """Which rows got a genus (not "not sure", "not a mushroom" or "not a genus I know")."""
        return np.isin(self.answer, self.class_names)

    def answered_at(
        self,
        abstain_threshold: np.ndarray,
        open_set_threshold: np.ndarray,
        deadly_risk: np.ndarray | None = None,
        deadly: np.ndarray | None = None,
    ) -> Predictions:
        """The same photos answered again at other thresholds (one per row; NaN: none). ``deadly_risk``:
        ``None`` keeps the table's; ``deadly`` (which classes hold deadly species) is needed to apply it."""
        risk = self.deadly_risk if deadly_risk is None else deadly_risk
        return replace(
            self,
            abstain_threshold=abstain_threshold,
            open_set_threshold=open_set_threshold,
            deadly_risk=risk,
            answer=answers(
                self.class_names,
                self.probs,
                self.open_set,
                abstain_threshold,
                open_set_threshold,
                risk,
                deadly,
            ),
        )

    def trained_on(self, fold: int) -> np.ndarray:
        """Which rows are photos fold ``fold``'s model trained on: the other folds' test rows, less the photos
        that fold validated or tested on (each photo is tested by exactly one fold of a cross-validation)."""
        seen = np.isin(self.photo, self.photo[self.fold == fold])
        return (self.part == "test") & ~seen

    def subset(self, rows: np.ndarray) -> Predictions:
        """The rows ``rows`` (a mask or indices, repeats allowed: a bootstrap sample)."""
        return Predictions(
            self.class_names,
            **{f.name: getattr(self, f.name)[rows] for f in fields(self) if f.name != "class_names"},
        )

    @classmethod
    def concat(cls, tables: Sequence[Predictions]) -> Predictions:
        if not tables:
            raise MushroomError("No predictions to pool.")
        names = tables[0].class_names
        for table in tables[1:]:
            if table.class_names != names:
                raise MushroomError(
                    f"Predictions for classes {table.class_names} cannot be pooled with predictions for "
                    f"{names}: every fold must be trained on the same classes."
                )
        return cls(
            names,
            **{
                f.name: np.concatenate([getattr(t, f.name) for t in tables])
                for f in fields(cls)
                if f.name != "class_names"
            },
        )

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = [*COLUMNS, *(PROBABILITY_PREFIX + name for name in self.class_names)]
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for i in range(len(self)):
                label = self.class_names[self.label[i]] if self.label[i] >= 0 else ""
                writer.writerow(
                    [
                        self.photo[i],
                        self.part[i],
                        self.kind[i],
                        label,
                        int(self.fold[i]),
                        self.group[i],
                        self.source[i],
                        *(_number(v) for v in self.open_set[i]),
                        _number(self.abstain_threshold[i]),
                        _number(self.open_set_threshold[i]),
                        _number(self.deadly_risk[i]),
                        self.answer[i],
                        *(_number(p) for p in self.probs[i]),
                    ]
                )
        return path

    @classmethod
    def read(cls, path: str | Path) -> Predictions:
        path = Path(path)
        with open(path, newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            rows = list(reader)
        columns = next(
            (
                known
                for known in (COLUMNS, COLUMNS_BEFORE_DEADLY_RISK)
                if tuple(header or ())[: len(known)] == known
            ),
            None,
        )
        if header is None or columns is None:
            raise MushroomError(f"{path} is not a predictions table: its columns should start {COLUMNS}.")
        names = [name.removeprefix(PROBABILITY_PREFIX) for name in header[len(columns) :]]
        column = {name: [row[i] for row in rows] for i, name in enumerate(columns)}
        column.setdefault("deadly_risk", [""] * len(rows))
        scores = columns.index("known_score")
        return cls(
            names,
            photo=np.asarray(column["photo"], dtype=object),
            part=np.asarray(column["part"], dtype=object),
            kind=np.asarray(column["kind"], dtype=object),
            label=np.asarray([names.index(v) if v else -1 for v in column["label"]], dtype=np.int64),
            fold=np.asarray(column["fold"], dtype=np.int64),
            group=np.asarray(column["group"], dtype=object),
            source=np.asarray(column["source"], dtype=object),
            probs=_floats([row[len(columns) :] for row in rows]).reshape(len(rows), len(names)),
            open_set=_floats([[row[scores], row[scores + 1]] for row in rows]).reshape(len(rows), 2),
            abstain_threshold=_floats(column["abstain_threshold"]),
            open_set_threshold=_floats(column["open_set_threshold"]),
            deadly_risk=_floats(column["deadly_risk"]),
            answer=np.asarray(column["answer"], dtype=object),
        )


def _floats(cells: list) -> np.ndarray:
    """Numbers as written by :func:`_number`: an empty cell is NaN (no such score or threshold)."""
    return np.vectorize(lambda cell: float(cell) if cell != "" else np.nan, otypes=[np.float64])(
        np.asarray(cells, dtype=object)
    )


def _number(value: float) -> str:
    return "" if math.isnan(float(value)) else repr(float(value))


def predictions_of(
    class_names: Sequence[str],
    photos: Sequence[str],
    kind: str | Sequence[str],
    labels: np.ndarray,
    groups: Sequence[str],
    sources: Sequence[str],
    fold: int,
    probs: np.ndarray,
    open_set: np.ndarray | None,
    thresholds: Thresholds | tuple[float | None, float | None],
    part: str = "test",
    deadly: np.ndarray | None = None,
) -> Predictions:
    """The table's rows for photos scored by one model, with the answer :func:`mushroom.core.answer.answer`
    gives at that model's ``thresholds``: the answer a user would have read (``deadly``: which classes
    hold deadly species, for the deadly-risk rule)."""
    n = len(photos)
    probs = np.asarray(probs, dtype=np.float64).reshape(n, len(class_names))
    scores = np.full((n, 2), np.nan) if open_set is None else np.asarray(open_set, dtype=np.float64)
    abstain, open_threshold, risk = Thresholds(*thresholds)
    abstain_column = np.full(n, np.nan if abstain is None else abstain)
    open_set_column = np.full(n, np.nan if open_threshold is None else open_threshold)
    risk_column = np.full(n, np.nan if risk is None else risk)
    return Predictions(
        list(class_names),
        photo=np.asarray(list(photos), dtype=object),
        part=np.full(n, part, dtype=object),
        kind=np.asarray([kind] * n if isinstance(kind, str) else list(kind), dtype=object),
        label=np.asarray(labels, dtype=np.int64).reshape(n),
        fold=np.full(n, fold, dtype=np.int64),
        group=np.asarray(list(groups), dtype=object),
        source=np.asarray(list(sources), dtype=object),
        probs=probs,
        open_set=scores,
        abstain_threshold=abstain_column,
        open_set_threshold=open_set_column,
        deadly_risk=risk_column,
        answer=answers(class_names, probs, scores, abstain_column, open_set_column, risk_column, deadly),
    )


def answers(
    class_names: Sequence[str],
    probs: np.ndarray,
    open_set: np.ndarray,
    abstain_threshold: np.ndarray,
    open_set_threshold: np.ndarray,
    deadly_risk: np.ndarray | None = None,
    deadly: np.ndarray | None = None,
) -> np.ndarray:
    """Per row, the prediction :func:`mushroom.core.answer.decide` gives at that row's thresholds (NaN:
    none; NaN open-set scores: a model without them): the answer a user would have read. The deadly-risk
    rule needs ``deadly``, which classes hold deadly species."""

    def given(value: float) -> float | None:
        return None if math.isnan(value) else float(value)

    risk = np.full(len(probs), np.nan) if deadly_risk is None else deadly_risk
    if deadly is None and not np.isnan(risk).all():
        raise MushroomError(
            "These predictions answer with the deadly-risk rule, which needs to know which classes hold "
            "deadly species: give the safety table that covers them."
        )
    return np.asarray(
        [
            decide(
                probs[i],
                class_names,
                Thresholds(given(abstain_threshold[i]), given(open_set_threshold[i]), given(risk[i])),
                None if np.isnan(open_set[i]).any() else open_set[i],
                deadly,
            )[0]
            for i in range(len(probs))
        ],
        dtype=object,
    )
