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
from omegaconf import DictConfig

from mushroom.data.audit import AuditReport, audit_folder, audit_settings, labelled_files, log_audit
from mushroom.data.cache import build_cache
from mushroom.data.kaggle import DataSource, locate_dataset, obtain_dataset
from mushroom.data.manifest import Manifest, build_manifest
from mushroom.errors import MushroomError
from mushroom.runtime import exit_on_user_error
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


def processed_dir(data: DataConfig) -> Path:
    """``data.prepare.dir``, else ``<data.processed_root>/<data.name or the data folder's name>``."""
    if data.prepare.dir:
        return Path(data.prepare.dir).expanduser()
    return Path(data.processed_root).expanduser() / (data.name or Path(data.root).expanduser().resolve().name)


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
        report = audit_folder(root, settings, label_map=label_map)
        report.write(report_path)
        log_audit(report)
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
    out = processed_dir(data)
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


def prepare_dataset(data: DataConfig) -> PreparedData:
    """Download (if needed), audit, build the manifest and the cache for ``data`` in :func:`processed_dir`."""
    settings, split = data.prepare, data.split
    out = processed_dir(data)
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


@hydra.main(version_base="1.3", config_path="../configs", config_name="prepare")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    prepared = prepare_dataset(data_config(cfg))
    log.info("Prepared data: %s", json.dumps(asdict(prepared), default=str))


@hydra.main(version_base="1.3", config_path="../configs", config_name="prepare")
@exit_on_user_error
def audit_main(cfg: DictConfig) -> None:
    """``python -m mushroom.data.audit``: the audit step alone, always run afresh."""
    data = data_config(cfg)
    out = cfg.report_path or processed_dir(data) / "audit.json"
    root = Path(data.root).expanduser()
    source = locate_dataset(data.kaggle_handle, root) or DataSource(root)
    run_audit(source.dir, data.prepare, data.label_map, Path(out), reuse=False)


if __name__ == "__main__":
    main()
