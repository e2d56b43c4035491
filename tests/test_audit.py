"""The audit finds every kind of bad or duplicated file by path, and the manifest keeps groups whole."""

from __future__ import annotations

import dataclasses
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mushroom.data.audit import audit_folder
from mushroom.data.audit_report import AuditReport
from mushroom.data.hashing import connected_groups, perceptual_hash
from mushroom.data.manifest import Manifest, build_manifest
from mushroom.schemas import DataConfig, PrepareSettings, SplitSettings
from tests.conftest import SHARED
from tests.helpers import distinct_photo, make_distinct_folder
from tests.replicas import Replica, build_safety


def split(**changes: float) -> SplitSettings:
    """The data config's split settings (its defaults), with ``changes``."""
    return dataclasses.replace(DataConfig(root="photos").split, **changes)


def plant_problems(root: Path, genus_a: str, genus_b: str) -> dict[str, str]:
    """Plant one file of every kind the audit must catch; return {relative path: expected kind}."""
    first_a = sorted((root / genus_a).glob("*.jpg"))[0]
    second_a = sorted((root / genus_a).glob("*.jpg"))[1]

    truncated = root / genus_a / "planted_truncated.jpg"
    data = first_a.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])

    text = root / genus_b / "planted_text.jpg"
    text.write_text("this is a text file, not a photo\n")

    cmyk = root / genus_b / "planted_cmyk.jpg"
    Image.open(second_a).convert("CMYK").save(cmyk, quality=95)

    exact = root / genus_b / "planted_exact_copy.jpg"
    shutil.copyfile(first_a, exact)

    near = root / genus_a / "planted_near_copy.jpg"
    with Image.open(second_a) as image:
        image.convert("RGB").resize((image.width * 3 // 4, image.height * 3 // 4)).save(near, quality=70)

    tiny = root / genus_a / "planted_tiny.jpg"
    Image.new("RGB", (12, 10), (90, 60, 30)).save(tiny)

    rel = {path: path.relative_to(root).as_posix() for path in (truncated, text, cmyk, exact, near, tiny)}
    return {
        rel[truncated]: "truncated",
        rel[text]: "not_an_image",
        rel[tiny]: "too_small",
        rel[cmyk]: "converted",
        rel[exact]: f"exact:{first_a.relative_to(root).as_posix()}",
        rel[near]: f"near:{second_a.relative_to(root).as_posix()}",
    }


def check_audit_finds_planted(report: AuditReport, planted: dict[str, str]) -> None:
    excluded = {problem.path: problem.kind for problem in report.excluded}
    converted = {problem.path: problem.detail for problem in report.converted}
    group_of = {image.path: image.group for image in report.images}
    kinds = {group.id: group.kind for group in report.duplicate_groups}
    for path, expected in planted.items():
        if expected in ("truncated", "not_an_image", "too_small"):
            assert excluded.get(path) == expected, (path, excluded.get(path))
            assert path not in group_of
        elif expected == "converted":
            assert converted.get(path) == "CMYK"
            assert path in group_of  # converted images stay usable
        else:
            kind, original = expected.split(":")
            assert group_of[path] == group_of[original], (path, original)
            # A byte-identical copy makes an "exact" group, a re-encoded one a "near" group.
            assert kinds[group_of[path]] == kind, (path, kinds[group_of[path]])
    # The exact copy was planted under the other genus: its group carries two labels.
    exact_path = next(p for p, e in planted.items() if e.startswith("exact"))
    conflicting = {p for group in report.conflicting_groups() for p in group.paths}
    assert exact_path in conflicting


def check_groups_stay_on_one_side(manifest: Manifest) -> None:
    sides: dict[int, set[str]] = defaultdict(set)
    folds: dict[int, set[int]] = defaultdict(set)
    for row in manifest.rows:
        sides[row["group"]].add(row["split"])
        folds[row["group"]].add(row["fold"])
    assert all(len(s) == 1 for s in sides.values())
    assert all(len(f) == 1 for f in folds.values())


def test_perceptual_hash_survives_resizing_but_tells_photos_apart() -> None:
    rng = np.random.default_rng(1)
    photo, other = distinct_photo(rng, (320, 240)), distinct_photo(rng, (320, 240))
    small = photo.resize((200, 150))
    h = perceptual_hash(np.asarray(photo))
    assert bin(h ^ perceptual_hash(np.asarray(small))).count("1") <= 4
    assert bin(h ^ perceptual_hash(np.asarray(other))).count("1") > 10


def test_connected_groups_are_transitive() -> None:
    groups = connected_groups(6, [(0, 3), (3, 5), (1, 2)])
    assert groups[0] == groups[3] == groups[5]
    assert groups[1] == groups[2] != groups[0]
    assert len(set(groups.tolist())) == 3  # {0,3,5}, {1,2}, {4}


def test_audit_reports_every_planted_problem_by_path_and_kind(tmp_path: Path) -> None:
    root = make_distinct_folder(tmp_path / "raw", {"Amanita": 12, "Boletus": 12})
    planted = plant_problems(root, "Amanita", "Boletus")
    report = audit_folder(root, PrepareSettings(near_duplicate_distance=10))
    check_audit_finds_planted(report, planted)
    assert report.summary()["excluded"] == {"truncated": 1, "not_an_image": 1, "too_small": 1}

    written = AuditReport.read(report.write(tmp_path / "audit.json"))
    assert written.summary() == report.summary()
    assert [g.paths for g in written.duplicate_groups] == [g.paths for g in report.duplicate_groups]


def test_manifest_split_is_grouped_stratified_and_reproducible(tmp_path: Path) -> None:
    root = make_distinct_folder(tmp_path / "raw", {"Amanita": 30, "Boletus": 20, "Lactarius": 15})
    rng = np.random.default_rng(5)
    for cls in ("Amanita", "Boletus"):  # a few copies inside each class
        for source in sorted((root / cls).glob("*.jpg"))[:4]:
            with Image.open(source) as image:
                image.resize((72, 60)).save(
                    source.with_name("copy_" + source.name), quality=int(rng.integers(60, 90))
                )
    report = audit_folder(root, PrepareSettings(near_duplicate_distance=6))
    assert sum(len(g.paths) for g in report.duplicate_groups) >= 16

    manifest = build_manifest(
        report, split(val_fraction=0.2, seed=3), PrepareSettings(drop_conflicting=False)
    )
    check_groups_stay_on_one_side(manifest)
    counts = defaultdict(lambda: defaultdict(int))
    for row in manifest.rows:
        counts[row["split"]][row["label"]] += 1
    assert (
        set(counts["test"])
        == set(counts["val"])
        == set(counts["train"])
        == {"Amanita", "Boletus", "Lactarius"}
    )
    n_test = sum(counts["test"].values())
    assert 0.12 * len(manifest) <= n_test <= 0.28 * len(manifest)

    again = build_manifest(
        AuditReport.read(report.write(tmp_path / "a.json")),
        split(val_fraction=0.2, seed=3),
        PrepareSettings(drop_conflicting=False),
    )
    assert Manifest.read(again.write(tmp_path / "m.csv")).rows == manifest.rows


def _manifest_by_family(tmp_path: Path, settings: PrepareSettings) -> list[list[dict[str, Any]]]:
    """The manifest rows of two classes of three source families each (ten photos, a third of the class),
    family by family: 3 folds, validation 0.3."""
    root = make_distinct_folder(tmp_path / "raw", {"Amanita": 30, "Boletus": 30})
    for cls in ("Amanita", "Boletus"):
        for i, photo in enumerate(sorted((root / cls).glob("*.jpg"))):
            photo.rename(photo.with_name(f"{cls.lower()}_{'xyz'[i // 10]}_{i:03d}.jpg"))
    rows = build_manifest(audit_folder(root), split(num_folds=3, val_fraction=0.3, seed=1), settings).rows
    families = defaultdict(list)
    for row in rows:
        families[row["path"].rsplit("_", 1)[0]].append(row)
    assert len(families) == 6
    return list(families.values())


def _kept_whole(families: list[list[dict[str, Any]]], column: str) -> list[bool]:
    """Per family: whether all its photos share one value of ``column`` (one fold, one validation part)."""
    return [len({row[column] for row in members}) == 1 for members in families]


@pytest.mark.parametrize(
    ("split_by_source", "validate_by_source"), [(True, None), (False, True), (True, False)]
)
def test_source_families_are_kept_whole_where_asked(
    tmp_path: Path, split_by_source: bool, validate_by_source: bool | None
) -> None:
    """Test folds and validation parts each keep whole source families or only duplicate groups, as set;
    validate_by_source follows split_by_source unless set."""
    settings = PrepareSettings(split_by_source=split_by_source, validate_by_source=validate_by_source)
    families = _manifest_by_family(tmp_path, settings)
    assert all(_kept_whole(families, "fold")) == split_by_source
    expected = split_by_source if validate_by_source is None else validate_by_source
    assert all(_kept_whole(families, "val_part")) == expected


@pytest.mark.parametrize(("val_share", "whole_in_validation"), [(None, True), (0.4, True), (0.2, False)])
def test_validation_keeps_only_families_under_its_own_share_whole(
    tmp_path: Path, val_share: float | None, whole_in_validation: bool
) -> None:
    """Families of a third of their class stay whole in the test folds (source_max_share 0.5) and in
    validation only while val_source_max_share (default: source_max_share) allows a third."""
    settings = PrepareSettings(split_by_source=True, val_source_max_share=val_share)
    families = _manifest_by_family(tmp_path, settings)
    assert all(_kept_whole(families, "fold"))
    whole = _kept_whole(families, "val_part")
    assert all(whole) == whole_in_validation
    assert any(whole) == whole_in_validation


def test_conflicting_duplicates_are_dropped_and_big_classes_trimmed(tmp_path: Path) -> None:
    root = make_distinct_folder(tmp_path / "raw", {"Amanita": 40, "Boletus": 6})
    shutil.copyfile(root / "Amanita" / "amanita_000.jpg", root / "Boletus" / "same_photo.jpg")
    report = audit_folder(root)
    manifest = build_manifest(report, split(seed=0), PrepareSettings(max_per_class=20))
    paths = set(manifest.column("path"))
    assert "Boletus/same_photo.jpg" not in paths and "Amanita/amanita_000.jpg" not in paths
    labels = manifest.column("label")
    assert labels.count("Amanita") == 20  # trimmed to the cap
    assert labels.count("Boletus") == 6  # rare class keeps everything


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "data" / "mushrooms-real").is_dir(), reason="needs ../shared real photos")
def test_audit_finds_planted_problems_among_real_photos(tmp_path: Path) -> None:
    root = tmp_path / "real"
    shutil.copytree(SHARED / "data" / "mushrooms-real", root)
    planted = plant_problems(root, "Lactarius", "Agaricus")
    report = audit_folder(root)
    check_audit_finds_planted(report, planted)
    check_groups_stay_on_one_side(build_manifest(report, split(), PrepareSettings(drop_conflicting=False)))


def test_prepare_settings_reach_the_audit(tmp_path: Path) -> None:
    """``data.prepare.min_size`` and ``near_duplicate_distance`` are what the audit runs with."""
    from mushroom.data.audit import run_audit

    root = make_distinct_folder(tmp_path / "raw", {"Amanita": 3, "Boletus": 3})  # 96 x 80 photos
    rng = np.random.default_rng(9)
    for i in range(2):
        distinct_photo(rng, (60, 50)).save(root / "Amanita" / f"small_{i}.jpg")
    settings = PrepareSettings(min_size=51, near_duplicate_distance=3)
    report = run_audit(root, settings, None, tmp_path / "audit.json", reuse=False)
    assert report.settings["near_duplicate_distance"] == 3 and report.settings["min_size"] == 51
    assert sorted((p.path, p.kind) for p in report.excluded) == [
        ("Amanita/small_0.jpg", "too_small"),
        ("Amanita/small_1.jpg", "too_small"),
    ]
    kept = run_audit(root, PrepareSettings(min_size=50), None, tmp_path / "audit.json")
    assert kept.excluded == [] and kept.settings["near_duplicate_distance"] == 10


SAFETY_LABELS = {name: name for name in ("edible", "conditionally_edible", "poisonous", "deadly")}


@pytest.fixture(scope="module")
def safety_audit(tmp_path_factory: pytest.TempPathFactory) -> tuple[AuditReport, Replica]:
    replica = build_safety(tmp_path_factory.mktemp("safety"))
    settings = PrepareSettings(near_duplicate_distance=10, safety_table="genus")
    report = audit_folder(replica.root, settings, label_map=SAFETY_LABELS)
    return report, replica


def test_photos_of_deadly_genera_labelled_edible_are_safety_conflicts(safety_audit: tuple) -> None:
    report, replica = safety_audit
    assert {conflict.path for conflict in report.safety_conflicts} == replica.safety_conflicts
    assert all(conflict.label in ("edible", "conditionally_edible") for conflict in report.safety_conflicts)
    # Deadly-genus photos under a dangerous label are no conflict: deadly/Amanita phalloides, deathcap...
    assert not any(conflict.path.startswith("deadly/") for conflict in report.safety_conflicts)
    assert (
        AuditReport.read(report.write(Path(report.root).parent / "a.json")).safety_conflicts
        == report.safety_conflicts
    )


@pytest.mark.parametrize("policy", ["drop", "keep", "relabel"])
def test_the_safety_conflict_policy_decides_what_training_sees(safety_audit: tuple, policy: str) -> None:
    report, replica = safety_audit
    rows = {
        row["path"]: row["label"]
        for row in build_manifest(report, split(num_folds=2), PrepareSettings(safety_conflicts=policy)).rows
    }
    conflicts = replica.safety_conflicts
    if policy == "drop":
        assert not conflicts & set(rows)
    elif policy == "keep":
        assert all(rows[path] == "conditionally_edible" for path in conflicts)
    else:
        assert all(rows[path] == "deadly" for path in conflicts)
    unrelated = [path for path in rows if path not in conflicts]
    assert all(rows[path] == path.split("/")[0] for path in unrelated)


def test_an_unknown_safety_policy_is_refused_by_name() -> None:
    from mushroom.errors import MushroomError

    with pytest.raises(MushroomError, match=r"safety_conflicts=.ignore.*drop, keep, relabel"):
        PrepareSettings(safety_conflicts="ignore")


def test_nested_labels_and_the_safety_check_apply_without_prepare(tmp_path: Path) -> None:
    """data.label_map and the safety table need no data.prepare.enabled: the audit always runs (in memory
    without it), so photos are labelled by their label folder and the conflicts are dropped."""
    from mushroom.data import MushroomDataModule

    replica = build_safety(tmp_path / "safety")
    processed = tmp_path / "processed"
    dm = MushroomDataModule(
        replica.root,
        label_map=SAFETY_LABELS,
        prepare={"safety_table": "genus", "dir": str(processed)},
        num_folds=2,
        num_workers=0,
    )
    index, _ = dm.index_and_split()
    relative = [path.relative_to(replica.root).as_posix() for path in index.paths]
    assert index.class_names == sorted(SAFETY_LABELS)
    assert all(
        index.class_names[label] == path.split("/")[0]
        for path, label in zip(relative, index.labels, strict=True)
    )
    assert replica.safety_conflicts and not replica.safety_conflicts & set(relative)
    assert not processed.exists()  # nothing written: prepare only decides what is persisted
