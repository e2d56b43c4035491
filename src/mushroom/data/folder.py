"""Walking a ``<root>/<class>/<image>`` folder (the one walker: the audit lists files with it), and the
index of usable photos with their labels that a manifest gives (``Manifest.index``)."""

from __future__ import annotations

import filecmp
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mushroom.core.images import IMAGE_EXTENSIONS, decode_error, decoding_threads
from mushroom.errors import MushroomError

log = logging.getLogger(__name__)

MAX_WRAPPER_DEPTH = 3


@dataclass
class ImageFolderIndex:
    """Every usable image of a class folder tree with its label, as the manifest lists them."""

    root: Path
    class_names: list[str]
    paths: list[Path]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.class_names))


def _visible_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))


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


def _holds_images(folder: Path) -> bool:
    return any(f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS for f in folder.iterdir())


@dataclass
class ClassFolders:
    """The class folders of a data root, gathered from every copy of the set the root holds.

    ``roots`` are the folders whose sub-folders are classes, the primary copy first. Usually there is
    one; an archive may hold the set twice (the genus archive's ``Mushrooms/`` beside an older
    ``mushrooms/Mushrooms/``) or in parts (``train/``, ``test/``), and then each class has a folder in
    several roots.
    """

    roots: list[Path]
    folders: dict[str, list[Path]]


_WARNED_COPIES: set[Path] = set()


def find_class_folders(root: str | Path) -> ClassFolders:
    """Find the class folders under ``root``, in one copy of the set or in several.

    A sub-folder that holds no images itself and whose own class folders all repeat class names found
    beside it (as siblings, or inside another such sub-folder) is a copy or a part of the set, not a
    class: ``data/`` beside the 215 species folders, or ``Mushrooms/`` beside ``mushrooms/``.
    """
    top = find_class_root(root)
    subdirs = _visible_dirs(top)
    nested: dict[Path, Path] = {}
    for folder in subdirs:
        if not _holds_images(folder) and _visible_dirs(folder):
            nested[folder] = find_class_root(folder)
    names = {folder: {d.name for d in _visible_dirs(inner)} for folder, inner in nested.items()}
    copies = []
    for folder, inner_names in names.items():
        elsewhere = {d.name for d in subdirs if d != folder}
        elsewhere |= {name for other, found in names.items() if other != folder for name in found}
        if len(inner_names) >= 2 and inner_names <= elsewhere:
            copies.append(folder)
    roots = [top] if len(copies) < len(subdirs) else []
    roots += [nested[folder] for folder in copies]
    folders: dict[str, list[Path]] = {}
    for class_root in roots:
        for folder in _visible_dirs(class_root):
            if folder not in copies:
                folders.setdefault(folder.name, []).append(folder)
    if len(roots) > 1 and top not in _WARNED_COPIES:
        _WARNED_COPIES.add(top)  # once per process: the audit walks the folder more than once
        log.warning(
            "%s holds the class folders %d times (%s): each class is read from all of them, and a file "
            "that is there again with the same name and bytes is a copy, counted once",
            top,
            len(roots),
            ", ".join(str(r.relative_to(top)) or "." for r in roots),
        )
    return ClassFolders(roots=roots, folders=dict(sorted(folders.items())))


def visible_files(folder: Path) -> list[Path]:
    """Every file under ``folder``, sorted, leaving out hidden ones and those in ``.x`` / ``__x`` folders."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and not any(part.startswith((".", "__")) for part in path.relative_to(folder).parts)
    )


@dataclass
class ClassFiles:
    """Every visible file of the class folders, with its class, and the copies left out."""

    roots: list[Path]
    class_names: list[str]  # every class folder, with files or not
    files: list[tuple[Path, str | None]]  # None: a file beside the class folders, in no class
    copies: dict[Path, Path]  # copy -> the file it repeats


def list_class_files(root: str | Path) -> ClassFiles:
    """Walk the class folders (:func:`find_class_folders`); a later copy's file with the same class,
    relative path and bytes as one already seen is a copy, listed apart and not labelled twice."""
    classes = find_class_folders(root)
    files: list[tuple[Path, str | None]] = []
    copies: dict[Path, Path] = {}
    for class_root in classes.roots:
        beside = sorted(p for p in class_root.iterdir() if p.is_file() and not p.name.startswith("."))
        files += [(path, None) for path in beside]
    for name, folders in classes.folders.items():
        seen: dict[str, Path] = {}
        for folder in folders:
            for path in visible_files(folder):
                key = path.relative_to(folder).as_posix()
                original = seen.get(key)
                if original is not None and filecmp.cmp(original, path, shallow=False):
                    copies[path] = original
                    continue
                seen.setdefault(key, path)
                files.append((path, name))
    return ClassFiles(roots=classes.roots, class_names=list(classes.folders), files=files, copies=copies)


def find_undecodable(paths: Sequence[Path], workers: int | None = None) -> list[tuple[Path, str]]:
    """Decode every file (in threads: PIL releases the GIL while decoding) and list the failures."""
    workers = decoding_threads(workers)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        errors = list(pool.map(decode_error, paths))
    return [(path, error) for path, error in zip(paths, errors, strict=True) if error is not None]
