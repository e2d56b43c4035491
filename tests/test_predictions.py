"""The per-photo predictions table (``mushroom.predictions``): what the out-of-fold yardstick pools and
every analysis reads, so a value lost or moved on its way through the CSV changes every figure after it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from mushroom.checkpoints import load_classifier
from mushroom.core.answer import NOT_SURE, Thresholds
from mushroom.errors import MushroomError
from mushroom.inference import fold_predictions, score_test_set
from mushroom.predictions import COLUMNS, Predictions, answers, predictions_of
from tests.helpers import datamodule_of

NAMES = ["Agaricus", "Amanita", "Boletus"]
DEADLY = np.array([False, True, False])


def known_rows() -> Predictions:
    """Known photos, one of each genus, with awkward names and single-precision scores, from a model with
    all three thresholds."""
    return predictions_of(
        NAMES,
        ["Agaricus/a, b.jpg", 'Amanita/"quoted".jpg', "Boletus/çèp.jpg"],
        "known",
        np.array([0, 1, 2]),
        ["group 1", "group 2", "group 3"],
        ["inat", "flickr", "inat"],
        0,
        # float32, as a network's softmax gives them
        np.array([[0.9012346, 0.0087654, 0.09], [0.01, 0.98, 0.01], [0.04, 0.05, 0.91]], dtype=np.float32),
        np.array([[0.9, 0.1], [0.3, 0.8], [0.95, 0.05]], dtype=np.float32),
        Thresholds(0.6, 0.5, 0.02),
        deadly=DEADLY,
    )


def every_kind_of_row() -> Predictions:
    """:func:`known_rows`; negatives of two kinds from a model without open-set scores or thresholds; and
    validation rows of a third fold."""
    negatives = predictions_of(
        NAMES,
        ["not_mushroom/cat.jpg", "other_genera/Morchella/m.jpg"],
        ["not_mushroom", "other_genus"],
        np.array([-1, -1]),
        ["cat", "morel"],
        ["pexels", "inat"],
        1,
        np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]),
        None,
        (None, None),
    )
    validation = predictions_of(
        NAMES,
        ["Agaricus/v.jpg"],
        "known",
        np.array([0]),
        ["group 4"],
        ["mo"],
        2,
        np.array([[0.55, 0.25, 0.2]]),
        np.array([[0.7, 0.2]]),
        (0.6, 0.5),
        part="val",
    )
    return Predictions.concat([known_rows(), negatives, validation])


def assert_same(got: Predictions, expected: Predictions) -> None:
    assert got.class_names == expected.class_names
    for field in dataclasses.fields(Predictions):
        if field.name == "class_names":
            continue
        ours, theirs = getattr(got, field.name), getattr(expected, field.name)
        assert (ours.dtype, ours.shape) == (theirs.dtype, theirs.shape), field.name
        if theirs.dtype.kind == "f":
            np.testing.assert_array_equal(ours, theirs, err_msg=field.name)  # NaN where NaN, every digit
        else:
            assert ours.tolist() == theirs.tolist(), field.name


def test_the_answers_are_a_users_at_each_models_thresholds() -> None:
    table = every_kind_of_row()
    # Agaricus passes all three rules (Amanita holds under 1%); Amanita's known score is under 0.5 and it
    # leans to "not a mushroom"; Boletus is confident, but Amanita holds 5%, past the 2% deadly risk;
    # negatives and the validation photo answer with their models' rules (none; no deadly-risk rule).
    assert table.answer.tolist() == [
        "Agaricus", "not a mushroom", NOT_SURE, "Agaricus", "Boletus", NOT_SURE,
    ]  # fmt: skip
    assert table.answered_with_genus.tolist() == [True, False, False, True, True, False]
    assert table.known.tolist() == [True, True, True, False, False, True]
    assert table.kind.tolist()[3:5] == ["not_mushroom", "other_genus"]
    assert table.label.tolist() == [0, 1, 2, -1, -1, 0]
    assert table.fold.tolist() == [0, 0, 0, 1, 1, 2]
    assert table.part.tolist() == ["test"] * 5 + ["val"]
    assert table.source.tolist() == ["inat", "flickr", "inat", "pexels", "inat", "mo"]
    assert table.group.tolist()[3:] == ["cat", "morel", "group 4"]
    # No score or threshold is written down as a number it never was.
    assert np.isnan(table.open_set[3:5]).all() and not np.isnan(table.open_set[[0, 1, 2, 5]]).any()
    assert np.isnan(table.abstain_threshold[3:5]).all() and np.isnan(table.open_set_threshold[3:5]).all()
    assert table.abstain_threshold[[0, 5]].tolist() == [0.6, 0.6]
    assert table.open_set_threshold[[0, 5]].tolist() == [0.5, 0.5]
    assert table.deadly_risk[0] == 0.02 and np.isnan(table.deadly_risk[3:]).all()
    assert table.tested.photo.tolist() == table.photo[:5].tolist()
    known = known_rows()
    assert known.probs.dtype == known.open_set.dtype == np.float64  # before any pooling
    # Double precision and Python objects throughout: a float32 written and read back is another number, and
    # a fixed-width string column would cut off a longer answer written into it.
    assert table.probs.dtype == table.open_set.dtype == table.abstain_threshold.dtype == np.float64
    for column in ("photo", "part", "kind", "group", "source", "answer"):
        assert getattr(table, column).dtype == object, column


def test_a_table_reads_back_as_it_was_written(tmp_path: Path) -> None:
    table = every_kind_of_row()
    path = table.write(tmp_path / "deep" / "folder" / "predictions.csv")
    assert path == tmp_path / "deep" / "folder" / "predictions.csv"
    assert_same(Predictions.read(path), table)
    known = known_rows()  # alone too: pooled with double-precision rows, single precision would not show
    assert_same(Predictions.read(known.write(tmp_path / "known.csv")), known)
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[0].strip() == ",".join([*COLUMNS, "p:Agaricus", "p:Amanita", "p:Boletus"])
    cat = next(line for line in lines if line.startswith("not_mushroom/cat.jpg"))
    # A negative has no label, and what it lacks (scores, thresholds) is an empty cell, not "nan".
    assert cat.strip().split(",")[:13] == [
        "not_mushroom/cat.jpg", "test", "not_mushroom", "", "1", "cat", "pexels",
        "", "", "", "", "", "Agaricus",
    ]  # fmt: skip
    assert len(lines) == len(table) + 2  # a header, a line a row, the last one ended
    # Rows written again after reading are the same text: nothing drifts through repeated pooling.
    again = Predictions.read(path).write(tmp_path / "again.csv")
    assert again.read_text(encoding="utf-8") == path.read_text(encoding="utf-8")


def test_the_table_is_plain_csv_for_other_tools(tmp_path: Path) -> None:
    import csv

    path = every_kind_of_row().write(tmp_path / "p.csv")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["photo"] for row in rows][:3] == [
        "Agaricus/a, b.jpg",
        'Amanita/"quoted".jpg',
        "Boletus/çèp.jpg",
    ]
    assert float(rows[0]["p:Agaricus"]) == float(np.float32(0.9012346))
    assert [row["label"] for row in rows] == ["Agaricus", "Amanita", "Boletus", "", "", "Agaricus"]


def test_a_file_that_is_not_a_predictions_table_is_refused_by_name(tmp_path: Path) -> None:
    for name, text in (("empty.csv", ""), ("other.csv", "path,label\nx.jpg,Agaricus\n")):
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(MushroomError, match=rf"{name} is not a predictions table: its columns should"):
            Predictions.read(path)


def test_answering_again_keeps_the_tables_deadly_risk_rule_unless_given_another() -> None:
    table = every_kind_of_row()
    n = len(table)
    none = np.full(n, np.nan)
    again = table.answered_at(np.zeros(n), none, deadly=DEADLY)
    assert again.answer[2] == NOT_SURE  # Boletus: 5% on Amanita, the rule's 2% kept
    assert again.answer[1] == "Amanita"  # no open-set threshold now
    assert np.array_equal(again.deadly_risk, table.deadly_risk, equal_nan=True)
    assert again.abstain_threshold.tolist() == [0.0] * n and np.isnan(again.open_set_threshold).all()
    ruleless = table.answered_at(np.zeros(n), none, deadly_risk=none)
    assert ruleless.answer[2] == "Boletus" and np.isnan(ruleless.deadly_risk).all()
    assert table.answer[1] == "not a mushroom"  # the table itself unchanged
    with pytest.raises(MushroomError) as refused:
        table.answered_at(np.zeros(n), none)
    assert str(refused.value) == (
        "These predictions answer with the deadly-risk rule, which needs to know which classes hold deadly "
        "species: give the safety table that covers them."
    )


def test_rows_answered_without_the_deadly_risk_rule_need_no_safety_table() -> None:
    probs = np.array([[0.2, 0.1, 0.7]])
    got = answers(NAMES, probs, np.array([[0.9, 0.0]]), np.array([0.5]), np.array([0.5]))
    assert got.tolist() == ["Boletus"]
    # A NaN open-set score is a model without one: its threshold cannot refuse the photo.
    unscored = answers(NAMES, probs, np.array([[np.nan, np.nan]]), np.array([np.nan]), np.array([0.99]))
    assert unscored.tolist() == ["Boletus"]
    refused = answers(NAMES, probs, np.array([[0.2, 0.3]]), np.array([np.nan]), np.array([0.5]))
    assert refused.tolist() == ["not a genus I know"]


def test_pooling_refuses_nothing_to_pool_and_folds_of_other_classes() -> None:
    table = every_kind_of_row()
    with pytest.raises(MushroomError, match=r"^No predictions to pool\.$"):
        Predictions.concat([])
    renamed = dataclasses.replace(table, class_names=["Agaricus", "Amanita", "Suillus"])
    with pytest.raises(MushroomError) as refused:
        Predictions.concat([table, renamed])
    assert str(refused.value) == (
        "Predictions for classes ['Agaricus', 'Amanita', 'Suillus'] cannot be pooled with predictions for "
        "['Agaricus', 'Amanita', 'Boletus']: every fold must be trained on the same classes."
    )
    pooled = Predictions.concat([table, table.subset(np.array([4, 0]))])
    assert pooled.photo.tolist() == [*table.photo, table.photo[4], table.photo[0]]
    assert_same(pooled.subset(np.arange(len(table))), table)


def test_a_table_without_rows_reads_back_empty(tmp_path: Path) -> None:
    """A slice with no photo (a fold without negatives of a kind) is still a table, not an error."""
    empty = every_kind_of_row().subset(np.zeros(6, dtype=bool))
    assert len(empty) == 0 and empty.probs.shape == (0, 3)
    assert_same(Predictions.read(empty.write(tmp_path / "empty.csv")), empty)
    made = predictions_of(NAMES, [], "known", np.zeros(0), [], [], 0, np.zeros((0, 3)), None, (0.5, 0.5))
    assert_same(made, empty)


def test_a_training_run_writes_each_test_and_validation_photo_once(
    open_set_run: tuple[Path, Path],
) -> None:
    """The table a training run writes (``mushroom.inference.fold_predictions``) holds every test and
    validation photo of the known genera and of the negatives once, in its part, of its kind, with its label:
    a validation row written as a test row would be pooled as tested, a genus photo as a negative."""
    run, _ = open_set_run
    datamodule = datamodule_of(run / "checkpoints" / "best.ckpt")
    assert datamodule.negatives is not None
    table = Predictions.read(run / "test_predictions.csv")
    names = table.class_names
    kinds = {"known"}
    for part in ("test", "val"):
        photos, groups = datamodule.photo_keys(part)
        rows = (table.part == part) & (table.kind == "known")
        assert list(table.photo[rows]) == photos and list(table.group[rows]) == groups
        assert list(table.label[rows]) == [names.index(photo.split("/")[0]) for photo in photos]
        negatives = datamodule.negative_paths_by_kind(part)
        assert negatives  # some in each part
        for kind, paths in negatives.items():
            rows = (table.part == part) & (table.kind == kind)
            keys = [datamodule.negatives.key_and_group(path)[0] for path in paths]
            assert list(table.photo[rows]) == keys and (table.label[rows] == -1).all()
        kinds |= set(negatives)
    assert set(table.part) == {"test", "val"} and set(table.kind) == kinds
    assert not np.isnan(table.open_set).any()  # trained with negatives: every row has its open-set scores


def test_a_models_deadly_risk_rule_answers_its_negatives_rows_too(open_set_run: tuple[Path, Path]) -> None:
    """A model fitted with the deadly-risk rule (``calibration.deadly_risk``) and trained with negatives
    writes every row of its table, the negatives' included, answered by that rule: a negative written
    without it would be named a harmless genus in the table while the model says "not sure" to the user."""
    run, _ = open_set_run
    checkpoint = run / "checkpoints" / "best.ckpt"
    deadly = [True, False, False]  # the first toy genus holds deadly species
    model = load_classifier(checkpoint)
    model.hparams["deadly"] = deadly
    model.deadly_risk.fill_(0.001)
    model.open_set_threshold.fill_(float("nan"))  # every negative gets to the rule
    model.abstain_threshold.fill_(float("nan"))
    datamodule = datamodule_of(checkpoint)
    scores = score_test_set(model, datamodule.test_dataloader(), datamodule.negatives_by_kind("test"))
    table = fold_predictions(model, datamodule, 0, scores)
    negatives = table.kind != "known"
    mass = table.probs[:, 0]
    harmless_top = table.probs.argmax(1) != 0
    held_back = negatives & harmless_top & (mass >= 0.001)
    assert held_back.any()  # the rule has negatives to hold back, in both parts
    assert set(table.part[held_back]) == {"test", "val"}
    assert (table.answer[held_back] == NOT_SURE).all()
    assert (table.deadly_risk == 0.001).all()
    again = answers(
        table.class_names,
        table.probs,
        table.open_set,
        table.abstain_threshold,
        table.open_set_threshold,
        table.deadly_risk,
        np.array(deadly),
    )
    assert list(table.answer) == list(again)
