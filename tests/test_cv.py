"""Out-of-fold evaluation: pooling the folds' predictions, bootstrap intervals, paired comparisons."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from mushroom.core import bootstrap
from mushroom.cv import compare, figures, intervals, paired_comparison, pool, pooled_report, summarize
from mushroom.data.manifest import Manifest
from mushroom.errors import MushroomError
from mushroom.predictions import Predictions, predictions_of
from mushroom.report import write_evaluation_report
from tests.conftest import make_image_folder, make_negatives, run_train

NAMES = ["Agaricus", "Amanita", "Boletus"]
DEADLY = np.array([False, True, False])


# -- tables made up in the test ------------------------------------------------------------------------------
def made_up(n_per_class: int, right: float, seed: int = 0, groups_of: int = 1) -> Predictions:
    """Known photos only, right with probability about ``right``; ``groups_of`` photos per duplicate group,
    all right or all wrong (copies of one photo)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(NAMES)), n_per_class)
    n = len(labels)
    hit = (rng.random(n) < right)[np.arange(n) // groups_of]
    predicted = np.where(hit, labels, (labels + 1 + rng.integers(0, len(NAMES) - 1, n)) % len(NAMES))
    probs = np.full((n, len(NAMES)), 0.1)
    probs[np.arange(n), predicted] = 0.8
    photos = [f"{NAMES[y]}/{i}.jpg" for i, y in enumerate(labels)]
    groups = [f"group {i // groups_of}" for i in range(n)]
    open_set = np.column_stack([np.full(n, 0.9), np.zeros(n)])
    return predictions_of(NAMES, photos, "known", labels, groups, groups, 0, probs, open_set, (0.5, 0.5))


def with_answers(table: Predictions, predicted: np.ndarray) -> Predictions:
    """The same photos, answered ``predicted``."""
    probs = np.full(table.probs.shape, 0.1)
    probs[np.arange(len(table)), predicted] = 0.8
    return predictions_of(
        NAMES,
        table.photo,
        table.kind,
        table.label,
        table.group,
        table.source,
        0,
        probs,
        table.open_set,
        (0.5, 0.5),
    )


def test_the_interval_holds_the_estimate_and_narrows_with_more_photos() -> None:
    small, large = made_up(30, 0.8, seed=1), made_up(480, 0.8, seed=1)
    ci_small = intervals(small, DEADLY, n=300)["balanced_accuracy"]
    ci_large = intervals(large, DEADLY, n=300)["balanced_accuracy"]
    for ci in (ci_small, ci_large):
        assert ci["low"] < ci["estimate"] < ci["high"]
    safety = intervals(small, DEADLY, n=300)["dangerous_rate"]  # the safety figures get intervals too
    assert safety["low"] <= safety["estimate"] <= safety["high"] and safety["high"] > 0
    assert ci_large["high"] - ci_large["low"] < 0.5 * (ci_small["high"] - ci_small["low"])
    # About 1.96 standard errors each side of a proportion near 0.8 over 90 photos (sd 0.042).
    assert 0.10 < ci_small["high"] - ci_small["low"] < 0.25


def test_resampling_draws_whole_groups_within_each_stratum() -> None:
    strata = ["a"] * 6 + ["b"] * 4
    units = ["a1", "a1", "a2", "a2", "a3", "a3", "b1", "b2", "b3", "b4"]
    for sample in bootstrap.resamples(strata, units, 50, seed=3):
        assert len(sample) == 10 and (sample < 6).sum() == 6  # each stratum keeps its size
        drawn = [units[i] for i in sample]
        for unit in ("a1", "a2", "a3"):
            assert drawn.count(unit) % 2 == 0  # both photos of a group, or neither
    # Grouped photos that agree make a wider interval than as many independent photos.
    grouped = intervals(made_up(60, 0.7, seed=2, groups_of=6), DEADLY, n=300)["accuracy"]
    single = intervals(made_up(60, 0.7, seed=2, groups_of=6), DEADLY, unit="photo", n=300)["accuracy"]
    assert grouped["high"] - grouped["low"] > single["high"] - single["low"]


def test_a_recipe_compared_with_itself_cannot_be_told_apart() -> None:
    table = made_up(60, 0.7, seed=4)
    result = paired_comparison(table, table, DEADLY, n=200)
    assert {row["verdict"] for row in result.values()} == {bootstrap.CANT_TELL}
    assert all(row["difference"] in (0.0, None) for row in result.values())
    # Each resample compared with itself: no spread at all, not merely an interval that holds 0.
    assert all((row["low"], row["high"]) in ((0.0, 0.0), (None, None)) for row in result.values())
    assert result["dangerous_rate"]["before"] is not None  # the safety figures are compared too


def test_a_paired_comparison_sees_a_better_and_a_worse_recipe() -> None:
    table = made_up(60, 0.7, seed=5)
    perfect = with_answers(table, table.label)
    # Every Amanita called Agaricus: worse on the Amanita recall and on the dangerous rate.
    worse_amanita = np.where(table.label == 1, 0, table.probs.argmax(axis=1))
    shuffled = np.random.default_rng(0).permutation(len(table))
    better = paired_comparison(table, perfect.subset(shuffled), DEADLY, n=200)  # rows are matched by photo
    assert better["balanced_accuracy"]["verdict"] == bootstrap.BETTER
    assert better["dangerous_rate"]["verdict"] == bootstrap.BETTER  # it fell
    worse = paired_comparison(table, with_answers(table, worse_amanita), DEADLY, n=200)
    assert worse["recall/Amanita"]["verdict"] == bootstrap.WORSE
    assert worse["dangerous_rate"]["verdict"] == bootstrap.WORSE
    assert worse["recall/Boletus"]["verdict"] == bootstrap.CANT_TELL  # unchanged


def with_other_genera(known: Predictions, known_scores: Sequence[float]) -> Predictions:
    """``known`` and one photo of another genus per known score, each called *Agaricus* at 0.8 (answered
    with it at the 0.5 open-set threshold when its score reaches it)."""
    n = len(known_scores)
    probs = np.full((n, len(NAMES)), 0.1)
    probs[:, 0] = 0.8
    names = [f"other {i}" for i in range(n)]
    negatives = predictions_of(
        NAMES,
        [f"other/{i}.jpg" for i in range(n)],
        "other_genus",
        np.zeros(n, dtype=int),
        names,
        names,
        0,
        probs,
        np.column_stack([known_scores, np.zeros(n)]),
        (0.5, 0.5),
    )
    return Predictions.concat([known, negatives])


def test_letting_more_other_genera_through_is_worse() -> None:
    known = made_up(30, 0.8, seed=6)
    strict, loose = with_other_genera(known, [0.1] * 40), with_other_genera(known, [0.9] * 40)
    result = paired_comparison(strict, loose, DEADLY, n=200)
    row = result["other_genus/answered_with_genus"]
    assert (row["before"], row["after"]) == (0.0, 1.0)
    assert row["verdict"] == bootstrap.WORSE
    assert paired_comparison(loose, strict, DEADLY, n=200)[
        "other_genus/answered_with_genus"
    ]["verdict"] == bootstrap.BETTER  # fmt: skip


def test_resampling_by_source_draws_whole_source_families() -> None:
    # 12 source families of 10 photos each, every family all right or all wrong; each photo its own group.
    agreeing = made_up(40, 0.7, seed=9, groups_of=10)
    photos = np.asarray([f"photo {i}" for i in range(len(agreeing))], dtype=object)
    table = dataclasses.replace(agreeing, group=photos, source=agreeing.group)
    by_source = intervals(table, DEADLY, unit="source", n=300)["accuracy"]
    by_group = intervals(table, DEADLY, unit="group", n=300)["accuracy"]
    assert by_source["high"] - by_source["low"] > 1.5 * (by_group["high"] - by_group["low"])
    with pytest.raises(MushroomError, match="--unit fold: resample by one of group, source, photo"):
        intervals(table, DEADLY, unit="fold", n=10)


def test_intervals_and_comparisons_are_the_same_when_run_again() -> None:
    before, after = made_up(40, 0.7, seed=10), made_up(40, 0.75, seed=10)
    assert intervals(before, DEADLY, n=100) == intervals(before, DEADLY, n=100)
    assert paired_comparison(before, after, DEADLY, n=100) == paired_comparison(before, after, DEADLY, n=100)
    assert intervals(before, DEADLY, n=100, seed=1) != intervals(before, DEADLY, n=100, seed=2)


def test_comparing_runs_of_other_photos_is_refused() -> None:
    table = made_up(20, 0.7)
    with pytest.raises(
        MushroomError, match=r"same photos \(60 and 59 rows; e.g. \('known', 'Boletus/59.jpg'\)"
    ):
        paired_comparison(table, table.subset(np.arange(len(table) - 1)), DEADLY, n=10)
    renamed = dataclasses.replace(table, class_names=["Agaricus", "Amanita", "Suillus"])
    with pytest.raises(MushroomError, match="trained on different classes"):
        paired_comparison(table, renamed, DEADLY, n=10)


def test_comparing_runs_whose_folds_differ_warns(caplog: pytest.LogCaptureFixture) -> None:
    table = made_up(20, 0.7)
    moved = dataclasses.replace(table, fold=np.where(np.arange(len(table)) < 7, 1, table.fold))
    with caplog.at_level("WARNING", logger="mushroom.cv"):
        paired_comparison(table, table, DEADLY, n=10)
        assert not caplog.records
        paired_comparison(table, moved, DEADLY, n=10)
    assert [r.getMessage() for r in caplog.records] == [
        "7 photos lie in another fold in the second run: the folds differ."
    ]


def test_figures_at_the_fitted_thresholds_count_what_users_were_told() -> None:
    table = made_up(20, 0.7, seed=6)
    probs = table.probs.copy()
    probs[:10] = 1 / 3  # below the abstain threshold 0.5: "not sure"
    open_set = table.open_set.copy()
    open_set[10:15, 0] = 0.1  # below the open-set threshold
    open_set[10:13, 1] = 0.9  # ... and mostly "not a mushroom"
    table = predictions_of(
        NAMES, table.photo, "known", table.label, table.group, table.source, 0, probs, open_set, (0.5, 0.5)
    )
    got = figures(table, DEADLY)
    assert got["answered"] == pytest.approx(45 / 60)
    assert got["said_open_set"] == pytest.approx(5 / 60)
    assert got["said_not_a_mushroom"] == pytest.approx(3 / 60)


def test_each_figure_is_counted_as_defined() -> None:
    """Six photos and two of other genera whose every figure is known by hand."""
    from mushroom.calibration import expected_calibration_error

    a, m, b = [0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]  # Agaricus, Amanita, Boletus called
    known = predictions_of(
        NAMES,
        [f"{i}.jpg" for i in range(6)],
        "known",
        np.array([0, 0, 1, 1, 2, 2]),
        [str(i) for i in range(6)],
        [str(i) for i in range(6)],
        0,
        np.array([a, b, m, a, b, b]),  # right, wrong, right, Amanita called harmless, right, right
        np.array([[0.9, 0], [0.9, 0], [0.9, 0], [0.9, 0], [0.5, 0], [0.2, 0]]),  # at, then under 0.5
        (0.5, 0.5),
    )
    both = with_other_genera(known, [0.3, 0.95])  # called Agaricus, answered at 0.95 only
    others = both.subset(both.kind == "other_genus")
    got = figures(both, DEADLY)
    assert got["accuracy"] == pytest.approx(4 / 6)
    assert got["answered"] == pytest.approx(5 / 6)  # a score at the threshold passes
    assert got["said_open_set"] == pytest.approx(1 / 6)
    assert got["accuracy_answered"] == pytest.approx(3 / 5)
    assert (got["precision/Agaricus"], got["precision/Amanita"]) == pytest.approx((1 / 2, 1.0))
    assert got["precision/Boletus"] == pytest.approx(2 / 3)
    assert got["dangerous_rate"] == got["dangerous_rate_answered"] == pytest.approx(1 / 2)
    assert got["ece"] == pytest.approx(expected_calibration_error(known.probs, known.label))
    assert got["other_genus/answered_with_genus"] == pytest.approx(1 / 2)
    assert got["other_genus/auroc"] == pytest.approx(5 / 12)  # 5 of 12 pairs: known above the other
    # With no photo of a known genus (a slice of negatives), their figures are undefined, not 0 or NaN.
    negatives_only = figures(others, DEADLY)
    for name in ("ece", "answered", "accuracy_answered", "said_not_a_mushroom", "said_open_set"):
        assert negatives_only[name] is None, name
    assert negatives_only["dangerous_rate_answered"] is None
    assert negatives_only["other_genus/answered_with_genus"] == pytest.approx(1 / 2)


# -- slices -------------------------------------------------------------------------------------------------
def test_a_slice_is_judged_on_its_photos_alone(tmp_path: Path) -> None:
    from mushroom.cv import main, write_folds

    table = made_up(30, 0.7, seed=7)
    amanita = [photo for photo, label in zip(table.photo, table.label, strict=True) if label == 1][:20]
    listed = tmp_path / "amanita_in_the_wild.txt"
    listed.write_text("# twenty Amanita\n" + "\n".join(amanita) + "\n\n")
    # A recipe that calls the slice's photos Agaricus and answers every other photo as before.
    on_slice = np.isin(table.photo, amanita)
    worse = with_answers(table, np.where(on_slice, 0, table.probs.argmax(axis=1)))
    before, after = write_folds(table, tmp_path / "before"), write_folds(worse, tmp_path / "after")

    main([str(before), "--slice", str(listed), "--resamples", "100"])
    report = json.loads((before / "slice_amanita_in_the_wild.json").read_text())
    assert report["photos"] == 20
    expected = figures(table.subset(on_slice), DEADLY)
    assert report["figures"]["recall/Amanita"]["estimate"] == pytest.approx(expected["recall/Amanita"])
    assert report["figures"]["answered"]["estimate"] == pytest.approx(expected["answered"])
    # Genera the slice holds no photo of, and figures that need every genus's photos, are left out.
    assert "recall/Agaricus" not in report["figures"] and "macro_f1" not in report["figures"]
    assert not [name for name in report["figures"] if name.startswith("precision/")]

    whole = compare(before, after, n=200)["figures"]
    in_slice = compare(before, after, n=200, slice_file=listed)["figures"]
    assert (after / "comparison_amanita_in_the_wild.json").is_file()
    assert in_slice["recall/Amanita"]["after"] == 0.0
    assert in_slice["recall/Amanita"]["verdict"] == bootstrap.WORSE
    # On the slice the fall is the whole recall; over every photo it is diluted by the photos not listed.
    assert in_slice["accuracy"]["difference"] < whole["accuracy"]["difference"] < 0


def test_a_slice_of_other_photos_or_of_none_is_refused(tmp_path: Path) -> None:
    from mushroom.cv import read_slice, sliced

    table = made_up(5, 0.7)
    typo = tmp_path / "typo.txt"
    typo.write_text(f"{table.photo[0]}\nAmanita/no-such-photo.jpg\n")
    with pytest.raises(MushroomError, match=r"1 photo.*not tested.*no-such-photo"):
        sliced(table, read_slice(typo))
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n\n")
    with pytest.raises(MushroomError, match="lists no photo"):
        read_slice(empty)
    with pytest.raises(MushroomError, match="no such file"):
        read_slice(tmp_path / "absent.txt")


# -- a real cross-validation of the small CNN ---------------------------------------------------------------
@pytest.fixture(scope="module")
def three_folds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    data = make_image_folder(
        tmp_path_factory.mktemp("cv-photos"),
        per_class={"Amanita": 12, "Boletus": 9, "Lactarius": 6},
        size=(40, 40),
        seed=2,
    )
    negatives = make_negatives(
        tmp_path_factory.mktemp("cv-negatives"), not_mushrooms=9, per_genus=2, genera=6
    )
    out = tmp_path_factory.mktemp("cv")
    for fold in range(3):
        run_train(
            [
                f"data.root={data}",
                f"data.open_set.root={negatives}",
                "data.num_folds=3",
                f"data.fold={fold}",
                "data.val_fraction=0.25",
                "trainer.max_epochs=1",
            ],
            out / f"fold_{fold}",
        )
    return out, data


@pytest.mark.slow
def test_the_pooled_report_predicts_every_photo_once_with_the_figures_of_evaluate(
    three_folds: tuple[Path, Path],
) -> None:
    out, data = three_folds
    report = pooled_report(out, n=100)
    everything = Predictions.read(out / "oof_predictions.csv")
    table = everything.tested
    known = table.subset(table.known)
    photos = sorted(str(p.relative_to(data)) for p in data.rglob("*.jpg"))
    assert sorted(known.photo.tolist()) == photos  # every photo once
    assert sorted(set(table.kind.tolist()) - {"known"}) == ["not_mushroom", "other_genus"]
    assert (table.kind == "not_mushroom").sum() == 9 and (table.kind == "other_genus").sum() == 12
    # The validation rows (what each fold's thresholds were fitted on) are photos of the other folds.
    val = everything.subset(everything.part == "val")
    assert len(val) and set(val.photo.tolist()) <= set(table.photo.tolist())
    for fold in range(3):
        assert not set(val.photo[val.fold == fold]) & set(table.photo[table.fold == fold])
    # Each fold's rows are that fold's test split, and give that fold's own test figures.
    for fold in range(3):
        fold_report = json.loads((out / f"fold_{fold}" / "test_metrics.json").read_text())
        rows = known.subset(known.fold == fold)
        assert len(rows) == fold_report["n_images"]
        assert figures(rows, DEADLY)["accuracy"] == pytest.approx(fold_report["accuracy"])
    # The pooled figures are evaluate's (write_evaluation_report) on the same predictions.
    plain = write_evaluation_report(
        known.probs, known.label, table.class_names, out / "again" / "metrics.json", safety_table=None
    )
    pooled = report["figures"]
    for name in ("accuracy", "balanced_accuracy", "macro_f1", "ece"):
        assert pooled[name]["estimate"] == pytest.approx(plain[name]) == pytest.approx(report[name])
    for name, row in plain["per_class"].items():
        assert pooled[f"recall/{name}"]["estimate"] == pytest.approx(row["recall"])
    assert pooled["dangerous_rate"]["estimate"] == pytest.approx(
        report["safety"]["without_abstaining"]["dangerous_confusion_rate"]
    )
    # The folds' own spread is still summarised.
    summary = summarize(out)
    assert summary["folds"] == ["fold_0", "fold_1", "fold_2"]
    values = [json.loads((out / f"fold_{k}" / "test_metrics.json").read_text())["accuracy"] for k in range(3)]
    assert summary["metrics"]["accuracy"]["mean"] == pytest.approx(np.mean(values))
    assert summary["metrics"]["accuracy"]["std"] == pytest.approx(np.std(values, ddof=1))


@pytest.mark.slow
def test_overlapping_folds_are_not_pooled(three_folds: tuple[Path, Path], tmp_path: Path) -> None:
    out, _ = three_folds
    for name in ("fold_0", "fold_0_again"):
        (tmp_path / name).mkdir()
        shutil.copy(out / "fold_0" / "test_predictions.csv", tmp_path / name)
    with pytest.raises(MushroomError, match="more than one fold"):
        pool(tmp_path)
    with pytest.raises(MushroomError, match=r"No <fold>/test_predictions\.csv"):
        pool(tmp_path / "fold_0" / "nothing")


@pytest.mark.slow
def test_compare_writes_a_verdict_per_figure(three_folds: tuple[Path, Path]) -> None:
    out, _ = three_folds
    payload = compare(out, out, n=50)
    assert (out / "comparison.json").is_file()
    assert payload["figures"]["balanced_accuracy"]["verdict"] == bootstrap.CANT_TELL


def test_the_manifest_groups_reach_the_table(tmp_path: Path) -> None:
    """Photos of one duplicate group share the table's group (they are resampled together)."""
    rows = [
        {
            "path": f"A/{i}.jpg",
            "label": "A",
            "group": i // 2,
            "fold": 0,
            "val_part": 0,
            "split": "test",
            "width": 1,
            "height": 1,
            "sha256": "",
            "phash": "",
        }
        for i in range(4)
    ]
    manifest = Manifest(rows)
    from mushroom.data import MushroomDataModule
    from mushroom.data.splits import Split

    module = MushroomDataModule(tmp_path, num_folds=2)
    module.manifest = manifest
    module.index = manifest.index(tmp_path)
    module.split = Split(np.empty(0, np.int64), np.empty(0, np.int64), np.arange(4))
    photos, groups = module.photo_keys("test")
    assert photos == ["A/0.jpg", "A/1.jpg", "A/2.jpg", "A/3.jpg"]
    assert groups[0] == groups[1] != groups[2] == groups[3]


def folds_with_validation(folds: int = 2, seed: int = 7) -> Predictions:
    """``folds`` folds of made-up predictions, each with test rows and validation rows."""
    parts = []
    for fold in range(folds):
        for part in ("test", "val"):
            table = made_up(20, 0.8, seed=seed + 2 * fold + (part == "val"))
            rng = np.random.default_rng(fold)
            scores = np.column_stack([rng.uniform(0.5, 1.0, len(table)), rng.uniform(0, 1, len(table))])
            parts.append(
                predictions_of(
                    NAMES,
                    [f"{fold}/{part}/{p}" for p in table.photo],
                    "known",
                    table.label,
                    table.group,
                    table.source,
                    fold,
                    table.probs,
                    scores,
                    (0.5, 0.9),
                    part=part,
                )
            )
    return Predictions.concat(parts)


def test_a_refit_fits_each_folds_thresholds_on_its_validation_rows(tmp_path: Path) -> None:
    from mushroom.core.open_set import fit_threshold
    from mushroom.cv import refit, write_folds

    for folds in (2, 3):  # with three, a fold's rows are not simply the other folds' complement
        table = folds_with_validation(folds)
        looser = refit(table, DEADLY, open_set_tpr=0.99)
        for fold in range(folds):
            val = table.subset((table.fold == fold) & (table.part == "val"))
            expected = fit_threshold(val.open_set[:, 0], 0.99)
            assert set(looser.open_set_threshold[looser.fold == fold]) == {expected}
        assert len(set(looser.open_set_threshold)) == folds  # one threshold per fold
    assert (looser.probs == table.probs).all() and (looser.abstain_threshold == 0.5).all()
    # A threshold letting 99% of validation through rejects fewer test photos than the one given (0.9).
    assert figures(looser, DEADLY)["said_open_set"] < figures(table, DEADLY)["said_open_set"]
    # Written as folds, pooled and compared like a cross-validation.
    write_folds(table, tmp_path / "before")
    write_folds(looser, tmp_path / "after")
    result = paired_comparison(pool(tmp_path / "before"), pool(tmp_path / "after"), DEADLY, n=200)
    assert result["said_open_set"]["verdict"] == bootstrap.BETTER
    assert result["accuracy"]["verdict"] == bootstrap.CANT_TELL


def nine_photos_in_three_folds() -> Predictions:
    """Fold f tests photos 3f..3f+2 and validates on the next fold's first photo."""
    parts = []
    for fold in range(3):
        for part, photos in (("test", [3 * fold, 3 * fold + 1, 3 * fold + 2]), ("val", [(3 * fold + 3) % 9])):
            n = len(photos)
            parts.append(
                predictions_of(
                    NAMES,
                    [f"{p}.jpg" for p in photos],
                    "known",
                    np.zeros(n, dtype=int),
                    [str(p) for p in photos],
                    ["s"] * n,
                    fold,
                    np.full((n, 3), 1 / 3),
                    np.full((n, 2), 0.5),
                    (0.5, 0.5),
                    part=part,
                )
            )
    return Predictions.concat(parts)


def test_a_fold_model_trained_on_the_photos_no_part_of_its_fold_holds() -> None:
    table = nine_photos_in_three_folds()
    for fold in range(3):
        trained = table.photo[table.trained_on(fold)].tolist()
        held = {f"{p}.jpg" for p in (3 * fold, 3 * fold + 1, 3 * fold + 2, (3 * fold + 3) % 9)}
        assert sorted(trained) == sorted(f"{p}.jpg" for p in range(9) if f"{p}.jpg" not in held)
        assert (table.part[table.trained_on(fold)] == "test").all()  # each photo once, from its test row


def test_whole_tables_are_matched_row_by_row_by_fold_and_part() -> None:
    from mushroom.cv import aligned

    table = nine_photos_in_three_folds()
    shuffled = table.subset(np.random.default_rng(1).permutation(len(table)))
    matched = aligned(table, shuffled, same_folds=True)
    for column in ("fold", "part", "kind", "photo"):
        assert getattr(matched, column).tolist() == getattr(table, column).tolist()
    # By photo alone, a photo's test row and validation row are one key: refused, not matched at random.
    with pytest.raises(MushroomError, match="same photos"):
        aligned(table, shuffled)
    other_folds = dataclasses.replace(table, fold=(table.fold + 1) % 3)
    with pytest.raises(MushroomError, match="in the same folds"):
        aligned(table, other_folds, same_folds=True)


def test_a_refit_needs_validation_rows() -> None:
    from mushroom.cv import refit

    with pytest.raises(MushroomError, match="no validation rows"):
        refit(made_up(10, 0.8), DEADLY, open_set_tpr=0.99)


def test_a_refit_with_the_deadly_risk_rule_answers_no_amanita_with_a_harmless_genus(tmp_path: Path) -> None:
    from mushroom.cv import refit, write_folds

    table = folds_with_validation()
    assert figures(table, DEADLY)["dangerous_rate_answered"] > 0  # Amanita called harmless at 0.8
    # Every harmless answer leaves 0.1 on Amanita: at 0.05 the rule refuses them all, so the "not sure"
    # threshold fitted with the rule in place needs no confidence cut to reach a zero dangerous rate.
    ruled = refit(table, DEADLY, dangerous_target=0.0, deadly_risk=0.05)
    assert (ruled.abstain_threshold == 0.0).all() and (ruled.deadly_risk == 0.05).all()
    assert figures(ruled, DEADLY)["dangerous_rate_answered"] == 0.0
    answered = ruled.tested.answered_with_genus
    assert set(ruled.tested.answer[answered]) == {"Amanita"}
    # Above every photo's Amanita mass, the rule refuses nothing and the answers are the table's.
    loose = refit(table, DEADLY, deadly_risk=0.2)
    assert (loose.answer == table.answer).all()
    with pytest.raises(MushroomError, match="safety table"):
        refit(table, None, deadly_risk=0.05)
    # Without the rule, no safety table is needed to refit the other thresholds.
    plain = refit(table, None, open_set_tpr=0.99)
    assert (plain.open_set_threshold == refit(table, DEADLY, open_set_tpr=0.99).open_set_threshold).all()
    # The rule travels with the table: written, read back, answered again the same way.
    write_folds(ruled, tmp_path / "ruled")
    again = pool(tmp_path / "ruled")
    assert np.allclose(again.deadly_risk, 0.05) and (again.answer == ruled.answer).all()


def test_a_table_written_before_the_deadly_risk_rule_reads_without_it(tmp_path: Path) -> None:
    from mushroom.predictions import COLUMNS_BEFORE_DEADLY_RISK

    table = made_up(5, 0.8)
    path = table.write(tmp_path / "now.csv")
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    at = header.index("deadly_risk")
    old = tmp_path / "before.csv"
    old.write_text("\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != at) for line in lines))
    assert tuple(old.read_text().splitlines()[0].split(",")[: len(COLUMNS_BEFORE_DEADLY_RISK)]) == (
        COLUMNS_BEFORE_DEADLY_RISK
    )
    read = Predictions.read(old)
    assert np.isnan(read.deadly_risk).all() and (read.answer == table.answer).all()
    assert np.allclose(read.probs, table.probs) and np.allclose(read.open_set, table.open_set)


def test_a_comparison_across_threshold_rules_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Judging two recipes at different thresholds mixes the models with the rules: the refit records the
    rules it answered by, and compare warns when they differ, with the refit that puts them on one."""
    from mushroom.cv import main, threshold_rules, write_folds

    before, after = tmp_path / "before", tmp_path / "after"
    trained = {"open_set_tpr": 0.9, "dangerous_target": 0.01, "deadly_risk": 0.01}
    write_folds(folds_with_validation(), before, trained)
    with caplog.at_level("WARNING", logger="mushroom.cv"):
        main([str(before), "--open-set-tpr", "0.99", "--out", str(after), "--resamples", "50"])
    assert not [r for r in caplog.records if r.levelname == "WARNING"]  # judging the rule is the point
    assert threshold_rules(after) == trained | {"open_set_tpr": 0.99}  # the rest kept as trained
    caplog.clear()
    with caplog.at_level("WARNING", logger="mushroom.cv"):
        payload = compare(before, after, n=50)
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert "open_set_tpr 0.9 -> 0.99" in warned and f"{before} --open-set-tpr 0.99 --out" in warned
    assert "dangerous_target" not in warned and "--dangerous-target" not in warned  # only what differs
    assert payload["threshold_rules"] == {"before": trained, "after": threshold_rules(after)}
    caplog.clear()
    with caplog.at_level("WARNING", logger="mushroom.cv"):
        compare(after, after, n=50)  # one rule: nothing to say
        write_folds(folds_with_validation(), tmp_path / "unrecorded")
        assert threshold_rules(tmp_path / "unrecorded") is None
        compare(tmp_path / "unrecorded", after, n=50)  # unknown rules: nothing claimed
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


@pytest.mark.slow
def test_the_rules_of_trained_folds_are_read_from_their_configs(
    three_folds: tuple[Path, Path], tmp_path: Path
) -> None:
    from importlib.resources import files

    from omegaconf import OmegaConf

    from mushroom.cv import THRESHOLD_RULES, threshold_rules

    out, _ = three_folds
    defaults = OmegaConf.load(str(files("mushroom.configs") / "train.yaml")).calibration
    assert threshold_rules(out) == {rule: defaults[rule] for rule in THRESHOLD_RULES}
    # Folds fitted by other rules are not one cross-validation's: no rule is claimed for them.
    for fold in (0, 1):
        (tmp_path / f"fold_{fold}").mkdir()
        text = (out / f"fold_{fold}" / "config.yaml").read_text()
        (tmp_path / f"fold_{fold}" / "config.yaml").write_text(
            text.replace("open_set_tpr: 0.95", "open_set_tpr: 0.5") if fold else text
        )
    assert threshold_rules(tmp_path) is None


def test_fold_runs_are_keyed_by_the_fold_their_config_held_out(tmp_path: Path) -> None:
    from mushroom.cv import fold_runs

    # Named out of order on purpose: the directory's name says nothing about the fold (hydra.sweep.subdir).
    for name, fold in (("run_0", 1), ("run_1", 0), ("run_2", 2)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.yaml").write_text(f"data:\n  num_folds: 3\n  fold: {fold}\n")
    assert fold_runs(tmp_path) == {0: tmp_path / "run_1", 1: tmp_path / "run_0", 2: tmp_path / "run_2"}
    (tmp_path / "run_3").mkdir()
    (tmp_path / "run_3" / "config.yaml").write_text("data:\n  fold: 2\n")
    with pytest.raises(MushroomError, match="both held out fold 2"):
        fold_runs(tmp_path)
    (tmp_path / "run_3" / "config.yaml").write_text("data:\n  root: photos\n")
    with pytest.raises(MushroomError, match="names no held-out fold"):
        fold_runs(tmp_path)
