"""Folder names -> genera: the four naming styles of the safety archive and the 215 set's common names."""

from __future__ import annotations

import pytest

from mushroom.core.safety import load_table
from mushroom.core.taxonomy import common_names, folder_genus, genus_table, known_genera, name_key, path_genus
from tests.replicas import LISTED_AS, SPECIES_215

GENERA = known_genera(load_table("genus"))


@pytest.mark.parametrize(
    ("folder", "genus"),
    [
        ("Amanita", "Amanita"),  # a bare genus, as in conditionally_edible/Mushrooms/Amanita
        ("Entoloma", "Entoloma"),  # known from the safety table, not from the common names
        ("Amanita_phalloides", "Amanita"),
        ("Amanita phalloides", "Amanita"),
        ("Tricholoma equestre", "Tricholoma"),  # a binomial of a genus no table lists
        ("boletus_edulis", "Boletus"),
        ("horn_of_plenty", "Craterellus"),
        ("deathcap", "Amanita"),
        ("the_blusher", "Amanita"),
        ("deadly_webcap", "Cortinarius"),
        ("Mushrooms", None),  # a wrapper folder, not a genus
        ("edible", None),
        ("conditionally_edible", None),
        ("ascot_hat", None),  # a common name we could not pin down: unknown, not guessed
    ],
)
def test_folder_names_in_every_style_resolve_to_their_genus(folder: str, genus: str | None) -> None:
    assert folder_genus(folder, GENERA) == genus


def test_the_lookup_covers_the_215_set_but_for_two_listed_names() -> None:
    table, unknown = genus_table(SPECIES_215, GENERA)
    assert unknown == ["ascot_hat", "poplar_bell"]
    assert len(table) == 213 and set(common_names()) <= set(SPECIES_215)
    assert all(genus.isalpha() and genus[0].isupper() and genus[1:].islower() for genus in table.values())


def test_names_as_mushrooms_txt_writes_them_match_their_folders() -> None:
    for folder, listed in LISTED_AS.items():
        decoded = listed.encode("cp1252").decode("cp1252")
        assert name_key(decoded) == folder
    assert folder_genus("St. George\u2019s-mushroom", GENERA) == "Calocybe"


def test_the_innermost_folder_that_names_a_genus_wins() -> None:
    assert path_genus(["conditionally_edible", "Mushrooms", "Amanita"], GENERA) == "Amanita"
    assert path_genus(["edible", "Boletus", "Boletus_edulis"], GENERA) == "Boletus"
    assert path_genus(["edible", "Amanita", "unsorted"], GENERA) == "Amanita"
    assert path_genus(["edible", "unsorted"], GENERA) is None
