"""A field added to the answer (``mushroom.core.answer``) reaches the OpenAPI schema and predict's CSV
without touching them, as docs/how-to/extend.md says."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path
from typing import Annotated

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import Field

from mushroom.core import answer as answer_module
from mushroom.predict import csv_columns, format_results
from mushroom.schemas import ServeSettings
from mushroom.serving.app import create_app
from tests.helpers import corner_finder


@dataclasses.dataclass
class WithSeason(answer_module.Answer):
    """The how-to's example: one more field, with its description, and its value in answer()."""

    season: Annotated[str | None, Field(description="When this genus fruits.")] = None


@pytest.fixture
def with_season(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(answer_module, "Answer", WithSeason)


@pytest.mark.usefixtures("with_season")
def test_a_new_answer_field_reaches_the_openapi_schema_and_the_csv(tmp_path: Path) -> None:
    reply = answer_module.answer(np.array([0.2, 0.8]), ["Amanita", "Boletus"], 2)
    assert "season" in reply and reply["prediction"] == "Boletus"

    model = corner_finder(tmp_path / "finder.onnx")
    with TestClient(create_app(ServeSettings(model_path=str(model)))) as client:
        schema = client.get("/openapi.json").json()["components"]["schemas"]
    answer_schema = next(s for name, s in schema.items() if "season" in s.get("properties", {}))
    assert answer_schema["properties"]["season"]["description"] == "When this genus fruits."
    assert {"prediction", "verdict", "top_k"} <= set(answer_schema["properties"])

    assert csv_columns()[-3:] == ["season", "top_k", "error"]
    rows = list(csv.DictReader(io.StringIO(format_results([{"path": "a.jpg", **reply}], "csv"))))
    assert (
        rows[0]["season"] == ""
        and rows[0]["prediction"] == "Boletus"
        and rows[0]["top_k"].startswith("Boletus")
    )


def test_the_csv_columns_are_the_answers_one_value_fields() -> None:
    fields = [f.name for f in dataclasses.fields(answer_module.Answer)]
    columns = csv_columns()
    assert columns[0] == "path" and columns[-2:] == ["top_k", "error"]
    assert columns[1:-2] == [name for name in fields if name not in ("top_k", "dangerous", "warning")]
