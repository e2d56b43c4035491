"""Which genus a folder name stands for: ``Amanita``, ``Amanita phalloides``, ``Amanita_phalloides``,
or a common name of the 215-species set (``deathcap``), from a shipped lookup.

The safety archive labels photos by the folder they sit in, and those folders name genera and species
in four styles. Knowing the genus behind each folder lets the audit check a label against the safety
table (a photo of an *Amanita* labelled edible is a conflict) and lets a species model be viewed by
genus. A name that none of the rules resolves is reported as unknown, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import yaml

COMMON_NAMES_FILE = Path(__file__).with_name("common_names.yaml")

#: ``Genus species`` or ``Genus_species`` (optionally more epithets or "sp."): a capitalised Latin
#: word followed by a lower-case one.
_BINOMIAL = re.compile(r"^([A-Z][a-z]+)[ _]+[a-z][a-z\-]*\.?(?:[ _]+\S+)*$")


@lru_cache(maxsize=1)
def common_names() -> dict[str, str]:
    """Common name (as a folder key, see :func:`name_key`) -> genus, from ``common_names.yaml``."""
    table = yaml.safe_load(COMMON_NAMES_FILE.read_text(encoding="utf-8"))
    return {name_key(name): str(genus) for name, genus in table.items()}


def name_key(name: str) -> str:
    """``St. George's-mushroom`` / ``st_georges_mushroom`` -> ``st_georges_mushroom``.

    The 215-species set writes its names with hyphens, dots and (in ``mushrooms.txt``) a typographic
    apostrophe; its folders drop the apostrophes and dots and use underscores.
    """
    key = re.sub(r"['\u2019.]", "", name.strip().lower())
    return re.sub(r"[\s\-_]+", "_", key).strip("_")


def known_genera(extra: Iterable[str] = ()) -> set[str]:
    """Genus names a bare folder name is recognised as: the lookup's genera plus ``extra``."""
    return set(common_names().values()) | set(extra)


def folder_genus(name: str, genera: set[str]) -> str | None:
    """The genus the folder ``name`` stands for, or ``None`` when it names none we know.

    A first word counts when it is a genus in ``genera`` (so ``Mushrooms`` or ``edible`` are not
    taken for genera); a capitalised word followed by a lower-case one (``Tricholoma equestre``) is a
    binomial whatever its genus.
    """
    stripped = name.strip()
    common = common_names().get(name_key(stripped))
    if common is not None:
        return common
    first = re.split(r"[\s_]+", stripped)[0].capitalize()
    if first in genera:
        return first
    match = _BINOMIAL.match(stripped)
    return match.group(1) if match else None


def path_genus(folders: Iterable[str], genera: set[str]) -> str | None:
    """The genus named by the innermost folder on a path that names one."""
    for folder in reversed(list(folders)):
        genus = folder_genus(folder, genera)
        if genus is not None:
            return genus
    return None


def genus_table(names: Iterable[str], genera: set[str]) -> tuple[dict[str, str], list[str]]:
    """Folder name -> genus for every name that resolves, and the sorted names that do not."""
    resolved: dict[str, str] = {}
    unknown: list[str] = []
    for name in sorted(set(names)):
        genus = folder_genus(name, genera)
        if genus is None:
            unknown.append(name)
        else:
            resolved[name] = genus
    return resolved, unknown
