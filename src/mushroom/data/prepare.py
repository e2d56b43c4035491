"""Download -> audit -> manifest -> resized cache, each step skipped when its output is up to date.

    python -m mushroom.data.prepare data=genus
    python -m mushroom.data.prepare data=folder data.root=DIR

Outputs go to ``data.prepare.dir`` (``data/processed/<name>/`` by default): ``audit.json``,
``manifest.csv`` (+ ``manifest.meta.json``, the settings it was built with) and
``cache_<size>/``. Training with ``data.prepare.enabled=true`` runs the same steps first.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from mushroom.data.audit import AuditReport, audit_folder, labelled_files, log_report
from mushroom.data.cache import build_cache
from mushroom.data.kaggle import DataSource, locate_dataset, obtain_dataset
from mushroom.data.manifest import Manifest, build_manifest, check_safety_policy
from mushroom.errors import MushroomError
from mushroom.runtime import exit_on_user_error

log = logging.getLogger(__name__)


#: How long the other ranks of a multi-node run wait for global rank 0 to prepare the data.
PREPARE_WAIT_S = 6 * 3600.0


@dataclass
class PrepareSettings:
    """The ``data.prepare`` config node."""

    enabled: bool = False
    dir: str | None = None
    cache_size: int | None = 256
    min_size: int = 32
    near_duplicate_distance: int = 10
    drop_conflicting: bool = True
    max_per_class: int | None = None
    # Name the genus behind each image folder (species, common names); see mushroom.data.taxonomy.
    genus_names: bool = False
    # Check labels against configs/safety/<table>.yaml, and what to do with the photos it contradicts.
    safety_table: str | None = None
    safety_conflicts: str = "drop"
    # The per-class file counts the dataset's publisher gives; the audit warns when they differ.
    published_counts: dict[str, Any] | None = None
    # Keep each source family (file-name stem before its number) on one side of the split, where its
    # class has other photos: a measure of how the model does on sources it never saw.
    split_by_source: bool = False
    source_max_share: float = 0.5

    def __post_init__(self) -> None:
        check_safety_policy(self.safety_conflicts)  # at composition, not after the audit

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | None) -> PrepareSettings:
        return cls(**dict(node or {}))


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


def processed_dir(
    root: str | Path, settings: PrepareSettings, name: str | None, processed_root: str | Path
) -> Path:
    """``settings.dir``, else ``<processed_root>/<name or the data folder's name>``."""
    if settings.dir:
        return Path(settings.dir).expanduser()
    return Path(processed_root).expanduser() / (name or Path(root).expanduser().resolve().name)


def audit_settings(settings: PrepareSettings, label_map: Mapping[str, str] | None) -> dict[str, Any]:
    """What an audit report must have been made with to be reused."""
    return {
        "label_map": dict(label_map) if label_map else None,
        "min_size": settings.min_size,
        "near_duplicate_distance": settings.near_duplicate_distance,
        "genus_names": settings.genus_names,
        "safety_table": settings.safety_table,
    }


def run_audit(
    root: str | Path,
    settings: PrepareSettings,
    label_map: Mapping[str, str] | None,
    report_path: Path,
    reuse: bool = True,
) -> AuditReport:
    """Audit ``root`` unless (with ``reuse``) ``report_path`` already describes these files with these
    settings; then compare the per-class counts with the published ones."""
    wanted = audit_settings(settings, label_map)
    report = None
    if reuse and report_path.is_file():
        previous = AuditReport.read(report_path)
        unchanged = previous.fingerprint == labelled_files(root, label_map).fingerprint()
        if unchanged and previous.settings == wanted:
            log.info("Audit %s is up to date", report_path)
            report = previous
    if report is None:
        report = audit_folder(
            root,
            label_map=label_map,
            min_size=settings.min_size,
            near_duplicate_distance=settings.near_duplicate_distance,
            genus_names=settings.genus_names,
            safety_table=settings.safety_table,
        )
        report.write(report_path)
        log_report(report)
        log.info("Audit report written to %s", report_path)
    if settings.published_counts:
        for warning in compare_with_published(report, settings.published_counts):
            log.warning(warning)
    return report


def compare_with_published(report: AuditReport, published: Mapping[str, Any]) -> list[str]:
    """Warnings, naming the classes, where the files found differ from the publisher's counts.

    ``published``: ``per_class`` (label -> files), ``total`` (files in all), ``classes`` (how many),
    ``version`` (the dataset version they describe). Files are counted whether usable or not, as the
    publisher counts them; copies of the whole set are counted once and reported on their own.
    """
    found = report.files_per_class()
    version = published.get("version")
    of_version = f" (version {version})" if version is not None else ""
    warnings = []
    per_class = dict(published.get("per_class") or {})
    short = {name: n for name, n in per_class.items() if found.get(name, 0) < n}
    extra = {name: n for name, n in per_class.items() if found.get(name, 0) > n}
    if short:
        listing = _listing(f"{name} {found.get(name, 0)} of {n}" for name, n in short.items())
        warnings.append(
            f"Fewer files than published{of_version}: {listing}. The download may be incomplete: "
            "delete the folder and download again, or check that data.root is the whole archive."
        )
    if extra:
        listing = _listing(f"{name} {found[name]} of {n}" for name, n in extra.items())
        warnings.append(
            f"More files than published{of_version}: {listing}. The folder may hold the set twice or "
            "another version; the audit report's duplicate groups say which files repeat."
        )
    unexpected = sorted(set(found) - set(per_class)) if per_class else []
    if unexpected:
        warnings.append(f"Classes the published set does not have: {_listing(unexpected)}.")
    total = published.get("total")
    if total is not None and sum(found.values()) != total:
        warnings.append(f"{sum(found.values())} files in all, the publisher counts {total}{of_version}.")
    classes = published.get("classes")
    if classes is not None and len(found) != classes:
        warnings.append(f"{len(found)} classes, the publisher counts {classes}{of_version}.")
    copies = Counter(problem.label for problem in report.excluded if problem.kind == "copy")
    if copies:
        listing = _listing(f"{name} {n}" for name, n in sorted(copies.items()))
        warnings.append(
            f"The archive holds the set more than once: {sum(copies.values())} files are copies of files "
            f"found before ({listing}); each is counted once."
        )
    return warnings


def _listing(items: Iterable[str], limit: int = 12) -> str:
    """``a, b, c`` or, past ``limit`` items, ``a, b, ... and 203 more``: 215 classes make no log line."""
    items = list(items)
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


DONE_MARKER = "prepared.json"


def manifest_meta(
    source: DataSource,
    fingerprint: str,
    audit: Mapping[str, Any],
    settings: PrepareSettings,
    split: Mapping[str, Any],
) -> dict[str, Any]:
    """What a manifest was built from: when any of it changes, the manifest is built again."""
    return {
        "source": source.describe(),
        "audit_fingerprint": fingerprint,
        "audit_settings": dict(audit),
        **split,
        "drop_conflicting": settings.drop_conflicting,
        "max_per_class": settings.max_per_class,
        "safety_conflicts": settings.safety_conflicts,
        "split_by_source": settings.split_by_source,
        "source_max_share": settings.source_max_share,
    }


def done_marker(meta: Mapping[str, Any], cache_size: int | None) -> dict[str, Any]:
    """What ``prepared.json`` holds once rank 0 has written the manifest (``meta``) and the cache."""
    return {"meta": dict(meta), "cache_size": cache_size}


def wait_for_prepared(
    root: str | Path,
    settings: PrepareSettings,
    *,
    name: str | None = None,
    processed_root: str | Path = "data/processed",
    label_map: Mapping[str, str] | None = None,
    kaggle_handle: str | None = None,
    split: Mapping[str, Any],
    timeout_s: float = PREPARE_WAIT_S,
    poll_s: float = 2.0,
) -> PreparedData:
    """On every rank but global rank 0: wait until rank 0 has prepared exactly this data, then use it.

    Ranks of a multi-node run start together (torchrun, srun); if each prepared the data itself they
    would write the same audit, manifest and cache at once. Rank 0 writes ``prepared.json`` last, with
    what the manifest was built from; the others compute the same from the files and settings and wait
    until it matches. The processed folder must be on storage every node sees.
    """
    root = Path(root).expanduser()
    out = processed_dir(root, settings, name, processed_root)
    deadline = time.monotonic() + timeout_s
    done, last_seen = out / DONE_MARKER, None
    while True:
        # Walking the data (a fingerprint of every file) only when rank 0 has (re)written its marker.
        stamp = done.stat().st_mtime_ns if done.is_file() else None
        source = locate_dataset(kaggle_handle, root) if stamp not in (None, last_seen) else None
        if source is not None:
            last_seen = stamp
            fingerprint = labelled_files(source.dir, label_map).fingerprint()
            meta = manifest_meta(source, fingerprint, audit_settings(settings, label_map), settings, split)
            if json.loads(done.read_text()) == done_marker(meta, settings.cache_size):
                return PreparedData.in_folder(out, source, settings.cache_size)
        if time.monotonic() > deadline:
            raise MushroomError(
                f"Waited {timeout_s:.0f} s for global rank 0 to prepare the data in {out}. Is that folder on "
                "storage every node sees, and did rank 0 fail? Prepare once beforehand with "
                "`python -m mushroom.data.prepare` and start the run again."
            )
        time.sleep(poll_s)


def prepare_dataset(
    root: str | Path,
    settings: PrepareSettings,
    *,
    name: str | None = None,
    processed_root: str | Path = "data/processed",
    label_map: Mapping[str, str] | None = None,
    kaggle_handle: str | None = None,
    num_folds: int = 5,
    fold: int = 0,
    val_fraction: float = 0.1,
    seed: int = 42,
) -> PreparedData:
    root = Path(root).expanduser()
    out = processed_dir(root, settings, name, processed_root)
    source = obtain_dataset(kaggle_handle, root)
    prepared = PreparedData.in_folder(out, source, settings.cache_size)
    report = run_audit(source.dir, settings, label_map, prepared.audit_path)

    manifest_path, meta_path = prepared.manifest_path, out / "manifest.meta.json"
    split = {"num_folds": num_folds, "fold": fold, "val_fraction": val_fraction, "seed": seed}
    meta = manifest_meta(source, report.fingerprint, report.settings, settings, split)
    if manifest_path.is_file() and meta_path.is_file() and json.loads(meta_path.read_text()) == meta:
        log.info("Manifest %s is up to date", manifest_path)
        manifest = Manifest.read(manifest_path)
    else:
        manifest = build_manifest(
            report,
            num_folds=num_folds,
            fold=fold,
            val_fraction=val_fraction,
            seed=seed,
            drop_conflicting=settings.drop_conflicting,
            max_per_class=settings.max_per_class,
            safety_conflicts=settings.safety_conflicts,
            split_by_source=settings.split_by_source,
            source_max_share=settings.source_max_share,
        )
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


@hydra.main(version_base="1.3", config_path="../configs", config_name="prepare")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    # The DataModule maps the data config onto prepare_dataset; building it reads no files.
    prepared = instantiate(cfg.data, _convert_="all").prepared()
    log.info("Prepared data: %s", json.dumps(asdict(prepared), default=str))


@hydra.main(version_base="1.3", config_path="../configs", config_name="prepare")
@exit_on_user_error
def audit_main(cfg: DictConfig) -> None:
    """``python -m mushroom.data.audit``: the audit step alone, always run afresh."""
    datamodule = instantiate(cfg.data, _convert_="all")
    settings, hparams = datamodule.prepare_settings, datamodule.hparams
    out = cfg.report_path or (
        processed_dir(datamodule.root, settings, hparams["name"], hparams["processed_root"]) / "audit.json"
    )
    source = locate_dataset(hparams["kaggle_handle"], datamodule.root) or DataSource(datamodule.root)
    run_audit(source.dir, settings, hparams["label_map"], Path(out), reuse=False)


if __name__ == "__main__":
    main()
