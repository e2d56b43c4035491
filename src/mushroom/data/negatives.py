"""Photos that are none of the model's genera, for outlier exposure and for measuring the open-set answer.

They come from *sources* of two kinds (``data.open_set``):

- ``other_genera``: mushroom photos, each named a genus through :mod:`mushroom.core.taxonomy` from the
  folders it sits in (``Amanita phalloides/``, ``deathcap/``, ``Xylaria/``). A photo of one of the model's
  genera, or of a genus no rule names, is left out: a negative must never be a photo of a known genus.
- ``not_mushroom``: photos that are not mushrooms (animals, objects, people, places); a folder whose name
  says mushroom, fungus or toadstool (Caltech-256's ``147.mushroom``) is left out.

A source is a folder or a Kaggle dataset (``kaggle:owner/name/versions/N``), found in kagglehub's cache or
downloaded like the training data (:mod:`mushroom.data.kaggle`), its version recorded. ``data.open_set.root``
is a folder of both kinds at once: ``<root>/not_mushroom/`` and mushrooms of other genera in the rest (so
``../shared/data/open-set`` works as it is).

Each photo goes to a fold by a hash of its *group* and the seed, as the known photos do: the test fold
``data.fold`` holds out one of ``data.num_folds`` folds, so that k-fold cross-validation predicts every
negative once, by the one fold model that never trained on it. Of the other folds' groups, ``val_fraction``
validate. Mushrooms of another genus are grouped by genus, across sources, so that the test photos of other
genera are of genera never seen in training (the honest question: "a genus I have never seen?"); a
non-mushroom photo is grouped with its category folder, or alone.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from mushroom.core.images import find_images
from mushroom.core.open_set import NEGATIVE_KINDS
from mushroom.core.taxonomy import known_genera, path_genus
from mushroom.data.folder import find_undecodable
from mushroom.data.kaggle import KaggleHandle, obtain_dataset
from mushroom.errors import MushroomError
from mushroom.schemas import OpenSetSettings

log = logging.getLogger(__name__)

NOT_MUSHROOM_FOLDER = "not_mushroom"
KAGGLE_PREFIX = "kaggle:"
PARTS = ("train", "val", "test")
#: Words that make a folder of a non-mushroom set a folder of mushrooms after all.
MUSHROOM_WORDS = {"mushroom", "mushrooms", "fungus", "fungi", "toadstool", "toadstools", "agaric", "bolete"}
#: Capitalised folder names that are not genera (archive and label folders).
NOT_GENERA = {
    "Mushrooms",
    "Mushroom",
    "Fungi",
    "Images",
    "Data",
    "Train",
    "Test",
    "Valid",
    "Edible",
    "Poisonous",
}
_BARE_GENUS = re.compile(r"^[A-Z][a-z]{2,}$")


@dataclass(frozen=True)
class NegativeSource:
    """One place negatives come from: its kind, the folder read, and the Kaggle dataset and version."""

    kind: str
    spec: str
    dir: Path
    #: Prefix of the photos' keys (``not_mushroom`` for ``<root>/not_mushroom``, the folder's name otherwise).
    key_prefix: str
    kaggle_handle: str | None = None
    version: int | None = None
    #: Subfolders of ``dir`` that hold the other kind (``<root>/not_mushroom`` for ``<root>``'s genera).
    skip: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.spec,
            "dir": str(self.dir),
            "kaggle_handle": self.kaggle_handle,
            "version": self.version,
        }


@dataclass
class NegativeSet:
    """Negative photos with their kind (index into :data:`NEGATIVE_KINDS`), part (train/val/test), key (a
    stable name: source and path in it) and group (what is held out together), and where they came from."""

    paths: list[Path] = field(default_factory=list)
    kinds: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    parts: np.ndarray = field(default_factory=lambda: np.empty(0, dtype="<U5"))
    keys: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)

    def select(self, part: str) -> tuple[list[Path], np.ndarray]:
        chosen = np.flatnonzero(self.parts == part)
        return [self.paths[i] for i in chosen], self.kinds[chosen]

    @cached_property
    def _position(self) -> dict[Path, int]:
        return {path: i for i, path in enumerate(self.paths)}

    def key_and_group(self, path: Path) -> tuple[str, str]:
        """The key and group of one of the set's photos."""
        i = self._position[path]
        return self.keys[i], self.groups[i]

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            part: {
                kind: int(((self.parts == part) & (self.kinds == k)).sum())
                for k, kind in enumerate(NEGATIVE_KINDS)
            }
            for part in PARTS
        }

    def describe(self) -> dict[str, Any]:
        """What ``negatives.json`` records: the sources (Kaggle versions too), counts, what was left out."""
        return {"sources": self.sources, "counts": self.counts(), "left_out": self.left_out}


def _draw(*key: object) -> float:
    """A uniform number in [0, 1) from ``key`` alone: the same on every machine and in every run."""
    digest = hashlib.blake2b("/".join(map(str, key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def negative_fold(group: str, seed: int, num_folds: int) -> int:
    """The fold a group of negatives is held out in."""
    return int(_draw(seed, group) * num_folds)


def _part(group: str, seed: int, settings: OpenSetSettings, fold: int | None, num_folds: int) -> str:
    if fold is not None and negative_fold(group, seed, num_folds) == fold:
        return "test"
    return "val" if _draw(seed, "val", group) < settings.val_fraction else "train"


# -- sources ------------------------------------------------------------------------------------------
def negative_sources(settings: OpenSetSettings) -> list[NegativeSource]:
    """Every configured source, Kaggle datasets found on disk or downloaded into ``settings.download_dir``.
    A missing folder is an error when ``settings.required``, else a warning."""
    sources: list[NegativeSource] = []
    if settings.root:
        root = _folder(settings.root, "data.open_set.root", settings.required)
        if root is not None:
            if (root / NOT_MUSHROOM_FOLDER).is_dir():
                sources.append(
                    NegativeSource(
                        "not_mushroom", settings.root, root / NOT_MUSHROOM_FOLDER, NOT_MUSHROOM_FOLDER
                    )
                )
            sources.append(
                NegativeSource("other_genus", settings.root, root, "", skip=(NOT_MUSHROOM_FOLDER,))
            )
    lists = (
        ("other_genus", "other_genera", settings.other_genera),
        ("not_mushroom", "not_mushroom", settings.not_mushroom),
    )
    for kind, key, specs in lists:
        for spec in specs:
            source = _source(kind, spec, f"data.open_set.{key}", settings)
            if source is not None:
                sources.append(source)
    return sources


def _folder(spec: str, key: str, required: bool) -> Path | None:
    folder = Path(spec).expanduser()
    if folder.is_dir():
        return folder
    if required:
        raise MushroomError(
            f"{key}: {folder} is not a folder. Point it at photos that are none of the genera "
            f"({NOT_MUSHROOM_FOLDER}/ for non-mushrooms, other folders for other genera), or leave it out "
            "(data.open_set.root=null, data.open_set.other_genera=[], data.open_set.not_mushroom=[]) to "
            "train without negatives."
        )
    log.warning(
        "No open-set negatives at %s (%s): without negatives the model says 'not a genus I know' from its "
        "energy score alone and cannot tell 'not a mushroom'.",
        folder,
        key,
    )
    return None


def _source(kind: str, spec: str, key: str, settings: OpenSetSettings) -> NegativeSource | None:
    if not spec.startswith(KAGGLE_PREFIX):
        folder = _folder(spec, key, settings.required)
        return NegativeSource(kind, spec, folder, folder.name) if folder is not None else None
    handle = spec.removeprefix(KAGGLE_PREFIX)
    parsed = KaggleHandle.parse(handle)
    target = Path(settings.download_dir).expanduser() / parsed.name
    found = obtain_dataset(handle, target)
    return NegativeSource(kind, spec, found.dir, parsed.name, handle, found.version)


# -- photos of a source ---------------------------------------------------------------------------------
def negative_genus(folders: list[str], genera: set[str]) -> str | None:
    """The genus a mushroom photo's folders name (innermost first), a bare capitalised folder name such as
    ``Xylaria`` included; ``None`` when no folder names one."""
    genus = path_genus(folders, genera)
    if genus is not None:
        return genus
    for folder in reversed(folders):
        if _BARE_GENUS.match(folder) and folder not in NOT_GENERA:
            return folder
    return None


def names_mushrooms(folder: str) -> bool:
    """Whether a folder name of a non-mushroom set says it holds mushrooms (``147.mushroom``, ``fungi``);
    ``not_mushroom`` does not."""
    words = set(re.split(r"[^a-z]+", folder.lower()))
    return bool(words & MUSHROOM_WORDS) and "not" not in words


@dataclass(frozen=True)
class _Photo:
    path: Path
    key: str
    group: str
    kind: int
    #: What the cap counts by: the genus, or the not-mushroom source.
    capped_by: str


def _photos(source: NegativeSource, known: set[str], left_out: Counter) -> list[_Photo]:
    """The photos a source gives, after leaving out what must not be there (counted in ``left_out``)."""
    genera = known_genera(known)
    kind = NEGATIVE_KINDS.index(source.kind)
    photos = []
    for path in find_images([source.dir]):
        relative = path.relative_to(source.dir)
        folders = list(relative.parts[:-1])
        if folders and folders[0] in source.skip:
            continue
        key = "/".join(part for part in (source.key_prefix, relative.as_posix()) if part)
        if source.kind == "other_genus":
            genus = negative_genus(folders, genera)
            if genus is None:
                left_out["no genus named"] += 1
                continue
            if genus in known:
                left_out[f"a known genus ({genus})"] += 1
                continue
            group = f"genus:{genus}"
            photos.append(_Photo(path, key, group, kind, group))
        elif any(names_mushrooms(folder) for folder in folders):
            left_out["mushroom folders in a not-mushroom set"] += 1
        else:
            group = "/".join([source.key_prefix, *folders]) if folders else key
            photos.append(_Photo(path, key, group, kind, source.spec))
    return photos


def _capped(photos: list[_Photo], settings: OpenSetSettings, seed: int, left_out: Counter) -> list[_Photo]:
    """At most ``max_per_genus`` photos of each other genus (over all sources) and ``max_not_mushroom`` of
    each not-mushroom source, chosen by a seeded hash of their keys."""
    by_cap: dict[str, list[_Photo]] = {}
    for photo in photos:
        by_cap.setdefault(photo.capped_by, []).append(photo)
    kept = []
    for members in by_cap.values():
        other_genus = members[0].kind == NEGATIVE_KINDS.index("other_genus")
        cap = settings.max_per_genus if other_genus else settings.max_not_mushroom
        members.sort(key=lambda photo: _draw(seed, "cap", photo.key))
        if cap is not None and len(members) > cap:
            left_out[f"over the cap of {cap} per {'genus' if other_genus else 'source'}"] += (
                len(members) - cap
            )
        kept += members[:cap]
    return sorted(kept, key=lambda photo: photo.key)


def scan_negatives(
    settings: OpenSetSettings, seed: int, fold: int | None, num_folds: int, known: Any = ()
) -> NegativeSet | None:
    """The negatives of every configured source, parted for test fold ``fold`` of ``num_folds``, with the
    photos of the ``known`` genera (the model's classes), undecodable files and mushrooms in a not-mushroom
    set left out (counted in ``left_out``); ``None`` when no source is configured or found."""
    sources = negative_sources(settings)
    if not sources:
        return None
    left_out: Counter = Counter()
    found = [photo for source in sources for photo in _photos(source, set(known), left_out)]
    photos = _capped(found, settings, seed, left_out)
    broken = {path for path, _ in find_undecodable([photo.path for photo in photos])}
    if broken:
        left_out["cannot be decoded"] += len(broken)
        log.warning(
            "Left out %d negative photos that cannot be decoded: %s", len(broken), sorted(map(str, broken))
        )
    photos = [photo for photo in photos if photo.path not in broken]
    if not photos:
        where = ", ".join(source.spec for source in sources)
        raise MushroomError(f"The open-set sources ({where}) hold no readable photo that may be a negative.")
    negatives = NegativeSet(
        paths=[photo.path for photo in photos],
        kinds=np.asarray([photo.kind for photo in photos], np.int64),
        parts=np.asarray([_part(photo.group, seed, settings, fold, num_folds) for photo in photos]),
        keys=[photo.key for photo in photos],
        groups=[photo.group for photo in photos],
        sources=[source.describe() for source in sources],
        left_out=dict(sorted(left_out.items())),
    )
    log.info(
        "Open-set negatives from %s: %s; left out: %s",
        ", ".join(f"{s.spec}" + (f" (v{s.version})" if s.version else "") for s in sources),
        negatives.counts(),
        negatives.left_out or "none",
    )
    return negatives
