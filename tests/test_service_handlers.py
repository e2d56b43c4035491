"""The service's handlers are functions over one ``Service`` state: they answer, record and refuse without an
HTTP server or a test client in between."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mushroom.schemas import ServeSettings
from mushroom.serving.app import Service, answer_photo, record_input
from mushroom.serving.uploads import UploadError, open_upload
from tests.helpers import corner_finder


def photo(quarter: tuple[slice, slice], size: int = 64) -> bytes:
    """Grey with one red quarter, as JPEG."""
    rgb = np.full((size, size, 3), 128, dtype=np.uint8)
    rgb[quarter] = (220, 20, 20)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


@pytest.fixture
def service(tmp_path: Path) -> Service:
    settings = ServeSettings(model_path=str(corner_finder(tmp_path / "finder.onnx")), top_k=2)
    return Service.start(settings)


def test_a_photo_is_answered_and_its_statistics_recorded_after(service: Service) -> None:
    half = slice(0, 32), slice(32, 64)  # rows 0-31, columns 32-63: the top-right quarter
    upload = open_upload(photo(half), service.limits, service.model_side)
    said, record = answer_photo(service, upload)
    assert said["prediction"] == "top-right" and len(said["top_k"]) == 2  # settings.top_k reaches it
    counted = service.metrics.predictions.labels(name="top-right")
    before = counted._value.get()
    asyncio.run(record())  # what Starlette runs after the answer is sent
    assert counted._value.get() == before + 1


def test_the_limits_come_from_the_settings(tmp_path: Path) -> None:
    settings = ServeSettings(model_path=str(corner_finder(tmp_path / "finder.onnx")), max_upload_mb=0.001)
    service = Service.start(settings)
    assert service.limits.max_bytes == int(0.001 * 2**20) and not service.ready
    with pytest.raises(UploadError) as refused:
        open_upload(photo((slice(0, 32), slice(0, 32)), size=256), service.limits, service.model_side)
    assert refused.value.status_code == 413


def test_record_input_counts_what_the_statistics_file_could_not_take(service: Service) -> None:
    service.recorder.record = lambda row: False  # type: ignore[method-assign]  # a full disk, say
    before = service.metrics.unrecorded._value.get()
    asyncio.run(record_input(service, {"brightness": 0.5, "confidence": 0.9}, "top-left"))
    assert service.metrics.unrecorded._value.get() == before + 1
