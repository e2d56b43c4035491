"""Finding a Kaggle dataset on disk (``data.root``, then kagglehub's cache) before downloading it.

kagglehub keeps each download in ``$KAGGLEHUB_CACHE/datasets/<owner>/<name>/versions/<n>/`` (default
``~/.cache/kagglehub``) and marks it complete with ``<n>.complete`` beside ``versions/``. A copy there is
used in place and without network; otherwise the dataset is downloaded into ``data.root``. Either way the
version read is recorded (``manifest.meta.json``), so a result names the data it came from.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mushroom.core.images import IMAGE_EXTENSIONS
from mushroom.errors import MushroomError

log = logging.getLogger(__name__)

_HANDLE = re.compile(r"^(?P<owner>[\w.\-]+)/(?P<name>[\w.\-]+)(?:/versions/(?P<version>\d+))?/?$")


@dataclass(frozen=True)
class KaggleHandle:
    """``owner/name`` or ``owner/name/versions/<n>``, as kagglehub writes dataset handles."""

    owner: str
    name: str
    version: int | None = None

    @classmethod
    def parse(cls, handle: str) -> KaggleHandle:
        match = _HANDLE.match(handle.strip())
        if not match:
            raise MushroomError(
                f"data.kaggle_handle={handle!r} is not a Kaggle dataset handle: write owner/dataset, "
                "or owner/dataset/versions/<n> to pin a version."
            )
        version = match.group("version")
        return cls(match.group("owner"), match.group("name"), int(version) if version else None)

    @property
    def slug(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass(frozen=True)
class DataSource:
    """Where the images are read from, and which Kaggle dataset and version they are (when known)."""

    dir: Path
    handle: str | None = None
    version: int | None = None

    def describe(self) -> dict:
        return {"dir": str(self.dir), "kaggle_handle": self.handle, "version": self.version}


def has_images(root: Path) -> bool:
    """Whether ``root`` already holds images of any kind the package reads (so no download is needed).

    Not only JPEGs: the 215-species archive is all PNG, and ``.JPG`` and ``.jpeg`` occur in the others.
    """
    if not root.is_dir():
        return False
    return any(path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file() for path in root.rglob("*"))


def kagglehub_cache() -> Path:
    """kagglehub's cache folder, as kagglehub itself finds it."""
    return Path(os.environ.get("KAGGLEHUB_CACHE", Path.home() / ".cache" / "kagglehub")).expanduser()


def cached_versions(handle: KaggleHandle) -> dict[int, Path]:
    """The complete versions of ``handle`` in kagglehub's cache (version -> folder)."""
    base = kagglehub_cache() / "datasets" / handle.owner / handle.name
    found = {}
    if (base / "versions").is_dir():
        for folder in (base / "versions").iterdir():
            if folder.name.isdigit() and (base / f"{folder.name}.complete").exists() and has_images(folder):
                found[int(folder.name)] = folder
    return found


def _downloaded_version(target: Path, handle: KaggleHandle) -> int | None:
    """The version kagglehub downloaded into ``target`` (from its marker folder
    ``.complete/datasets/<owner>/<name>/<n>/``); ``None`` for files placed by hand, whatever the handle
    asks for."""
    markers = target / ".complete" / "datasets" / handle.owner / handle.name
    versions = [int(p.name) for p in markers.iterdir() if p.name.isdigit()] if markers.is_dir() else []
    return max(versions) if versions else None


def locate_dataset(handle: str | None, root: str | Path) -> DataSource | None:
    """The dataset's images without downloading: ``root`` if it holds images, else kagglehub's cache.

    A pinned version must be in the cache as that version; without a pin the newest cached one is used.
    """
    root = Path(root).expanduser()
    if has_images(root):
        parsed = KaggleHandle.parse(handle) if handle else None
        return DataSource(root, handle, _downloaded_version(root, parsed) if parsed else None)
    if not handle:
        return None
    parsed = KaggleHandle.parse(handle)
    versions = cached_versions(parsed)
    version = parsed.version if parsed.version is not None else max(versions, default=None)
    if version not in versions:
        return None
    log.info("Using kagglehub's copy of %s v%d in %s (no download)", parsed.slug, version, versions[version])
    return DataSource(versions[version], handle, version)


def obtain_dataset(handle: str | None, root: str | Path) -> DataSource:
    """:func:`locate_dataset`, or download ``handle`` into ``root`` when it is nowhere on disk."""
    found = locate_dataset(handle, root)
    if found is not None:
        return found
    if not handle:
        return DataSource(Path(root).expanduser())
    path = download_dataset(handle, root)
    return DataSource(path, handle, _downloaded_version(path, KaggleHandle.parse(handle)))


def download_dataset(handle: str, target: str | Path) -> Path:
    """Download Kaggle dataset ``handle`` into ``target`` unless images are already there.

    Public datasets (all the ones the package's configs name) need no Kaggle account; for private ones
    kagglehub reads credentials from ``~/.kaggle/kaggle.json`` or ``KAGGLE_USERNAME``/``KAGGLE_KEY``.
    """
    target = Path(target).expanduser()
    if has_images(target):
        return target
    KaggleHandle.parse(handle)
    import kagglehub

    log.info("Downloading Kaggle dataset %s into %s", handle, target)
    target.mkdir(parents=True, exist_ok=True)
    try:
        path = kagglehub.dataset_download(handle, output_dir=str(target))
    except Exception as error:
        raise MushroomError(
            f"Could not download the Kaggle dataset '{handle}' ({type(error).__name__}: {error}).\n"
            "Either let kagglehub reach www.kaggle.com (public datasets need no account; a private one needs "
            "~/.kaggle/kaggle.json or the KAGGLE_USERNAME and KAGGLE_KEY variables), or download the "
            "archive by hand from "
            f"https://www.kaggle.com/datasets/{KaggleHandle.parse(handle).slug}, unpack it and place the "
            f"class folders under {target} (either {target}/<Genus>/<image>.jpg or the archive's own "
            f"{target}/Mushrooms/<Genus>/<image>.jpg), or point data.root at where they are. A copy "
            "that kagglehub downloaded before, in $KAGGLEHUB_CACHE (default ~/.cache/kagglehub), is "
            "found there without network."
        ) from error
    path = Path(path)
    if not has_images(path):
        raise MushroomError(f"kagglehub returned {path} for '{handle}', but it holds no images.")
    log.info("Dataset %s is in %s", handle, path)
    return path
