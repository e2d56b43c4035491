"""The three Kaggle archives as their users describe them, through the package's own commands.

Each replica (tests/replicas.py) is prepared with ``python -m mushroom.data.prepare data=<set>`` and
trained on for one short epoch; the audit must find exactly what the replica holds, per class, and
the safety set must not let a photo of an Amanita or a Cortinarius reach training under an edible label.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.helpers import run_module
from tests.replicas import GENERA, SPECIES_215, Replica, build_genus, build_safety, build_species215

pytestmark = pytest.mark.slow  # subprocesses of the package's own commands


NO_KAGGLE_NEGATIVES = ("data.open_set.other_genera=[]", "data.open_set.not_mushroom=[]")


def prepare_and_train(
    data: str, replica: Replica, tmp_path: Path, *extra: str
) -> tuple[dict, list[dict], str]:
    """Run the prepare command and a one-epoch training on ``replica``; return the audit, manifest and log."""
    common = [
        f"data={data}",
        f"data.root={replica.root}",
        f"data.prepare.dir={tmp_path / 'prepared'}",
        *NO_KAGGLE_NEGATIVES,  # data=genus's own negatives are tested in test_negatives.py
        *extra,
    ]
    prepared = run_module(
        "mushroom.data.prepare", *common, f"paths.root_dir={tmp_path}", cwd=tmp_path, measured=False
    )
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    audit = json.loads((tmp_path / "prepared" / "audit.json").read_text())
    with open(tmp_path / "prepared" / "manifest.csv", newline="") as handle:
        manifest = list(csv.DictReader(handle))

    run_dir = tmp_path / "run"
    trained = run_module(
        "mushroom.train",
        *common,
        "model=cnn",
        "model.cnn_channels=[8,16]",
        "trainer=cpu",
        "trainer.max_epochs=1",
        "data.image_size=32",
        "data.num_workers=0",
        f"paths.root_dir={tmp_path}",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        measured=False,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    return audit, manifest, prepared.stdout + prepared.stderr


def assert_audit_matches(audit: dict, replica: Replica) -> None:
    assert audit["summary"]["per_class"] == dict(sorted(replica.usable.items()))
    assert {p["path"]: p["kind"] for p in audit["excluded"]} == replica.excluded


def published(counts: dict[str, int], **more: int) -> str:
    per_class = ",".join(f"{name}:{n}" for name, n in counts.items())
    extra = "".join(f",{key}:{value}" for key, value in more.items())
    return f"data.prepare.published_counts={{per_class:{{{per_class}}}{extra}}}"


def test_genus_replica_twice_over_is_read_once(tmp_path: Path) -> None:
    """Mushrooms/ and the older mushrooms/Mushrooms/: one set, each copy left out by path."""
    replica = build_genus(tmp_path / "archive", doubled=True)
    audit, manifest, log = prepare_and_train(
        "genus", replica, tmp_path, published(replica.files, total=sum(replica.files.values()))
    )
    assert_audit_matches(audit, replica)
    assert audit["summary"]["excluded"]["copy"] == sum(replica.files.values())
    assert audit["summary"]["exact_duplicate_groups"] == 1  # the planted same-class duplicate
    assert "Fewer files than published" not in log and "More files than published" not in log
    assert "holds the set more than once" in log
    assert {row["label"] for row in manifest} == set(GENERA)
    assert not any(row["path"].startswith("mushrooms/") for row in manifest)
    assert sum(replica.usable.values()) == len(manifest)


def test_safety_replica_keeps_deadly_genera_out_of_edible_labels(tmp_path: Path) -> None:
    replica = build_safety(tmp_path / "archive")
    audit, manifest, log = prepare_and_train("safety", replica, tmp_path, published(replica.files))
    assert_audit_matches(audit, replica)
    assert {c["path"] for c in audit["safety_conflicts"]} == replica.safety_conflicts
    assert audit["summary"]["safety_label_conflicts_by_genus"] == {"Amanita": 5, "Cortinarius": 2}
    assert audit["summary"]["conflicting_label_pairs"] == {"edible / poisonous": 1}
    assert audit["unknown_folders"] == []
    assert audit["folder_genera"]["the_blusher"] == "Amanita"
    assert audit["folder_genera"]["Cantharellus cibarius"] == "Cantharellus"
    assert f"Left out {len(replica.safety_conflicts)} photos" in log

    edible = {"edible", "conditionally_edible"}
    for row in manifest:
        assert row["path"] not in replica.safety_conflicts
        folders = row["path"].split("/")[:-1]
        if "Amanita" in folders or "Cortinarius" in folders:
            assert row["label"] not in edible, row
    # The picture under two labels is in neither.
    assert not any(row["path"].endswith(("Agaricus_bisporus0.png", "2999medium.png")) for row in manifest)
    assert {row["label"] for row in manifest} == {"edible", "conditionally_edible", "poisonous", "deadly"}


def test_species215_replica_is_found_on_disk_and_named_by_genus(tmp_path: Path) -> None:
    """All PNG, a copy beside data/data, a cp1252 mushrooms.txt: prepared without any download."""
    replica = build_species215(tmp_path / "archive")
    total = f"data.prepare.published_counts.total={sum(replica.files.values())}"
    audit, manifest, log = prepare_and_train("species215", replica, tmp_path, total)
    assert_audit_matches(audit, replica)
    assert len(audit["summary"]["per_class"]) == 215 == len(SPECIES_215)
    assert "Downloading" not in log
    assert audit["unknown_folders"] == ["ascot_hat", "poplar_bell"]
    assert audit["folder_genera"]["deathcap"] == "Amanita"
    assert len(audit["folder_genera"]) == 213
    assert "than published" not in log and "the publisher counts" not in log
    assert len(manifest) == sum(replica.usable.values())


def test_published_counts_name_the_classes_that_differ(tmp_path: Path) -> None:
    """The shipped genus counts (version 1) against a replica with a few photos per class."""
    from mushroom.data.audit import audit_folder
    from mushroom.data.published import compare_with_published

    replica = build_genus(tmp_path / "archive", per_class=3, doubled=True)
    report = audit_folder(replica.root)
    counts = dict(replica.files)
    warnings = compare_with_published(report, {"version": 1, "per_class": counts})
    assert len(warnings) == 1 and "more than once" in warnings[0]

    counts["Boletus"] += 2
    counts["Suillus"] -= 1
    warnings = compare_with_published(report, {"version": 1, "per_class": counts, "total": 99})
    assert "Fewer files than published (version 1): Boletus 3 of 5." in warnings[0]
    assert "More files than published (version 1): Suillus 4 of 3." in warnings[1]
    assert f"{sum(replica.files.values())} files in all, the publisher counts 99" in warnings[2]
