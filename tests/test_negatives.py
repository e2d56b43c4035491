"""Negatives that come with the data: other genera from the 215-species and safety archives and non-mushrooms
from Caltech-256, found in kagglehub's cache (replicas; no network), never a photo of a known genus, held out
by fold and recorded with their versions."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from mushroom.core.open_set import NEGATIVE_KINDS
from mushroom.core.taxonomy import known_genera
from mushroom.data.negatives import _part, names_mushrooms, negative_fold, negative_genus, scan_negatives
from mushroom.errors import MushroomError
from mushroom.schemas import OpenSetSettings
from tests.conftest import FAST_TRAIN, make_negatives, run_train, stripes
from tests.replicas import (
    CALTECH,
    GENERA,
    GENUS,
    SAFETY,
    SPECIES,
    Replica,
    build_caltech256,
    build_genus,
    build_safety,
    build_species215,
    in_kagglehub_cache,
)


def with_known_genera_planted(root: Path) -> Replica:
    """The safety replica with two more folders of known genera, in two naming styles."""
    replica = build_safety(root)
    for folder, name in (("edible/Suillus_luteus", "Suillus_luteus0.png"), ("poisonous/Hygrocybe", "0.jpg")):
        source = sorted((root / "edible" / "Cantharellus cibarius").iterdir())[0]
        (root / folder).mkdir(parents=True)
        (root / folder / name).write_bytes(source.read_bytes())
    return replica


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """kagglehub's cache holding the three archives the genus task's negatives come from; no network."""
    cache = tmp_path / "kagglehub"
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(cache))
    in_kagglehub_cache(cache, SPECIES, 2, lambda root: build_species215(root, copy_outside=False))
    in_kagglehub_cache(cache, SAFETY, 3, with_known_genera_planted)
    in_kagglehub_cache(cache, CALTECH, 1, build_caltech256)
    return cache


def kaggle_settings(tmp_path: Path, **changes: object) -> OpenSetSettings:
    values: dict = {
        "other_genera": [f"kaggle:{SPECIES}/versions/2", f"kaggle:{SAFETY}"],
        "not_mushroom": [f"kaggle:{CALTECH}"],
        "download_dir": str(tmp_path / "negatives"),
        **changes,
    }
    return OpenSetSettings(**values)


def test_a_folder_names_its_genus_and_a_not_mushroom_set_its_mushrooms() -> None:
    genera = known_genera(GENERA)
    assert negative_genus(["deadly", "Amanita phalloides"], genera) == "Amanita"
    assert negative_genus(["data", "data", "deathcap"], genera) == "Amanita"  # a common name
    assert negative_genus(["edible", "horn_of_plenty"], genera) == "Craterellus"
    assert negative_genus(["other_genera", "Xylaria"], genera) == "Xylaria"  # a bare genus
    assert negative_genus(["conditionally_edible", "Mushrooms"], genera) is None  # an archive folder
    assert negative_genus(["edible", "some_unknown_thing"], genera) is None
    assert names_mushrooms("147.mushroom") and names_mushrooms("Fungi") and names_mushrooms("toadstools")
    assert not names_mushrooms("not_mushroom") and not names_mushrooms("056.dog")


def test_kaggle_negatives_hold_no_known_genus_and_record_their_versions(cache: Path, tmp_path: Path) -> None:
    offline = ConnectionError("no network")
    with mock.patch("kagglehub.dataset_download", side_effect=offline) as download:
        negatives = scan_negatives(kaggle_settings(tmp_path), seed=42, fold=0, num_folds=5, known=GENERA)
    download.assert_not_called()
    assert negatives is not None
    other = [i for i, kind in enumerate(negatives.kinds) if kind == NEGATIVE_KINDS.index("other_genus")]
    genera = Counter(negatives.groups[i] for i in other)
    # Every photo of one of the nine genera is left out, the planted ones too; the others stay.
    assert not {group.removeprefix("genus:") for group in genera} & set(GENERA)
    for known in ("Amanita", "Boletus", "Suillus", "Hygrocybe", "Russula", "Entoloma", "Lactarius"):
        assert negatives.left_out.get(f"a known genus ({known})", 0) > 0, (known, negatives.left_out)
    assert {"genus:Craterellus", "genus:Cantharellus"} <= set(genera) and len(genera) >= 50
    # One genus from two archives (horn of plenty in both) is one group, in one part.
    craterellus = [i for i in other if negatives.groups[i] == "genus:Craterellus"]
    assert {negatives.keys[i].split("/")[0] for i in craterellus} == {
        SPECIES.split("/")[1],
        SAFETY.split("/")[1],
    }
    for group in genera:
        assert len({negatives.parts[i] for i in other if negatives.groups[i] == group}) == 1
    # Non-mushrooms: every Caltech category but its mushrooms, grouped by category.
    not_mushroom = NEGATIVE_KINDS.index("not_mushroom")
    things = [negatives.keys[i] for i, kind in enumerate(negatives.kinds) if kind == not_mushroom]
    assert len(things) == 9 * 4 and not [key for key in things if "mushroom" in key]
    assert negatives.left_out["mushroom folders in a not-mushroom set"] == 4
    sources = {source["source"]: source for source in negatives.sources}
    assert sources[f"kaggle:{SPECIES}/versions/2"]["version"] == 2
    assert sources[f"kaggle:{SAFETY}"]["version"] == 3  # unpinned: the newest cached, recorded
    assert sources[f"kaggle:{CALTECH}"]["kaggle_handle"] == CALTECH


def test_the_cap_keeps_each_genus_small_and_follows_the_seed(cache: Path, tmp_path: Path) -> None:
    capped = scan_negatives(kaggle_settings(tmp_path, max_per_genus=2, max_not_mushroom=6), 42, 0, 5, GENERA)
    # (the replica's 215 species are 4 to 7 photos each, so most genera hold more than 2)
    assert capped is not None
    per_group = Counter(capped.groups)
    assert max(n for group, n in per_group.items() if group.startswith("genus:")) == 2
    assert sum(capped.kinds == NEGATIVE_KINDS.index("not_mushroom")) == 6
    again = scan_negatives(kaggle_settings(tmp_path, max_per_genus=2, max_not_mushroom=6), 42, 0, 5, GENERA)
    assert again is not None and again.keys == capped.keys
    other = scan_negatives(kaggle_settings(tmp_path, max_per_genus=2, max_not_mushroom=6), 43, 0, 5, GENERA)
    assert other is not None and other.keys != capped.keys and len(other.keys) == len(capped.keys)


def test_a_kaggle_source_not_on_disk_and_unreachable_says_so(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "empty"))
    settings = kaggle_settings(tmp_path, other_genera=[], not_mushroom=[f"kaggle:{CALTECH}"])
    with (
        mock.patch("kagglehub.dataset_download", side_effect=ConnectionError("no network")),
        pytest.raises(MushroomError, match=r"jessicali9530/caltech256.*no network"),
    ):
        scan_negatives(settings, seed=0, fold=0, num_folds=5, known=GENERA)


def test_folders_of_each_kind_are_read_as_that_kind_and_recorded(tmp_path: Path) -> None:
    """``data.open_set.other_genera=[DIR]`` and ``not_mushroom=[DIR]``: local folders, no Kaggle."""
    root = make_negatives(tmp_path / "open-set", not_mushrooms=5, per_genus=2, genera=3)  # Russula first
    other, things = root / "other_genera", root / "not_mushroom"
    lone = next((other / "Xylaria").iterdir())
    (other / "Pleurotus").mkdir()
    (other / "Pleurotus" / "only.jpg").write_bytes(lone.read_bytes())  # a genus of one photo
    for name in ("a.jpg", "b.jpg"):
        (other / "some_thing").mkdir(exist_ok=True)
        (other / "some_thing" / name).write_bytes(lone.read_bytes())  # no genus named
        stripes(things / "dogs" / name, seed=ord(name[0]))  # a category: held out together
    settings = OpenSetSettings(other_genera=[str(other)], not_mushroom=[str(things)])
    negatives = scan_negatives(settings, seed=0, fold=0, num_folds=5, known=GENERA)
    assert negatives is not None
    kinds = [NEGATIVE_KINDS[k] for k in negatives.kinds]
    assert Counter(kinds) == {"other_genus": 5, "not_mushroom": 7}
    per_kind = {
        kind: sum(negatives.counts()[part][kind] for part in ("train", "val", "test")) for kind in kinds
    }
    assert per_kind == {"other_genus": 5, "not_mushroom": 7}
    # Keys start with the folder's name; a genus is grouped as one, a category together, a thing alone.
    rows = list(zip(negatives.keys, negatives.groups, kinds, strict=True))
    thing_groups = {key: group for key, group, kind in rows if kind == "not_mushroom"}
    genus_groups = {key: group for key, group, kind in rows if kind == "other_genus"}
    assert sorted(thing_groups) == [
        "not_mushroom/dogs/a.jpg",
        "not_mushroom/dogs/b.jpg",
        *(f"not_mushroom/thing_{i:03d}.jpg" for i in range(5)),
    ]
    assert {thing_groups["not_mushroom/dogs/a.jpg"], thing_groups["not_mushroom/dogs/b.jpg"]} == {
        "not_mushroom/dogs"
    }
    assert all(group == key for key, group in thing_groups.items() if "dogs" not in key)
    assert set(genus_groups.values()) == {"genus:Xylaria", "genus:Morchella", "genus:Pleurotus"}
    assert all(key.startswith("other_genera/") for key in genus_groups)
    local = {"kaggle_handle": None, "version": None}
    assert negatives.describe() == {
        "sources": [
            {"kind": "other_genus", "source": str(other), "dir": str(other), **local},
            {"kind": "not_mushroom", "source": str(things), "dir": str(things), **local},
        ],
        "counts": negatives.counts(),
        "left_out": {"a known genus (Russula)": 2, "no genus named": 2},
    }  # fmt: skip


def test_negatives_are_spread_over_the_folds_and_validation_by_the_seed() -> None:
    """Every fold holds out its share of negative groups, a share of the rest validates, and another seed
    deals them again (as it does the known photos)."""
    groups = [f"genus:G{i}" for i in range(1000)]
    folds = np.array([negative_fold(group, 42, 5) for group in groups])
    assert np.bincount(folds, minlength=5).min() > 150  # about 200 each; a draw in half the range gives 0
    assert (folds != np.array([negative_fold(group, 7, 5) for group in groups])).mean() > 0.6
    settings = OpenSetSettings(val_fraction=0.25)
    parts = np.array([_part(group, 42, settings, 0, 5) for group in groups])
    assert ((parts == "test") == (folds == 0)).all()
    assert 0.2 < (parts[folds != 0] == "val").mean() < 0.3
    moved = np.array([_part(group, 7, settings, 0, 5) for group in groups])
    assert ((parts == "val") != (moved == "val"))[(folds != 0) & (moved != "test")].mean() > 0.2
    assert set(np.array([_part(group, 42, settings, None, 5) for group in groups])) == {"train", "val"}


def test_the_cap_draws_apart_from_the_folds_and_caps_each_source(tmp_path: Path) -> None:
    """The cap's draw is not the fold's draw: a capped set of lone photos still reaches the last folds."""
    for i in range(40):
        stripes(tmp_path / "first" / f"{i}.jpg", seed=i)
    for i in range(6):
        stripes(tmp_path / "second" / f"{i}.jpg", seed=100 + i)
    settings = OpenSetSettings(
        not_mushroom=[str(tmp_path / "first"), str(tmp_path / "second")], max_not_mushroom=20
    )
    negatives = scan_negatives(settings, seed=3, fold=0, num_folds=5, known=GENERA)
    assert negatives is not None
    assert Counter(key.split("/")[0] for key in negatives.keys) == {"first": 20, "second": 6}  # per source
    assert negatives.left_out == {"over the cap of 20 per source": 20}
    late = [
        group for group in negatives.groups if group.startswith("first/") and negative_fold(group, 3, 5) >= 3
    ]
    assert len(late) >= 4  # about 8 of 20 in the last two folds; kept by the fold's draw, none


def test_a_missing_folder_of_negatives_is_an_error_or_when_not_required_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_negatives(tmp_path / "open-set", not_mushrooms=3, per_genus=2, genera=2)
    missing = tmp_path / "nowhere"
    settings = OpenSetSettings(other_genera=[str(root / "other_genera")], not_mushroom=[str(missing)])
    with pytest.raises(MushroomError) as refused:
        scan_negatives(settings, seed=0, fold=0, num_folds=5, known=GENERA)
    assert str(refused.value).startswith(f"data.open_set.not_mushroom: {missing} is not a folder. ")
    assert str(refused.value).endswith(
        "or leave it out (data.open_set.root=null, data.open_set.other_genera=[], "
        "data.open_set.not_mushroom=[]) to train without negatives."
    )
    optional = OpenSetSettings(
        other_genera=[str(root / "other_genera")], not_mushroom=[str(missing)], required=False
    )
    with caplog.at_level("WARNING", logger="mushroom.data.negatives"):
        negatives = scan_negatives(optional, seed=0, fold=0, num_folds=5, known=GENERA)
    assert negatives is not None and set(negatives.kinds) == {NEGATIVE_KINDS.index("other_genus")}
    assert [source["source"] for source in negatives.sources] == [str(root / "other_genera")]
    assert (
        f"No open-set negatives at {missing} (data.open_set.not_mushroom): without negatives" in caplog.text
    )
    assert "from its energy score alone and cannot tell 'not a mushroom'." in caplog.text


# -- data=genus end to end ------------------------------------------------------------------------------
QUICK = [
    *[override for override in FAST_TRAIN if not override.startswith("data=")],
    "data.image_size=32",
    "data.prepare.cache_size=null",
    "trainer.max_epochs=1",
]


@pytest.mark.slow
def test_data_genus_trains_with_its_kaggle_negatives_by_default(cache: Path, tmp_path: Path) -> None:
    """The default open set of data=genus: negatives from the replicas, every known genus left out, the
    versions recorded beside the manifest and in the model card, and open-set figures in the report.
    Switched off, the same run trains without negatives."""
    in_kagglehub_cache(cache, GENUS, 1, lambda root: build_genus(root, per_class=6))
    base = [*QUICK, f"paths.data_dir={tmp_path / 'data'}"]
    with mock.patch("kagglehub.dataset_download", side_effect=ConnectionError("no network")):
        run_train(["data=genus", *base], tmp_path / "with")
        run_train(["data=genus", *base, "data.open_set.other_genera=[]", "data.open_set.not_mushroom=[]",
                   "data.name=genus_off"], tmp_path / "without")  # fmt: skip
    record = json.loads((tmp_path / "data" / "processed" / "genus" / "negatives.json").read_text())
    versions = {source["source"]: source["version"] for source in record["sources"]}
    assert versions == {f"kaggle:{SPECIES}/versions/2": 2, f"kaggle:{SAFETY}": 3, f"kaggle:{CALTECH}": 1}
    assert record["counts"]["test"]["not_mushroom"] > 0 and record["counts"]["train"]["other_genus"] > 0
    assert any(reason.startswith("a known genus") for reason in record["left_out"])
    report = json.loads((tmp_path / "with" / "test_metrics.json").read_text())
    assert report["open_set"]["folders"]["not_mushroom"]["images"] == record["counts"]["test"]["not_mushroom"]
    card = (tmp_path / "with" / "checkpoints" / "model_card.md").read_text()
    assert f"kaggle:{SAFETY}` v3 (other_genus)" in card
    without = json.loads((tmp_path / "without" / "test_metrics.json").read_text())
    assert not (without.get("open_set") or {}).get("folders")
    assert not (tmp_path / "data" / "processed" / "genus_off" / "negatives.json").exists()


@pytest.mark.slow
def test_prepare_finds_the_negatives_too(cache: Path, tmp_path: Path) -> None:
    """python -m mushroom.data.prepare (run once before a multi-node job) gets the negatives' archives too,
    here from kagglehub's cache, and says which versions."""
    from tests.helpers import run_module

    in_kagglehub_cache(cache, GENUS, 1, lambda root: build_genus(root, per_class=3))
    done = run_module(
        "mushroom.data.prepare", "data=genus", f"paths.root_dir={tmp_path}", "data.prepare.cache_size=null",
        cwd=tmp_path, measured=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    logged = done.stdout + done.stderr
    assert "Negatives on disk" in logged and f'"kaggle_handle": "{SAFETY}", "version": 3' in logged
