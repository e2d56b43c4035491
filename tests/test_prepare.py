"""download -> audit -> manifest -> cache: outputs, skipping when up to date, and training from them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mushroom.core.images import load_rgb_opencv
from mushroom.data import MushroomDataModule
from mushroom.data.manifest import Manifest
from mushroom.data.prepare import prepare_dataset
from mushroom.schemas import DataConfig, PrepareSettings
from tests.helpers import distinct_photo, make_distinct_folder

pytestmark = pytest.mark.slow  # end to end: download -> audit -> manifest -> cache on disk


def mtimes(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def test_prepare_writes_audit_manifest_cache_and_skips_when_up_to_date(tmp_path: Path) -> None:
    root = make_distinct_folder(tmp_path / "raw", {"Amanita": 10, "Boletus": 8})
    big = root / "Amanita" / "big.jpg"
    distinct_photo(np.random.default_rng(9), (400, 300)).save(big)
    distinct_photo(np.random.default_rng(8), (50, 40)).save(root / "Boletus" / "small.png")
    settings = PrepareSettings(enabled=True, cache_size=64)
    out = tmp_path / "processed"

    data = DataConfig(root=str(root), prepare=settings, processed_root=str(out), name="toy", num_folds=3)
    prepared = prepare_dataset(data)
    assert prepared.dir == out / "toy"
    manifest = Manifest.read(prepared.manifest_path)
    assert len(manifest) == 20
    assert prepared.cache_dir is not None
    with Image.open(prepared.cache_dir / "Amanita" / "big.jpg") as cached:
        assert cached.size == (85, 64)  # shorter side at cache_size, aspect ratio kept
    with Image.open(prepared.cache_dir / "Boletus" / "small.jpg") as cached:
        assert (cached.format, cached.size) == ("JPEG", (50, 40))  # re-encoded, never enlarged

    before = mtimes(prepared.dir)
    prepare_dataset(data)
    assert mtimes(prepared.dir) == before  # nothing redone

    distinct_photo(np.random.default_rng(10)).save(root / "Boletus" / "new.jpg")
    prepare_dataset(data)
    assert "Boletus/new.jpg" in Manifest.read(prepared.manifest_path).column("path")
    assert (prepared.cache_dir / "Boletus" / "new.jpg").is_file()
    meta_path = prepared.dir / "manifest.meta.json"
    assert json.loads(meta_path.read_text())["num_folds"] == 3
    assert "validate_by_source" not in json.loads(meta_path.read_text())  # unset: older manifests stay valid
    # Setting it rebuilds the manifest: its validation parts are drawn again.
    manifest_written = prepared.manifest_path.stat().st_mtime_ns
    prepare_dataset(replace(data, prepare=replace(settings, validate_by_source=True)))
    assert json.loads(meta_path.read_text())["validate_by_source"] is True
    assert prepared.manifest_path.stat().st_mtime_ns != manifest_written
    assert "val_source_max_share" not in json.loads(meta_path.read_text())
    manifest_written = prepared.manifest_path.stat().st_mtime_ns
    capped = replace(settings, validate_by_source=True, val_source_max_share=0.2)
    prepare_dataset(replace(data, prepare=capped))
    assert json.loads(meta_path.read_text())["val_source_max_share"] == 0.2
    assert prepared.manifest_path.stat().st_mtime_ns != manifest_written
    assert "val_by_fold" not in json.loads(meta_path.read_text())
    manifest_written = prepared.manifest_path.stat().st_mtime_ns
    prepare_dataset(replace(data, prepare=replace(capped, val_by_fold=True)))
    assert json.loads(meta_path.read_text())["val_by_fold"] is True
    assert prepared.manifest_path.stat().st_mtime_ns != manifest_written


def test_datamodule_trains_from_manifest_and_cache(tmp_path: Path) -> None:
    root = make_distinct_folder(tmp_path / "raw", {"Amanita": 15, "Boletus": 15})
    (root / "Boletus" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    dm = MushroomDataModule(
        root,
        image_size=32,
        num_workers=0,
        processed_root=tmp_path / "processed",
        prepare={"enabled": True, "cache_size": 48},
    )
    dm.prepare_data()
    dm.setup("fit")
    index, split = dm.index_and_split()
    assert all("cache_48" in str(path) for path in index.paths)
    assert not any("broken" in str(path) for path in index.paths)
    manifest = Manifest.read(tmp_path / "processed" / "raw" / "manifest.csv")
    splits = np.asarray(manifest.column("split"))
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(split, name), np.flatnonzero(splits == name))
    images, _ = next(iter(dm.train_dataloader()))
    assert images.shape[1:] == (3, 32, 32)
    dataset = dm.val_dataloader().dataset
    assert dataset.decoder == "opencv"  # the cache is decoded with the faster decoder, to the same pixels
    with Image.open(dataset.paths[0]) as reference:
        pil = np.asarray(reference.convert("RGB"), dtype=np.int16)
    assert np.abs(load_rgb_opencv(dataset.paths[0]).astype(np.int16) - pil).max() <= 2


def test_label_map_maps_nested_safety_folders(tmp_path: Path) -> None:
    """Safety-set layout: the label is a folder somewhere on the path, the species folder below it."""
    rng = np.random.default_rng(2)
    layout = {"Classes/Edible/boletus_edulis": 6, "Classes/Deadly/amanita_phalloides": 5, "Classes/Other": 2}
    for folder, count in layout.items():
        (tmp_path / "raw" / folder).mkdir(parents=True)
        for i in range(count):
            distinct_photo(rng).save(tmp_path / "raw" / folder / f"{i}.jpg")
    prepared = prepare_dataset(
        DataConfig(
            root=str(tmp_path / "raw"),
            prepare=PrepareSettings(enabled=True, cache_size=None),
            processed_root=str(tmp_path / "processed"),
            label_map={
                "edible": "edible",
                "deadly": "deadly",
                "conditionally edible": "conditionally_edible",
            },
            num_folds=2,
        )
    )
    manifest = Manifest.read(prepared.manifest_path)
    assert manifest.column("label").count("edible") == 6
    assert manifest.column("label").count("deadly") == 5
    audit = json.loads(prepared.audit_path.read_text())
    assert {p["path"] for p in audit["excluded"] if p["kind"] == "unlabelled"} == {
        "Classes/Other/0.jpg",
        "Classes/Other/1.jpg",
    }


def start_module(module: str, *overrides: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.Popen(
        [sys.executable, "-m", module, *overrides],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_audit_and_prepare_commands(tmp_path: Path) -> None:
    root = make_distinct_folder(tmp_path / "raw", {"Amanita": 8, "Boletus": 8})
    (root / "Amanita" / "notes.jpg").write_text("not an image")
    common = ("data=folder", f"data.root={root}", f"paths.root_dir={tmp_path}")

    # The two commands write different files: run them side by side (each spends seconds importing).
    audit_run = start_module(
        "mushroom.data.audit", *common, f"report_path={tmp_path}/report.json", cwd=tmp_path
    )
    prepare_run = start_module("mushroom.data.prepare", *common, "data.prepare.cache_size=40", cwd=tmp_path)
    audit_out, audit_err = audit_run.communicate(timeout=300)
    _, prepare_err = prepare_run.communicate(timeout=300)
    assert audit_run.returncode == 0, audit_err
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["excluded"] == [
        {
            "path": "Amanita/notes.jpg",
            "kind": "not_an_image",
            "detail": report["excluded"][0]["detail"],
            "label": "Amanita",
        }
    ]
    assert "not_an_image" in audit_out + audit_err

    assert prepare_run.returncode == 0, prepare_err
    assert (tmp_path / "data" / "processed" / "raw" / "manifest.csv").is_file()
    assert len(list((tmp_path / "data" / "processed" / "raw" / "cache_40").rglob("*.jpg"))) == 16


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("dvc") is None, reason="dvc is not installed")
def test_dvc_add_push_pull_with_a_local_remote(tmp_path: Path) -> None:
    """The README's DVC workflow, for real: track data/, push to a folder remote, lose it, pull it back."""
    project, remote = tmp_path / "project", tmp_path / "remote"
    make_distinct_folder(project / "data" / "raw" / "toy", {"Amanita": 3, "Boletus": 3})
    before = {p.relative_to(project).as_posix(): p.read_bytes() for p in (project / "data").rglob("*.jpg")}

    def dvc(*args: str) -> None:
        done = subprocess.run(["dvc", *args], cwd=project, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr

    dvc("init", "--no-scm")
    dvc("config", "core.analytics", "false")
    dvc("remote", "add", "--default", "local", str(remote))
    dvc("add", "data")
    assert (project / "data.dvc").is_file()
    dvc("push")
    shutil.rmtree(project / "data")
    shutil.rmtree(project / ".dvc" / "cache")
    dvc("pull")
    after = {p.relative_to(project).as_posix(): p.read_bytes() for p in (project / "data").rglob("*.jpg")}
    assert after == before


def test_other_ranks_wait_for_rank_zero_to_prepare_exactly_this_data(tmp_path: Path) -> None:
    from mushroom.data.prepare import wait_for_prepared
    from mushroom.errors import MushroomError

    root = make_distinct_folder(tmp_path / "raw", {"Amanita": 6, "Boletus": 6})
    settings = PrepareSettings(enabled=True, cache_size=None)
    data = DataConfig(
        root=str(root), prepare=settings, processed_root=str(tmp_path / "processed"), num_folds=2
    )
    with pytest.raises(MushroomError, match="for global rank 0 to prepare"):
        wait_for_prepared(data, timeout_s=0.2, poll_s=0.05)
    prepared = prepare_dataset(data)
    waited = wait_for_prepared(data, timeout_s=5)
    assert (waited.manifest_path, waited.source) == (prepared.manifest_path, prepared.source)
    # New photos: what rank 0 prepared no longer matches, so the others keep waiting.
    distinct_photo(np.random.default_rng(7)).save(root / "Boletus" / "new.jpg")
    with pytest.raises(MushroomError):
        wait_for_prepared(data, timeout_s=0.2, poll_s=0.05)
