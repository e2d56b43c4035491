"""The FastAPI service over real HTTP (uvicorn in its own process, PyTorch unimportable there).

Every bad upload gets its own 4xx with a message, and the next good photo is still answered.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_image_folder, plain_png, running_server

pytestmark = pytest.mark.slow  # end to end: the service in its own process, over HTTP


@pytest.fixture(scope="module")
def server(exported_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("serve")
    with running_server(exported_model, workdir, "abstain_threshold=0.5") as url:
        yield url, workdir


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    folder = make_image_folder(
        tmp_path_factory.mktemp("upload"), classes=("Amanita",), per_class=1, size=(96, 80)
    )
    return (folder / "Amanita" / "amanita_000.jpg").read_bytes()


def post(url: str, data: bytes, content_type: str = "image/jpeg", name: str = "photo.jpg") -> httpx.Response:
    return httpx.post(f"{url}/predict", files={"file": (name, data, content_type)}, timeout=30)


def bomb_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A real, valid 1-bit PNG of ``width`` x ``height`` black pixels: a few tens of KB on disk."""
    return plain_png(width, height, bit_depth=1)


def test_predict_answers_with_top_k_safety_and_warning(server: tuple[str, Path], photo: bytes) -> None:
    url, _ = server
    response = post(url, photo)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["top_k"][0]["name"] == body["prediction"] == "Amanita"
    assert len(body["top_k"]) == 3
    assert sum(row["probability"] for row in body["top_k"]) == pytest.approx(1.0, abs=1e-4)
    assert body["abstain_threshold"] == 0.5 and body["confidence"] >= 0.5 and body["not_sure"] is False
    assert "death cap" in body["note"] and "Never eat" in body["warning"]
    assert body["dangerous"][0]["name"] == "Amanita" and body["dangerous"][0]["deadly"] is True


def test_png_and_exif_rotated_photos_are_answered(server: tuple[str, Path], photo: bytes) -> None:
    from PIL import Image

    url, _ = server
    image = Image.open(io.BytesIO(photo))
    png = io.BytesIO()
    image.convert("RGBA").save(png, format="PNG")
    assert post(url, png.getvalue(), "image/png", "photo.png").json()["prediction"] == "Amanita"
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to show": how phones store portrait photos
    image.transpose(Image.Transpose.ROTATE_90).save(rotated, format="JPEG", exif=exif)
    assert post(url, rotated.getvalue()).json()["prediction"] == "Amanita"


def test_without_a_threshold_the_one_stored_in_the_model_decides(
    exported_model: Path, tmp_path: Path
) -> None:
    from mushroom.core.onnx_model import OnnxClassifier

    info = OnnxClassifier(exported_model).info
    stored, known_at = info.abstain_threshold, info.open_set_threshold
    assert stored is not None and 0.0 < stored < 1.0 and known_at is not None
    photos = make_image_folder(tmp_path / "photos", per_class=6, size=(48, 48), seed=5, look_alikes=0.5)
    with running_server(exported_model, tmp_path) as url:
        bodies = [post(url, path.read_bytes()).json() for path in sorted(photos.rglob("*.jpg"))]
    assert [b["abstain_threshold"] for b in bodies] == pytest.approx([stored] * len(bodies))
    assert [b["open_set_threshold"] for b in bodies] == pytest.approx([known_at] * len(bodies))
    # The open-set check first (this model has no negatives: "not a genus I know"), then "not sure".
    known = [b["known_score"] >= known_at for b in bodies]
    assert [b["prediction"] == "not a genus I know" for b in bodies] == [not k for k in known]
    assert [b["not_sure"] for b in bodies] == [
        b["confidence"] < stored and k for b, k in zip(bodies, known, strict=True)
    ]
    assert 0 < sum(b["not_sure"] for b in bodies) < len(bodies)  # the photos fall on both sides
    assert all((b["prediction"] == "not sure") == b["not_sure"] for b in bodies)


END = b"\xff\xd9"  # the JPEG end-of-image marker
BAD_UPLOADS = {
    "not an image": (lambda photo: b"just some text, not pixels" * 10, "image/jpeg", 415, "not_an_image"),
    "truncated": (lambda photo: photo[: len(photo) // 2], "image/jpeg", 400, "corrupt"),
    "truncated + end marker": (lambda photo: photo[: len(photo) // 2] + END, "image/jpeg", 400, "corrupt"),
    "zero bytes": (lambda photo: b"", "image/jpeg", 400, "empty"),
    "over 10 MB": (lambda photo: photo + bytes(10 * 2**20), "image/jpeg", 413, "too_large"),
    "far over 10 MB": (lambda photo: bytes(30 * 2**20), "image/jpeg", 413, "too_large"),
    "decompression bomb": (lambda photo: bomb_png(), "image/png", 413, "too_many_pixels"),
    "text content type": (lambda photo: photo, "text/plain", 415, "wrong_content_type"),
    "HEIC": (lambda photo: b"\x00\x00\x00\x18ftypheic" + bytes(64), "image/heic", 415, "not_an_image"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_upload_gets_a_4xx_that_says_why_and_the_server_keeps_serving(
    server: tuple[str, Path], photo: bytes, case: str
) -> None:
    url, _ = server
    make, content_type, status, reason = BAD_UPLOADS[case]
    data = make(photo)
    response = post(url, data, content_type)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == reason and len(body["detail"]) > 20
    # Words for the person, none from the libraries that read the file (they tell a prober what it reached)
    assert not [word for word in ("Error", "PIL", "simplejpeg", "multipart.") if word in body["detail"]], body
    if reason == "corrupt":  # not the decoder's "image file is truncated (48 bytes not processed)"
        assert "truncated or corrupt. Send the photo again" in body["detail"], body
    if case == "decompression bomb":
        assert len(data) < 100_000 and "400 MP; the limit is 64 megapixels" in body["detail"]
    if case == "HEIC":
        assert "HEIC" in body["detail"]
    assert post(url, photo).status_code == 200  # the next good photo is still answered


def test_requests_that_are_not_a_multipart_upload_are_refused(server: tuple[str, Path], photo: bytes) -> None:
    url, _ = server
    as_json = httpx.post(f"{url}/predict", json={"image": "photo.jpg"}, timeout=30)
    assert as_json.status_code == 415 and "multipart/form-data" in as_json.json()["detail"]
    raw = httpx.post(f"{url}/predict", content=photo, headers={"content-type": "image/jpeg"}, timeout=30)
    assert raw.status_code == 415
    wrong_field = httpx.post(f"{url}/predict", files={"image": ("p.jpg", photo, "image/jpeg")}, timeout=30)
    assert wrong_field.status_code == 400 and wrong_field.json()["error"] == "unexpected_field"
    assert "'image'" in wrong_field.json()["detail"] and "file=@photo.jpg" in wrong_field.json()["detail"]
    assert post(url, photo).status_code == 200


BOUNDARY = "b0und4ry"
FORM = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def part_head(field: str, filename: str | None) -> bytes:
    disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
    return f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()


def multipart_body(*parts: tuple[str, str | None, bytes]) -> bytes:
    """A form with ``(field, filename, data)`` parts, built by hand so that it can be malformed."""
    body = b"".join(part_head(field, filename) + data + b"\r\n" for field, filename, data in parts)
    return body + f"--{BOUNDARY}--\r\n".encode()


def test_malformed_forms_get_a_400_that_says_why(server: tuple[str, Path], photo: bytes) -> None:
    url, _ = server
    complete = multipart_body(("file", "photo.jpg", photo))
    cases = {
        "two photos": (multipart_body(("file", "a.jpg", photo), ("file", "b.jpg", photo)), "bad_form"),
        "cut off inside the photo": (complete[: len(complete) // 2], "bad_form"),
        "a text field, not a file": (multipart_body(("file", None, b"photo.jpg")), "missing_file"),
    }
    for case, (body, reason) in cases.items():
        response = httpx.post(f"{url}/predict", content=body, headers=FORM, timeout=30)
        assert response.status_code == 400 and response.json()["error"] == reason, case
    no_boundary = httpx.post(
        f"{url}/predict", content=complete, headers={"content-type": "multipart/form-data"}, timeout=30
    )
    assert no_boundary.status_code == 400 and "boundary" in no_boundary.json()["detail"]
    answered = httpx.post(f"{url}/predict", content=complete, headers=FORM, timeout=30)
    assert answered.status_code == 200 and answered.json()["prediction"] == "Amanita"


def test_oversized_upload_without_content_length_is_refused_as_it_streams(
    server: tuple[str, Path], photo: bytes
) -> None:
    """A chunked upload has no Content-Length to check first: the limit applies while the body arrives."""
    url, _ = server
    sent = 0

    def endless_photo() -> Iterator[bytes]:
        nonlocal sent
        yield part_head("file", "photo.jpg") + photo  # and the part never ends
        while sent < 60 * 2**20:
            sent += 2**20
            yield bytes(2**20)

    response = httpx.post(f"{url}/predict", content=endless_photo(), headers=FORM, timeout=60)
    assert response.status_code == 413 and response.json()["error"] == "too_large"
    assert post(url, photo).status_code == 200


def test_body_reading_stops_at_the_limit() -> None:
    """However long the body goes on, at most four times the limit is read before the 413."""
    import asyncio

    from starlette.requests import Request

    from mushroom.serving.form import read_photo
    from mushroom.serving.uploads import UploadError

    chunks_read = 0

    async def receive() -> dict:
        nonlocal chunks_read
        chunks_read += 1
        body = part_head("file", "photo.jpg") if chunks_read == 1 else bytes(2**16)
        return {"type": "http.request", "body": body, "more_body": True}

    headers = [(b"content-type", FORM["content-type"].encode())]
    request = Request({"type": "http", "method": "POST", "headers": headers}, receive)
    with pytest.raises(UploadError) as refused:
        asyncio.run(read_photo(request, max_bytes=2**20))
    assert refused.value.status_code == 413
    assert (2**20 + 2**20) / 2**16 < chunks_read <= (2**20 + 2**20 + 4 * 2**20) / 2**16 + 2


def test_health_ready_and_web_page(server: tuple[str, Path]) -> None:
    url, _ = server
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{url}/ready").json()
    assert ready["ready"] is True and ready["classes"] == ["Amanita", "Boletus", "Lactarius"]
    page = httpx.get(f"{url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="warning"' in page.text and 'capture="environment"' in page.text


def metric(text: str, metric_name: str, **labels: str) -> float:
    """One sample of the Prometheus text format (the client writes labels in sorted order)."""
    selector = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    series = re.escape(metric_name) + (re.escape("{" + selector + "}") if labels else "")
    found = re.findall(rf"^{series} (\S+)$", text, flags=re.MULTILINE)
    assert found, f"{metric_name} {labels} not in /metrics"
    return float(found[0])


def test_metrics_count_requests_classes_rejections_and_inputs(server: tuple[str, Path], photo: bytes) -> None:
    url, workdir = server
    before = httpx.get(f"{url}/metrics").text
    answered = metric(before, "mushroom_predictions_total", name="Amanita")
    for _ in range(3):
        assert post(url, photo).status_code == 200
    assert post(url, b"").status_code == 400
    deadline = time.monotonic() + 10  # input statistics are recorded just after each answer is sent
    while True:
        after = httpx.get(f"{url}/metrics").text
        if (
            metric(after, "mushroom_predictions_total", name="Amanita") >= answered + 3
            or time.monotonic() > deadline
        ):
            break
        time.sleep(0.05)
    assert metric(after, "mushroom_predictions_total", name="Amanita") == answered + 3
    # Every class and "not sure" is listed from the start, and these confident photos added no "not sure".
    assert metric(after, "mushroom_predictions_total", name="not sure") == metric(
        before, "mushroom_predictions_total", name="not sure"
    )
    assert metric(before, "mushroom_predictions_total", name="Lactarius") == metric(
        after, "mushroom_predictions_total", name="Lactarius"
    )
    assert metric(after, "mushroom_rejected_uploads_total", reason="empty") >= 1
    assert metric(after, "mushroom_http_requests_total", method="POST", route="/predict", status="200") >= 3
    assert metric(after, "mushroom_http_request_duration_seconds_count", route="/predict") >= 4
    photos_seen = metric(after, "mushroom_input_brightness_count")
    assert photos_seen >= 3
    assert metric(after, "mushroom_input_width_sum") >= 96 * 3
    assert metric(after, "mushroom_input_confidence_count") == photos_seen

    rows = [json.loads(line) for line in (workdir / "stats.jsonl").read_text().splitlines()]
    assert len(rows) == photos_seen  # one line per answered photo, for mushroom.drift
    assert {"brightness", "contrast", "saturation", "width", "height", "confidence", "prediction"} <= set(
        rows[-1]
    )
    assert rows[-1]["width"] == 96 and rows[-1]["height"] == 80


def test_missing_or_foreign_model_stops_the_server_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with (
        pytest.raises(RuntimeError, match="not a readable ONNX model"),
        running_server(tmp_path / "junk.onnx", tmp_path),
    ):
        pass


@pytest.mark.usefixtures("hydra_init")
def test_the_service_log_is_bounded_and_rotated(tmp_path: Path) -> None:
    """1,000 bad requests once wrote 9.8 MB of log to one file that grew for ever."""
    import logging.config
    import logging.handlers

    from omegaconf import OmegaConf

    from tests.conftest import compose_config

    cfg = compose_config("serve", ["model_path=m.onnx"], tmp_path)
    config = OmegaConf.to_container(cfg.hydra.job_logging, resolve=True)
    config["handlers"]["file"]["filename"] = str(tmp_path / "serve.log")
    root = logging.getLogger()
    kept, level = root.handlers[:], root.level
    logging.config.dictConfig(config)  # as Hydra sets up the service's logging
    try:
        handler = next(h for h in root.handlers if isinstance(h, logging.FileHandler))
        assert isinstance(handler, logging.handlers.RotatingFileHandler)
        assert (handler.maxBytes, handler.backupCount) == (10 * 2**20, 3)
    finally:
        for added in root.handlers[:]:
            root.removeHandler(added)
            added.close()
        for handler in kept:
            root.addHandler(handler)
        root.setLevel(level)


def test_the_open_file_limit_is_raised_for_the_connections_allowed() -> None:
    import resource
    import subprocess
    import sys

    # In a child process: the limit is the process's own, and this test must not change the suite's.
    code = (
        "import resource\n"
        "from mushroom.serve import raise_open_file_limit\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "print(raise_open_file_limit(2064), resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    expected = 2064 if hard == resource.RLIM_INFINITY else min(2064, hard)
    assert done.stdout.split() == [str(expected), str(expected)]
