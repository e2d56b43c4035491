"""Download -> audit -> manifest -> resized cache, each step skipped when its output is up to date.

    python -m mushroom.data.prepare data=genus
    python -m mushroom.data.prepare data=folder data.root=DIR

Outputs go to ``data.prepare.dir`` (``data/processed/<name>/`` by default): ``audit.json``,
``manifest.csv`` (+ ``manifest.meta.json``, the settings it was built with) and
``cache_<size>/``. Training with ``data.prepare.enabled=true`` runs the same steps first; without it,
:func:`audit_and_split` makes the same manifest in memory (one pipeline: prepare only decides what is kept).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from mushroom.data.audit import audit_settings, labelled_files, run_audit
from mushroom.data.cache import build_cache
from mushroom.data.folder import ImageFolderIndex
from mushroom.data.kaggle import DataSource, locate_dataset, obtain_dataset
from mushroom.data.manifest import Manifest, build_manifest
from mushroom.data.negatives import negative_sources
from mushroom.errors import MushroomError
from mushroom.runtime import checked_command_line, exit_on_user_error
from mushroom.schemas import DataConfig, PrepareSettings, SplitSettings, data_config

log = logging.getLogger(__name__)


#: How long the other ranks of a multi-node run wait for global rank 0 to prepare the data.
PREPARE_WAIT_S = 6 * 3600.0


@dataclass
class PreparedData:
    dir: Path
    source: DataSource  # where the images are read from (data.root, or kagglehub's cache)
    audit_path: Path
    manifest_path: Path
    cache_dir: Path | None

    @classmethod
    def in_folder(cls, out: Path, source: DataSource, cache_size: int | None) -> PreparedData:
        """The files ``prepare`` writes into ``out``, named in one place."""
        cache_dir = out / f"cache_{cache_size}" if cache_size else None
        return cls(out, source, out / "audit.json", out / "manifest.csv", cache_dir)


DONE_MARKER = "prepared.json"


def manifest_meta(
    source: DataSource,
    fingerprint: str,
    audit: Mapping[str, Any],
    settings: PrepareSettings,
    split: SplitSettings,
) -> dict[str, Any]:
    """What a manifest was built from: when any of it changes, the manifest is built again."""
    return {
        "source": source.describe(),
        "audit_fingerprint": fingerprint,
        "audit_settings": dict(audit),
        **asdict(split),
        "drop_conflicting": settings.drop_conflicting,
        "max_per_class": settings.max_per_class,
        "safety_conflicts": settings.safety_conflicts,
        "split_by_source": settings.split_by_source,
        "source_max_share": settings.source_max_share,
        # Only when set: manifests built before the setting existed stay valid.
        **(
            {"validate_by_source": settings.validate_by_source}
            if settings.validate_by_source is not None
            else {}
        ),
        **(
            {"val_source_max_share": settings.val_source_max_share}
            if settings.val_source_max_share is not None
            else {}
        ),
        **({"val_by_fold": True} if settings.val_by_fold else {}),
    }


def done_marker(meta: Mapping[str, Any], cache_size: int | None) -> dict[str, Any]:
    """What ``prepared.json`` holds once rank 0 has written the manifest (``meta``) and the cache."""
    return {"meta": dict(meta), "cache_size": cache_size}


def wait_for_prepared(
    data: DataConfig, timeout_s: float = PREPARE_WAIT_S, poll_s: float = 2.0
) -> PreparedData:
    """On every rank but global rank 0: wait until rank 0 has prepared exactly this data, then use it.

    Ranks of a multi-node run start together (torchrun, srun); if each prepared the data itself they
    would write the same audit, manifest and cache at once. Rank 0 writes ``prepared.json`` last, with
    what the manifest was built from; the others compute the same from the files and settings and wait
    until it matches. The processed folder must be on storage every node sees.
    """
    root, settings, label_map = Path(data.root).expanduser(), data.prepare, data.label_map
    out = data.processed_dir
    deadline = time.monotonic() + timeout_s
    done, last_seen = out / DONE_MARKER, None
    while True:
        # Walking the data (a fingerprint of every file) only when rank 0 has (re)written its marker.
        stamp = done.stat().st_mtime_ns if done.is_file() else None
        source = locate_dataset(data.kaggle_handle, root) if stamp not in (None, last_seen) else None
        if source is not None:
            last_seen = stamp
            fingerprint = labelled_files(source.dir, label_map).fingerprint()
            audit = audit_settings(settings, label_map)
            meta = manifest_meta(source, fingerprint, audit, settings, data.split)
            if json.loads(done.read_text()) == done_marker(meta, settings.cache_size):
                return PreparedData.in_folder(out, source, settings.cache_size)
        if time.monotonic() > deadline:
            raise MushroomError(
                f"Waited {timeout_s:.0f} s for global rank 0 to prepare the data in {out}. Is that folder on "
                "storage every node sees, and did rank 0 fail? Prepare once beforehand with "
                "`python -m mushroom.data.prepare` and start the run again."
            )
        time.sleep(poll_s)


def audit_and_split(data: DataConfig, source: DataSource, *, partition: bool = True) -> Manifest:
    """The data pipeline in memory: audit ``source`` (index, decode, group duplicates), then the manifest
    and its split, as :func:`prepare_dataset` makes them but with nothing written. ``partition=False``:
    every photo is in the test split (evaluating a model on a whole folder)."""
    report = run_audit(source.dir, data.prepare, data.label_map, report_path=None)
    return build_manifest(report, data.split if partition else None, data.prepare)


def index_folder(root: str | Path, class_names: Sequence[str] | None = None) -> ImageFolderIndex:
    """Every usable photo of a ``<root>/<class>/<image>`` folder with its label, by the same pipeline (no
    split): for checking a model on a folder. ``class_names`` fixes the label order (a model's classes;
    the folder may hold a subset of them, and no other)."""
    source = DataSource(Path(root).expanduser())
    manifest = audit_and_split(DataConfig(root=str(source.dir)), source, partition=False)
    return manifest.index(source.dir, class_names)


def prepare_dataset(data: DataConfig) -> PreparedData:
    """The data pipeline with its outputs kept: download (if needed), audit, build the manifest and the
    cache of ``data`` in its processed_dir; each step is skipped when its output is up to date."""
    settings, split = data.prepare, data.split
    out = data.processed_dir
    source = obtain_dataset(data.kaggle_handle, Path(data.root).expanduser())
    prepared = PreparedData.in_folder(out, source, settings.cache_size)
    report = run_audit(source.dir, settings, data.label_map, prepared.audit_path)

    manifest_path, meta_path = prepared.manifest_path, out / "manifest.meta.json"
    meta = manifest_meta(source, report.fingerprint, report.settings, settings, split)
    if manifest_path.is_file() and meta_path.is_file() and json.loads(meta_path.read_text()) == meta:
        log.info("Manifest %s is up to date", manifest_path)
        manifest = Manifest.read(manifest_path)
    else:
        manifest = build_manifest(report, split, settings)
        manifest.write(manifest_path)
        meta_path.write_text(json.dumps(meta, indent=1))
        log.info("Manifest written to %s (%d images)", manifest_path, len(manifest))

    if prepared.cache_dir is not None and settings.cache_size:
        build_cache(source.dir, manifest.column("path"), prepared.cache_dir, settings.cache_size)
    # Written last: the other ranks of a multi-node run wait for it (wait_for_prepared).
    done, marker = out / DONE_MARKER, json.dumps(done_marker(meta, settings.cache_size))
    if not done.is_file() or done.read_text() != marker:  # an up-to-date folder is not touched
        done.write_text(marker)
    return prepared


@checked_command_line("prepare")
@hydra.main(version_base="1.3", config_path="../configs", config_name="prepare")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    """Prepare the photos, and download the Kaggle datasets of the negatives (``data.open_set``), so that
    training (on every node) finds everything on disk."""
    data = data_config(cfg)
    prepared = prepare_dataset(data)
    log.info("Prepared data: %s", json.dumps(asdict(prepared), default=str))
    sources = negative_sources(data.open_set)
    if sources:
        log.info("Negatives on disk: %s", json.dumps([source.describe() for source in sources]))


if __name__ == "__main__":
    main()
