"""Indexing a ``<root>/<class>/<image>`` folder: class names, image paths, labels, unreadable files."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mushroom.data.images import IMAGE_EXTENSIONS, decode_error
from mushroom.errors import MushroomError

log = logging.getLogger(__name__)

MAX_WRAPPER_DEPTH = 3


@dataclass
class ImageFolderIndex:
    """Every usable image of a class folder tree, with its label, plus the files that were skipped."""

    root: Path
    class_names: list[str]
    paths: list[Path]
    labels: np.ndarray
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.class_names))


def _visible_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))


def _image_files(path: Path) -> list[Path]:
    return sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def find_class_root(root: str | Path) -> Path:
    """Return the folder whose sub-folders are the classes.

    Archives often wrap the class folders in one or more extra levels (the Kaggle download unpacks to
    ``Mushrooms/<Genus>/...``): single sub-folders that hold no images directly are descended into.
    """
    path = Path(root).expanduser()
    if not path.is_dir():
        raise MushroomError(
            f"Data folder {path} does not exist. Point data.root at a folder laid out as "
            "<root>/<class>/<image>.jpg (one sub-folder per class)."
        )
    for _ in range(MAX_WRAPPER_DEPTH + 1):
        subdirs = _visible_dirs(path)
        holds_images = any(
            f.suffix.lower() in IMAGE_EXTENSIONS for d in subdirs for f in d.iterdir() if f.is_file()
        )
        if len(subdirs) == 1 and not holds_images:
            path = subdirs[0]
            continue
        break
    if not _visible_dirs(path):
        raise MushroomError(
            f"{path} has no class sub-folders. Expected <root>/<class>/<image>.jpg, e.g. "
            f"{path}/Amanita/0001.jpg."
        )
    return path


def find_undecodable(paths: Sequence[Path], workers: int | None = None) -> list[tuple[Path, str]]:
    """Decode every file (in threads: PIL releases the GIL while decoding) and list the failures."""
    workers = workers or min(8, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        errors = list(pool.map(decode_error, paths))
    return [(path, error) for path, error in zip(paths, errors, strict=True) if error is not None]


def scan_image_folder(
    root: str | Path,
    class_names: Sequence[str] | None = None,
    verify: bool = True,
) -> ImageFolderIndex:
    """Index ``root`` and skip, with one warning naming them, the files that cannot be decoded.

    ``class_names`` fixes the label order (e.g. the classes a checkpoint was trained on); the folder
    may then hold any subset of them, but no class outside them. Without it, the classes are the
    sorted sub-folder names.
    """
    class_root = find_class_root(root)
    folders = {d.name: d for d in _visible_dirs(class_root)}
    files_per_class = {name: _image_files(folder) for name, folder in folders.items()}

    empty = sorted(name for name, files in files_per_class.items() if not files)
    if empty:
        raise MushroomError(
            f"Class folder(s) {', '.join(empty)} in {class_root} hold no images "
            f"(looked for {', '.join(sorted(IMAGE_EXTENSIONS))}). Add images or remove the folder(s)."
        )

    if class_names is None:
        names = sorted(folders)
    else:
        names = list(class_names)
        unknown = sorted(set(folders) - set(names))
        if unknown:
            raise MushroomError(
                f"{class_root} holds class folder(s) {', '.join(unknown)} that the model does not know. "
                f"The model's classes are: {', '.join(names)}. Remove or rename those folders, or "
                "train a model on these classes."
            )

    paths: list[Path] = []
    labels: list[int] = []
    for name in sorted(folders):
        paths.extend(files_per_class[name])
        labels.extend([names.index(name)] * len(files_per_class[name]))

    skipped = find_undecodable(paths) if verify else []
    if skipped:
        listing = "\n".join(f"  {path}: {reason}" for path, reason in skipped)
        log.warning("Skipping %d image(s) that cannot be decoded:\n%s", len(skipped), listing)
        bad = {path for path, _ in skipped}
        kept = [(p, y) for p, y in zip(paths, labels, strict=True) if p not in bad]
        paths = [p for p, _ in kept]
        labels = [y for _, y in kept]
    if not paths:
        raise MushroomError(f"No decodable images under {class_root}.")
    present = set(labels)
    unusable = sorted(name for name in folders if names.index(name) not in present)
    if unusable:
        raise MushroomError(
            f"Class folder(s) {', '.join(unusable)} in {class_root} hold no image that can be decoded "
            "(see the warning above for each file and why). Replace the files or remove the folder(s)."
        )

    return ImageFolderIndex(
        root=class_root,
        class_names=names,
        paths=paths,
        labels=np.asarray(labels, dtype=np.int64),
        skipped=skipped,
    )
