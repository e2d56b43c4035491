"""Audit an image folder before training on it: what cannot be used, and what is there twice.

    python -m mushroom.data.audit data=folder data.root=DIR

Every file under the class folders is decoded; undecodable, truncated, non-image and too-small
files are excluded, odd colour modes are noted (training converts them to RGB), and exact
(same bytes) and near (same perceptual hash within a few bits) duplicates are grouped, within and
across classes. A group whose members carry different labels is flagged. Nothing is deleted: the
report is a JSON file, and the manifest built from it decides what training sees.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import hydra
from omegaconf import DictConfig

from mushroom.core.images import decode_or_problem, decoding_threads
from mushroom.core.safety import EDIBLE_LABELS, deadly_genera, load_table
from mushroom.core.taxonomy import genus_table, known_genera, name_key, path_genus
from mushroom.data.audit_report import AuditReport, ImageRecord, Problem, SafetyConflict
from mushroom.data.duplicates import group_duplicates
from mushroom.data.folder import list_class_files, visible_files
from mushroom.data.hashing import (
    file_sha256,
    folder_fingerprint,
    perceptual_hash,
)
from mushroom.data.kaggle import DataSource, locate_dataset
from mushroom.data.published import compare_with_published
from mushroom.errors import MushroomError
from mushroom.runtime import checked_command_line, exit_on_user_error
from mushroom.schemas import PrepareSettings, data_config

log = logging.getLogger(__name__)

#: Decode at least this many pixels on the shorter side: enough for the perceptual hash, and the
#: JPEG decoder still reads (and so checks) every byte of the file.
HASH_DECODE_SIDE = 64


# -- finding files and their labels -----------------------------------------------------------------
@dataclass
class LabelledFiles:
    """Every visible file under a data root with its label (``None``: no label applies), and the copies
    of the set that were left out (copy -> the file it repeats)."""

    base: Path
    files: list[tuple[Path, str | None]]
    copies: dict[Path, Path] = field(default_factory=dict)
    class_folders: list[str] = field(default_factory=list)  # every class folder, with files or not

    def fingerprint(self) -> str:
        return folder_fingerprint(self.files + [(path, "copy") for path in self.copies])


def labelled_files(root: str | Path, label_map: Mapping[str, str] | None = None) -> LabelledFiles:
    """Every visible file under the data root, with its label.

    Without ``label_map`` the label is the class folder a file sits in (``<root>/<class>/...``, in
    every copy of the set the root holds, see :func:`mushroom.data.folder.find_class_folders`).
    With it, the label comes from the first folder on the file's path whose name is a key of the
    map (compared case-, space- and underscore-blind), so nested trees such as
    ``Classes/Deadly/<species>/photo.jpg`` map onto a few labels.
    """
    if label_map is None:
        found = list_class_files(root)
        return LabelledFiles(found.roots[0], found.files, found.copies, found.class_names)
    base = Path(root).expanduser()
    if not base.is_dir():
        raise MushroomError(f"Data folder {base} does not exist. Point data.root at the dataset.")
    keys = {name_key(name): label for name, label in label_map.items()}
    files = []
    for path in visible_files(base):
        relative = path.relative_to(base)
        labels = (keys[name_key(part)] for part in relative.parts[:-1] if name_key(part) in keys)
        files.append((path, next(labels, None)))
    return LabelledFiles(base, files)


# -- inspecting one file ----------------------------------------------------------------------------
def inspect_file(path: Path, min_size: int) -> tuple[dict | None, tuple[str, str] | None]:
    """Decode ``path`` (:func:`decode_or_problem`, the folder scan's rule too); return its facts, or
    ``(kind, detail)`` of the problem that excludes it."""
    photo, problem = decode_or_problem(path, HASH_DECODE_SIDE)
    if photo is None:
        return None, problem
    width, height, mode, rgb = photo.width, photo.height, photo.mode, photo.rgb
    if min(width, height) < min_size:
        detail = f"{width}x{height} is below the {min_size}px minimum (data.prepare.min_size)"
        return None, ("too_small", detail)
    return {
        "width": width,
        "height": height,
        "mode": mode,
        "sha256": file_sha256(path),
        "phash": f"{perceptual_hash(rgb):016x}",
    }, None


def audit_settings(settings: PrepareSettings, label_map: Mapping[str, str] | None) -> dict[str, Any]:
    """The settings an audit report is made with, kept in it: a report made otherwise is not reused."""
    return {
        "label_map": dict(label_map) if label_map else None,
        "min_size": settings.min_size,
        "near_duplicate_distance": settings.near_duplicate_distance,
        "genus_names": settings.genus_names,
        "safety_table": settings.safety_table,
    }


# -- the audit ----------------------------------------------------------------------------------------
def audit_folder(
    root: str | Path,
    settings: PrepareSettings | None = None,
    label_map: Mapping[str, str] | None = None,
    workers: int | None = None,
) -> AuditReport:
    """Inspect every file under ``root`` and group duplicates; see the module docstring.

    ``settings`` (:class:`PrepareSettings`, its defaults when ``None``): ``min_size``,
    ``near_duplicate_distance``; ``genus_names`` names the genus behind each image folder
    (:mod:`mushroom.core.taxonomy`); ``safety_table`` (e.g. ``genus``, in ``configs/safety/``) lists
    photos of a genus it marks deadly that carry an edible label as safety conflicts (the manifest
    decides what to do).
    """
    settings = settings or PrepareSettings()
    min_size, near_duplicate_distance = settings.min_size, settings.near_duplicate_distance
    genus_names, safety_table = settings.genus_names, settings.safety_table
    found = labelled_files(root, label_map)
    data_root = Path(root).expanduser()
    used = audit_settings(settings, label_map)
    report = AuditReport(root=str(data_root), fingerprint=found.fingerprint(), settings=used)
    with_files = {label for _, label in found.files}
    report.empty_classes = [name for name in found.class_folders if name not in with_files]

    def relative(path: Path) -> str:
        return path.relative_to(data_root).as_posix()

    labels = dict(found.files)
    for copy, original in found.copies.items():
        detail = f"the same file as {relative(original)} (the set is there more than once)"
        report.excluded.append(Problem(relative(copy), "copy", detail, label=labels.get(original)))
    labelled = []
    for path, label in found.files:
        if label is None:
            where = "a folder named in data.label_map" if label_map else f"a class folder of {found.base}"
            report.excluded.append(Problem(relative(path), "unlabelled", f"not inside {where}"))
        else:
            labelled.append((path, label))

    workers = decoding_threads(workers)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda item: inspect_file(item[0], min_size), labelled))
    for (path, label), (facts, problem) in zip(labelled, results, strict=True):
        if problem is not None:
            report.excluded.append(Problem(relative(path), *problem, label=label))
            continue
        assert facts is not None
        record = ImageRecord(path=relative(path), label=label, **facts)
        report.images.append(record)
        if record.mode != "RGB":
            report.converted.append(Problem(record.path, "converted", record.mode))

    if genus_names or safety_table:
        name_genera(report, label_map, safety_table)
    group_duplicates(report, near_duplicate_distance)
    if not report.images:
        raise MushroomError(f"No usable images under {data_root}: {report.summary()['excluded']}")
    return report


def name_genera(report: AuditReport, label_map: Mapping[str, str] | None, safety_table: str | None) -> None:
    """Fill in the genus behind each image folder and, with a safety table, the labels it contradicts.

    The genus of a photo is the one named by the innermost folder on its path that names one
    (``conditionally_edible/Mushrooms/Amanita/x.jpg`` -> *Amanita*). The label folders themselves
    (``edible``) are not listed as unknown names.
    """
    table = load_table(safety_table) if safety_table else {}
    genera = known_genera([*table, *load_table("genus")])
    deadly = deadly_genera(table)
    label_folders = {name_key(name) for name in (label_map or {})}
    parents = {PurePosixPath(image.path).parent.name for image in report.images}
    report.folder_genera, unknown = genus_table(parents, genera)
    report.unknown_folders = [name for name in unknown if name_key(name) not in label_folders]
    for image in report.images:
        genus = path_genus(PurePosixPath(image.path).parent.parts, genera)
        if genus in deadly and image.label in EDIBLE_LABELS:
            report.safety_conflicts.append(SafetyConflict(image.path, image.label, genus))


def log_audit(report: AuditReport) -> None:
    """A short table for people; the JSON holds every path."""
    summary = report.summary()
    # The safety and genus-name lines only mean something when those checks ran.
    unchecked = set()
    if not report.settings.get("safety_table"):
        unchecked |= {"safety_label_conflicts", "safety_label_conflicts_by_genus"}
    if not (report.settings.get("genus_names") or report.settings.get("safety_table")):
        unchecked.add("unknown_folders")
    lines = [f"Audit of {report.root}:"]
    lines += [
        f"  {name:<34}{value}" for name, value in summary.items() if name not in unchecked | {"per_class"}
    ]
    lines.append(f"  {'per class':<34}{summary['per_class']}")
    if report.empty_classes:
        lines.append(f"  class folders without a file: {', '.join(report.empty_classes)}")
    if report.unknown_folders:
        listing = ", ".join(report.unknown_folders[:20])
        lines.append(f"  folders naming no genus we know: {listing} (see unknown_folders in the JSON)")
    for problem in report.excluded[:20]:
        lines.append(f"  excluded {problem.kind:<13}{problem.path}: {problem.detail}")
    if len(report.excluded) > 20:
        lines.append(f"  ... and {len(report.excluded) - 20} more excluded files (see the JSON report)")
    for group in report.conflicting_groups()[:10]:
        lines.append(f"  conflicting labels {sorted(set(group.labels))}: {', '.join(group.paths)}")
    log.info("\n".join(lines))


# -- the audit step: reused when up to date, compared with the publisher's counts -----------------------
def run_audit(
    root: str | Path,
    settings: PrepareSettings,
    label_map: Mapping[str, str] | None,
    report_path: Path | None,
    reuse: bool = True,
) -> AuditReport:
    """Audit ``root`` unless (with ``reuse``) ``report_path`` already describes these files with these
    settings; then compare the per-class counts with the published ones. ``report_path=None``: the
    report stays in memory (training without ``data.prepare.enabled``)."""
    wanted = audit_settings(settings, label_map)
    report = None
    if reuse and report_path is not None and report_path.is_file():
        previous = AuditReport.read(report_path)
        unchanged = previous.fingerprint == labelled_files(root, label_map).fingerprint()
        if unchanged and previous.settings == wanted:
            log.info("Audit %s is up to date", report_path)
            report = previous
    if report is None:
        report = audit_folder(root, settings, label_map=label_map)
        log_audit(report)
        if report_path is not None:
            report.write(report_path)
            log.info("Audit report written to %s", report_path)
    if settings.published_counts:
        for warning in compare_with_published(report, settings.published_counts):
            log.warning(warning)
    return report


@checked_command_line("audit")
@hydra.main(version_base="1.3", config_path="../configs", config_name="audit")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    """``python -m mushroom.data.audit``: the audit step alone, always run afresh."""
    data = data_config(cfg)
    out = cfg.report_path or data.processed_dir / "audit.json"
    root = Path(data.root).expanduser()
    source = locate_dataset(data.kaggle_handle, root) or DataSource(root)
    run_audit(source.dir, data.prepare, data.label_map, Path(out), reuse=False)


if __name__ == "__main__":
    main()
