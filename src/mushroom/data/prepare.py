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
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from mushroom.data.audit import AuditReport, audit_folder, labelled_files, log_report
from mushroom.data.cache import build_cache
from mushroom.data.hashing import folder_fingerprint
from mushroom.data.kaggle import download_dataset, has_images
from mushroom.data.manifest import Manifest, build_manifest
from mushroom.runtime import exit_on_user_error

log = logging.getLogger(__name__)


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

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | None) -> PrepareSettings:
        return cls(**dict(node or {}))


@dataclass
class PreparedData:
    dir: Path
    audit_path: Path
    manifest_path: Path
    cache_dir: Path | None


def processed_dir(
    root: str | Path, settings: PrepareSettings, name: str | None, processed_root: str | Path
) -> Path:
    """``settings.dir``, else ``<processed_root>/<name or the data folder's name>``."""
    if settings.dir:
        return Path(settings.dir).expanduser()
    return Path(processed_root).expanduser() / (name or Path(root).expanduser().resolve().name)


def run_audit(
    root: str | Path,
    settings: PrepareSettings,
    label_map: Mapping[str, str] | None,
    report_path: Path,
    reuse: bool = True,
) -> AuditReport:
    """Audit ``root`` unless (with ``reuse``) ``report_path`` already describes these files with these
    settings."""
    wanted = {
        "label_map": dict(label_map) if label_map else None,
        "min_size": settings.min_size,
        "near_duplicate_distance": settings.near_duplicate_distance,
    }
    if reuse and report_path.is_file():
        previous = AuditReport.read(report_path)
        _, files = labelled_files(root, label_map)
        if previous.fingerprint == folder_fingerprint(files) and previous.settings == wanted:
            log.info("Audit %s is up to date", report_path)
            return previous
    report = audit_folder(
        root,
        label_map=label_map,
        min_size=settings.min_size,
        near_duplicate_distance=settings.near_duplicate_distance,
    )
    report.write(report_path)
    log_report(report)
    log.info("Audit report written to %s", report_path)
    return report


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
    if kaggle_handle and not has_images(root):
        download_dataset(kaggle_handle, root)
    audit_path = out / "audit.json"
    report = run_audit(root, settings, label_map, audit_path)

    manifest_path, meta_path = out / "manifest.csv", out / "manifest.meta.json"
    meta = {
        "audit_fingerprint": report.fingerprint,
        "audit_settings": report.settings,
        "num_folds": num_folds,
        "fold": fold,
        "val_fraction": val_fraction,
        "seed": seed,
        "drop_conflicting": settings.drop_conflicting,
        "max_per_class": settings.max_per_class,
    }
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
        )
        manifest.write(manifest_path)
        meta_path.write_text(json.dumps(meta, indent=1))
        log.info("Manifest written to %s (%d images)", manifest_path, len(manifest))

    cache_dir = None
    if settings.cache_size:
        cache_dir = out / f"cache_{settings.cache_size}"
        build_cache(root, manifest.column("path"), cache_dir, settings.cache_size)
    return PreparedData(dir=out, audit_path=audit_path, manifest_path=manifest_path, cache_dir=cache_dir)


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
    run_audit(datamodule.root, settings, hparams["label_map"], Path(out), reuse=False)


if __name__ == "__main__":
    main()
