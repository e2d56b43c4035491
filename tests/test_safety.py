"""The shipped safety table and the safety logic against facts and hand computations.

The table is data that users' lives depend on: a genus losing its ``deadly`` flag in an edit must fail
a test, not pass unnoticed.
"""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from mushroom.configs import CONFIG_DIR
from mushroom.core.answer import NOT_SURE, SAFETY_WARNING, answer, top_k
from mushroom.core.safety import (
    abstain_curve,
    confident,
    dangerous_confusions,
    deadly_mask,
    table_from_config,
    threshold_for_target,
)

GENERA = [
    "Agaricus", "Amanita", "Boletus", "Cortinarius", "Entoloma",
    "Hygrocybe", "Lactarius", "Russula", "Suillus",
]  # fmt: skip


@pytest.fixture(scope="module")
def table() -> dict:
    shipped = table_from_config(OmegaConf.load(CONFIG_DIR / "safety" / "genus.yaml"))
    assert shipped is not None
    return shipped


def test_the_shipped_table_names_the_deadly_and_the_poisonous_genera(table: dict) -> None:
    assert sorted(table) == GENERA
    deadly = {name for name, entry in table.items() if entry.get("deadly")}
    poisonous = {name for name, entry in table.items() if entry.get("poisonous")}
    # Amanita: death cap, destroying angels; Cortinarius: orellanine (C. orellanus, C. rubellus).
    assert deadly == {"Amanita", "Cortinarius"}
    assert poisonous == {"Agaricus", "Entoloma", "Lactarius", "Russula"}
    assert all(entry.get("note") for entry in table.values())
    assert list(deadly_mask(GENERA, table)) == [name in ("Amanita", "Cortinarius") for name in GENERA]


def test_deadly_mask_needs_every_class_in_the_table(table: dict) -> None:
    assert deadly_mask(["Amanita", "Psilocybe"], table) is None
    assert deadly_mask(["Amanita"], None) is None


# Amanita is deadly. Rows: (probabilities over Amanita, Boletus, Lactarius), true label.
PROBS = np.array([[0.9, 0.05, 0.05], [0.3, 0.6, 0.1], [0.2, 0.35, 0.45], [0.1, 0.8, 0.1], [0.7, 0.2, 0.1]])
LABELS = np.array([0, 0, 0, 1, 2])
DEADLY = np.array([True, False, False])


def test_dangerous_confusions_by_hand() -> None:
    plain = dangerous_confusions(PROBS, LABELS, DEADLY)
    # Amanita photos 2 and 3 are called Boletus / Lactarius: 2 of 3 deadly-genus photos.
    assert plain["dangerous_confusions"] == 2 and plain["deadly_genus_images"] == 3
    assert plain["dangerous_confusion_rate"] == pytest.approx(2 / 3)
    assert plain["coverage"] == 1.0 and plain["accuracy_answered"] == pytest.approx(2 / 5)
    # At 0.5, photo 3 (0.45) is "not sure"; photo 2 (0.6) is still a dangerous answer.
    cut = dangerous_confusions(PROBS, LABELS, DEADLY, threshold=0.5)
    assert cut["dangerous_confusions"] == 1 and cut["coverage"] == pytest.approx(4 / 5)
    assert cut["accuracy_answered"] == pytest.approx(2 / 4)
    # A confidence equal to the threshold is answered.
    assert dangerous_confusions(PROBS, LABELS, DEADLY, threshold=0.6)["dangerous_confusions"] == 1
    assert dangerous_confusions(PROBS, LABELS, DEADLY, threshold=0.61)["dangerous_confusions"] == 0


def test_threshold_for_target_is_the_lowest_that_meets_it() -> None:
    assert threshold_for_target(PROBS, LABELS, DEADLY, target=0.0) == pytest.approx(0.7)
    assert threshold_for_target(PROBS, LABELS, DEADLY, target=0.34) == pytest.approx(0.6)
    assert threshold_for_target(PROBS, LABELS, DEADLY, target=0.67) == 0.0
    # Every Amanita called harmless with full confidence: no threshold helps, so nothing is answered.
    hopeless = np.array([[0.0, 1.0, 0.0]])
    assert threshold_for_target(hopeless, np.array([0]), DEADLY, target=0.0) > 1.0


def test_the_deadly_risk_rule_refuses_harmless_answers_with_deadly_mass_at_or_above_it() -> None:
    # Photo 1 (Boletus, Amanita 0.3) and photo 2 (Lactarius, Amanita 0.2) are the dangerous answers; photo 4
    # names Amanita itself, which the rule never refuses, however low its confidence.
    assert list(confident(PROBS, None, DEADLY, 0.25)) == [True, False, True, True, True]
    assert list(confident(PROBS, None, DEADLY, 0.2)) == [True, False, False, True, True]
    assert confident(PROBS, None, DEADLY, None).all() and confident(PROBS, None, None, 0.2).all()
    assert list(confident(PROBS, 0.7, DEADLY, 0.2)) == [True, False, False, True, True]
    ruled = dangerous_confusions(PROBS, LABELS, DEADLY, deadly_risk=0.25)
    assert ruled["dangerous_confusions"] == 1 and ruled["coverage"] == pytest.approx(4 / 5)
    assert dangerous_confusions(PROBS, LABELS, DEADLY, deadly_risk=0.2)["dangerous_confusions"] == 0
    # With the rule in place, no confidence threshold is needed to reach a zero dangerous rate.
    assert threshold_for_target(PROBS, LABELS, DEADLY, target=0.0, deadly_risk=0.2) == 0.0
    # Photo 2 (0.45) is still dangerous at 0.25: the next confidence above it, not 0.7 as without the rule.
    assert threshold_for_target(PROBS, LABELS, DEADLY, target=0.0, deadly_risk=0.25) == pytest.approx(0.6)


def test_answer_says_not_sure_when_a_harmless_genus_carries_deadly_risk(table: dict) -> None:
    names = ["Amanita", "Boletus", "Lactarius"]
    probs = np.array([0.1, 0.85, 0.05])
    risky = answer(probs, names, safety=table, deadly_risk=0.1)
    assert risky["prediction"] == NOT_SURE and risky["verdict"] == "not_sure" and risky["not_sure"]
    assert "(Amanita) hold 10.0%" in risky["reason"] and "below 10.0%" in risky["reason"]
    assert risky["deadly_risk"] == 0.1
    assert risky["note"] is None and risky["top_k"][0]["name"] == "Boletus"
    assert answer(probs, names, safety=table, deadly_risk=0.11)["prediction"] == "Boletus"
    # Naming the deadly genus is never refused by the rule; without a safety table it cannot apply.
    deadly_top = answer(np.array([0.5, 0.3, 0.2]), names, safety=table, deadly_risk=0.01)
    assert deadly_top["prediction"] == "Amanita"
    assert answer(probs, names, deadly_risk=0.1)["prediction"] == "Boletus"


def test_answer_abstains_below_the_threshold_and_names_deadly_look_alikes(table: dict) -> None:
    names = ["Amanita", "Boletus", "Lactarius"]
    probs = np.array([0.25, 0.6, 0.15])
    sure = answer(probs, names, k=3, abstain_threshold=0.6, safety=table)
    assert sure["prediction"] == "Boletus" and not sure["not_sure"]  # equal to the threshold: answered
    assert sure["note"] == table["Boletus"]["note"]
    # Amanita is only second, but a deadly look-alike is always named; Lactarius is poisonous.
    assert [row["name"] for row in sure["dangerous"]] == ["Amanita", "Lactarius"]
    assert sure["dangerous"][0]["deadly"] is True and sure["dangerous"][1]["deadly"] is False
    unsure = answer(probs, names, k=3, abstain_threshold=0.61, safety=table)
    assert unsure["prediction"] == NOT_SURE and unsure["not_sure"] and unsure["note"] is None
    assert unsure["confidence"] == pytest.approx(0.6) and unsure["top_k"][0]["name"] == "Boletus"
    assert [row["name"] for row in answer(probs, names, k=1, safety=table)["dangerous"]] == []
    assert not answer(probs, names, k=3, abstain_threshold=None)["not_sure"]


def test_every_answer_field_for_a_poisonous_look_alike() -> None:
    """The whole answer, field by field: clients (the web page, CSV, JSON) read these names."""
    table = {
        "Amanita": {"deadly": True, "note": "deadly note"},
        "Lactarius": {"poisonous": True, "note": "acrid"},  # no deadly key: not deadly
        "Boletus": {"note": "porcini"},
        "Suillus": {},
    }
    names = ["Amanita", "Boletus", "Lactarius", "Suillus"]
    said = answer(np.array([0.1, 0.6, 0.25, 0.05]), names, safety=table)  # k defaults to 3
    assert said == {
        "prediction": "Boletus",
        "verdict": "genus",
        "reason": None,
        "confidence": 0.6,
        "not_sure": False,
        "abstain_threshold": None,
        "deadly_risk": None,
        "known_score": None,
        "open_set_threshold": None,
        "top_k": [
            {"name": "Boletus", "probability": 0.6},
            {"name": "Lactarius", "probability": 0.25},
            {"name": "Amanita", "probability": 0.1},
        ],
        "note": "porcini",
        "dangerous": [
            {"name": "Lactarius", "probability": 0.25, "deadly": False, "poisonous": True, "note": "acrid"},
            {
                "name": "Amanita",
                "probability": 0.1,
                "deadly": True,
                "poisonous": False,
                "note": "deadly note",
            },
        ],
        "warning": SAFETY_WARNING,
    }
    assert list(deadly_mask(names, table)) == [True, False, False, False]


def test_top_k_rounds_to_six_places_and_keeps_class_order_on_ties() -> None:
    probs = np.array([0.2, 0.4, 0.4, 0.1234567891])
    ranked = top_k(probs, ["a", "b", "c", "d"], k=4)
    assert [row["name"] for row in ranked] == ["b", "c", "a", "d"]
    assert ranked[-1]["probability"] == 0.123457
    assert [row["name"] for row in top_k(probs, ["a", "b", "c", "d"], k=0)] == ["b"]  # at least one


def test_edge_cases_of_the_safety_figures() -> None:
    nothing_deadly = dangerous_confusions(PROBS[3:], LABELS[3:], DEADLY)
    assert nothing_deadly["dangerous_confusion_rate"] is None and nothing_deadly["deadly_genus_images"] == 0
    none_answered = dangerous_confusions(PROBS, LABELS, DEADLY, threshold=0.95)
    assert none_answered["coverage"] == 0.0 and none_answered["accuracy_answered"] is None
    empty = dangerous_confusions(np.zeros((0, 3)), np.zeros(0, dtype=int), DEADLY)
    assert empty["coverage"] == 0.0
    hopeless = threshold_for_target(np.array([[0.0, 1.0, 0.0]]), np.array([0]), DEADLY, target=0.0)
    assert hopeless == float(np.nextafter(1.0, 2.0))  # the smallest threshold above every confidence


def test_abstain_curve_steps_by_five_points() -> None:
    curve = abstain_curve(PROBS, LABELS, DEADLY)
    assert [row["threshold"] for row in curve] == pytest.approx([i / 20 for i in range(20)])
    assert curve == [dangerous_confusions(PROBS, LABELS, DEADLY, i / 20) for i in range(20)]
    assert [row["threshold"] for row in abstain_curve(PROBS, LABELS, DEADLY, [0.3, 0.7])] == [0.3, 0.7]


def test_table_from_config_resolves_interpolations() -> None:
    node = OmegaConf.create({"shared": "see a guide", "Amanita": {"deadly": True, "note": "${shared}"}})
    assert table_from_config(node)["Amanita"] == {"deadly": True, "note": "see a guide"}
    assert table_from_config(None) is None and table_from_config(OmegaConf.create([1, 2])) is None


def test_species_and_common_names_count_as_their_genus(table: dict) -> None:
    """A species model gets the safety view of its genera: deathcap and Amanita phalloides are Amanitas."""
    names = ["deathcap", "Amanita phalloides", "penny_bun", "Boletus_edulis", "deadly_webcap"]
    assert list(deadly_mask(names, table)) == [True, True, False, False, True]
    assert deadly_mask(["deathcap", "chanterelle"], table) is None  # Cantharellus: not in the table


def test_a_species_model_answers_with_the_safety_view_of_its_genera(table: dict) -> None:
    """What evaluation counts as deadly, the answer warns about and the deadly-risk rule weighs: a species
    model's served answer names the death cap as a deadly look-alike and does not name a bolete beside it."""
    names = ["deathcap", "penny_bun", "Lactarius_torminosus"]
    probs = np.array([0.3, 0.6, 0.1])
    said = answer(probs, names, k=3, safety=table, deadly_risk=0.01)
    assert said["prediction"] == NOT_SURE and "(deathcap) hold 30.0%" in said["reason"]
    assert [(row["name"], row["deadly"]) for row in said["dangerous"]] == [
        ("deathcap", True),
        ("Lactarius_torminosus", False),
    ]
    named = answer(np.array([0.001, 0.9, 0.099]), names, safety=table, deadly_risk=0.01)
    assert named["prediction"] == "penny_bun" and named["note"] == table["Boletus"]["note"]
    # A table that does not cover every class gives no deadly-risk view, as evaluation gives no dangerous
    # rate; the classes it does cover are still named as dangerous.
    partial = answer(probs, ["deathcap", "chanterelle", "Boletus"], safety=table, deadly_risk=0.01)
    assert partial["prediction"] == "chanterelle" and partial["dangerous"][0]["name"] == "deathcap"
