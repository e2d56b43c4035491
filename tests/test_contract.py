"""The service's API contract: the OpenAPI document declares what the service really takes and answers.

Generated clients and the ``/docs`` page are built from this document; it once declared no request body
for ``POST /predict`` (so neither could send a photo), none of its 4xx answers, and ``/metrics`` as JSON.
The live check runs schemathesis, as ``schemathesis.toml`` (at the repository root) configures it.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from mushroom.core.answer import Answer
from mushroom.schemas import ServeSettings
from mushroom.serving.app import create_app
from tests.conftest import REPO, plain_png, running_server
from tests.helpers import corner_finder


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict:
    model = corner_finder(tmp_path_factory.mktemp("contract") / "finder.onnx")
    with TestClient(create_app(ServeSettings(model_path=str(model)))) as client:
        return client.get("/openapi.json").json()


def test_predict_declares_the_multipart_photo(document: dict) -> None:
    body = document["paths"]["/predict"]["post"]["requestBody"]
    form = body["content"]["multipart/form-data"]
    assert body["required"] is True
    assert form["schema"]["required"] == ["file"] and form["schema"]["additionalProperties"] is False
    assert form["schema"]["properties"]["file"]["format"] == "binary"
    assert "image/jpeg" in form["encoding"]["file"]["contentType"]


def test_predict_declares_every_status_with_its_body(document: dict) -> None:
    responses = document["paths"]["/predict"]["post"]["responses"]
    assert set(responses) == {"200", "400", "408", "413", "415", "422", "500", "503"}
    answer = responses["200"]["content"]["application/json"]["schema"]["$ref"]
    assert answer.endswith("/Answer")
    for status in set(responses) - {"200"}:
        assert responses[status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    error = document["components"]["schemas"]["ErrorBody"]
    assert set(error["required"]) == {"error", "detail"}


def test_metrics_are_declared_as_prometheus_text(document: dict) -> None:
    content = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/plain"]


def test_the_docs_page_loads_only_pinned_files_checked_by_their_hashes(tmp_path: Path) -> None:
    """/docs loaded Swagger UI from a CDN at a floating version with no integrity hash; /redoc too."""
    import re

    from mushroom.serving.page_policy import SWAGGER_UI, SWAGGER_UI_FILES

    model = corner_finder(tmp_path / "finder.onnx")
    with TestClient(create_app(ServeSettings(model_path=str(model)))) as client:
        page = client.get("/docs")
        assert client.get("/redoc").status_code == 404
    assert page.status_code == 200 and "@5.35.0" in SWAGGER_UI
    loaded = re.findall(r'(?:src|href)="([^"]+)" integrity="(sha384-[A-Za-z0-9+/=]{64})"', page.text)
    assert loaded == [
        (f"{SWAGGER_UI}/{name}", SWAGGER_UI_FILES[name])
        for name in ("swagger-ui.css", "swagger-ui-bundle.js")
    ]
    assert len(re.findall(r"https?://", page.text)) == 2  # nothing else from anywhere
    policy = page.headers["content-security-policy"]
    assert (
        f"script-src {SWAGGER_UI}/swagger-ui-bundle.js 'sha256-" in policy and "default-src 'none'" in policy
    )
    assert page.headers["x-frame-options"] == "DENY"


def test_the_docs_can_be_switched_off(tmp_path: Path) -> None:
    model = corner_finder(tmp_path / "finder.onnx")
    with TestClient(create_app(ServeSettings(model_path=str(model), api_docs=False))) as client:
        assert [client.get(path).status_code for path in ("/docs", "/redoc", "/openapi.json")] == [404] * 3
        assert client.get("/health").status_code == 200


@pytest.mark.slow
def test_schemathesis_finds_no_contract_failure_and_no_server_error(
    exported_model: Path, tmp_path: Path
) -> None:
    """Every check schemathesis has, against the live service, with photos as the valid uploads."""
    schemathesis = Path(sys.executable).parent / "schemathesis"
    with running_server(exported_model, tmp_path) as url:
        run = subprocess.run(
            [str(schemathesis), "run", f"{url}/openapi.json", "--checks", "all", "--max-examples", "60"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        photo = {"file": ("a.png", plain_png(64, 48), "image/png")}
        answer = httpx.post(f"{url}/predict", files=photo).json()
    assert run.returncode == 0, run.stdout[-4000:]
    assert "No issues found" in run.stdout
    declared = {field.name for field in dataclasses.fields(Answer)}
    assert set(answer) == declared  # a real answer is the declared model, no more, no less
    TypeAdapter(Answer).validate_python(answer)
    assert "Traceback" not in (tmp_path / "server.log").read_text()
