"""Uploads and requests that are cheap to send and were once expensive to answer, over real HTTP.

Each test sends the hostile request to ``python -m mushroom.serve`` in its own process and then checks
that a good photo is still answered: a 4xx or an answer for the attacker, never a 5xx, a reset or a
stall for everyone else.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import ServerUrl, memory_mb, plain_png, running_server

pytestmark = pytest.mark.slow  # end to end: the service in its own process, over HTTP


@pytest.fixture(scope="module")
def good_photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (180, 40, 40)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(exported_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerUrl]:
    workdir = tmp_path_factory.mktemp("hostile")
    with running_server(exported_model, workdir, "upload_timeout_s=1.5", "uploads_in_memory_mb=24") as url:
        yield url


def post(url: str, data: bytes, content_type: str = "image/jpeg", timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{url}/predict", files={"file": ("photo", data, content_type)}, timeout=timeout)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (head and body may come apart)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


@pytest.mark.parametrize(("width", "height"), [(65535, 1), (1, 20_000), (3000, 200)])
def test_thin_images_are_refused_from_their_header(
    server: ServerUrl, good_photo: bytes, width: int, height: int
) -> None:
    """A 270-byte 65535 x 1 PNG once asked for a 16.9 GB allocation: its short side was scaled up."""
    start = time.perf_counter()
    response = post(server, plain_png(width, height), "image/png")
    assert time.perf_counter() - start < 2.0
    assert response.status_code == 422 and response.json()["error"] == "too_thin"
    assert f"{width} x {height}" in response.json()["detail"]
    assert post(server, good_photo).status_code == 200


def test_large_images_at_once_take_bounded_memory_and_a_good_photo_does_not_wait(
    server: ServerUrl, good_photo: bytes
) -> None:
    """Three 64-megapixel RGBA PNGs (250 KB each, within the limits) once took 3.4 GB together and
    made a good photo wait 18.6 s; their decoding now shares a pixel budget that small photos pass."""
    large = plain_png(8000, 8000, rgba=True)
    assert len(large) < 400_000
    resident_before, _ = memory_mb(server.pid)
    statuses: list[int] = []

    def send_large() -> None:
        statuses.append(post(server, large, "image/png", timeout=120).status_code)

    senders = [threading.Thread(target=send_large) for _ in range(3)]
    for sender in senders:
        sender.start()
    waits = []
    while any(sender.is_alive() for sender in senders):
        start = time.perf_counter()
        assert post(server, good_photo).status_code == 200
        waits.append(time.perf_counter() - start)
        time.sleep(0.05)
    for sender in senders:
        sender.join()
    _, peak = memory_mb(server.pid)
    assert statuses == [200, 200, 200]  # allowed images are answered, one after another
    assert len(waits) >= 3 and max(waits) < 3.0
    assert peak - resident_before < 1024


def test_a_body_shorter_than_its_content_length_times_out(server: ServerUrl, good_photo: bytes) -> None:
    """It used to hang forever, holding its connection and memory."""
    head = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
    with socket.create_connection(("127.0.0.1", int(server.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: 100000\r\n\r\n" + head + good_photo[:100]
        )
        start = time.perf_counter()
        answer = read_until_closed(sock)
    assert time.perf_counter() - start < 5
    assert answer.startswith(b"HTTP/1.1 408") and b"upload_timeout" in answer
    assert post(server, good_photo).status_code == 200


def test_uploads_arriving_together_cannot_hold_unbounded_memory(server: ServerUrl, good_photo: bytes) -> None:
    """Unfinished uploads once held 930 MB; past ``uploads_in_memory_mb`` (24 here) new ones get 503."""
    port = int(server.rsplit(":", 1)[1])
    head = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
    stalled = []
    try:
        for _ in range(2):  # 2 x 9 MB held, below 24 MB
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(
                b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary=x\r\n"
                b"Content-Length: 10000000\r\n\r\n" + head + bytes(9 * 2**20)
            )
            stalled.append(sock)
        time.sleep(0.3)
        third = post(server, good_photo + bytes(8 * 2**20))
        assert third.status_code == 503 and third.json()["error"] == "busy"
        assert third.headers["retry-after"] == "5"
    finally:
        for sock in stalled:
            sock.close()
    time.sleep(0.2)
    assert post(server, good_photo).status_code == 200  # the memory held is given back


def test_a_huge_header_is_refused_before_it_is_parsed(server: ServerUrl, good_photo: bytes) -> None:
    """160 MB of header once made every other request wait 1.7 s (httptools joins the pieces)."""
    port = int(server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        start = time.perf_counter()
        # The server closes the connection while we are still sending: that is the point.
        with contextlib.suppress(OSError):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Padding: " + b"a" * (16 * 2**20))
        answer = sock.recv(65536)
    assert time.perf_counter() - start < 3
    # httptools (ours) or h11 (uvicorn's own limit)
    assert answer.split(b"\r\n")[0] == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert b"x-content-type-options: nosniff" in answer and b'"error": "headers_too_large"' in answer
    assert post(server, good_photo).status_code == 200


def test_a_request_that_is_not_http_gets_json(server: ServerUrl, good_photo: bytes) -> None:
    """uvicorn's own 400 for bytes it cannot parse was plain text without the security headers."""
    port = int(server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GARBAGE \x00\x01 not http\r\n\r\n")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"content-type: application/json" in answer and b"x-content-type-options: nosniff" in answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == "bad_request"
    assert post(server, good_photo).status_code == 200


def secured_json(response: httpx.Response) -> dict:
    """An error answer as the docs promise it: JSON with a message, and the security headers."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    body = response.json()
    assert body["error"] and body["detail"]
    return body


@pytest.fixture(scope="module")
def tight_server(exported_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerUrl]:
    """Small limits, so that a handful of sockets plays the hundreds an attacker would open."""
    workdir = tmp_path_factory.mktemp("tight")
    limits = ("server.max_requests=3", "server.head_timeout_s=1", "upload_timeout_s=3")
    with running_server(exported_model, workdir, *limits) as url:
        yield url


def test_idle_and_trickling_connections_cannot_lock_good_clients_out(
    tight_server: ServerUrl, good_photo: bytes
) -> None:
    """200 connections that sent nothing, or a header byte every few seconds, once got every other client
    a plain-text 503 for as long as they were held: they do not count towards the load limit, and are closed
    when their request head is late (the trickling ones with a JSON 408)."""
    port = int(tight_server.rsplit(":", 1)[1])
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
    trickling = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(5)]
    for sock in trickling:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
    try:
        start = time.perf_counter()
        assert post(tight_server, good_photo, timeout=5).status_code == 200  # 25 sockets, a limit of 3
        assert time.perf_counter() - start < 5
        time.sleep(1.5)
        assert all(sock.recv(1) == b"" for sock in idle)  # closed by the server, with nothing to say
        late = read_until_closed(trickling[0])
        assert late.startswith(b"HTTP/1.1 408") and b'"error": "head_timeout"' in late
        assert b"x-content-type-options: nosniff" in late
    finally:
        for sock in idle + trickling:
            sock.close()


def test_past_the_load_limit_the_answer_is_a_json_503(tight_server: ServerUrl, good_photo: bytes) -> None:
    """Requests being answered count: three uploads held open fill a limit of 3; the fourth gets JSON."""
    port = int(tight_server.rsplit(":", 1)[1])
    head = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        b"Content-Length: 100000\r\n\r\n--b\r\n"
    )
    held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
    try:
        for sock in held:
            sock.sendall(head)
        time.sleep(0.3)
        body = secured_json(busy := post(tight_server, good_photo, timeout=5))
        assert busy.status_code == 503 and body["error"] == "busy" and busy.headers["retry-after"] == "5"
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    assert post(tight_server, good_photo).status_code == 200


def test_an_over_long_boundary_is_a_400_not_a_500(server: ServerUrl, good_photo: bytes) -> None:
    """A boundary past 256 characters gave a 500 and two 60-line tracebacks in the log per request."""
    boundary = "b" * 300
    body = f"--{boundary}\r\nContent-Disposition: form-data; name=file; filename=p.jpg\r\n\r\n".encode()
    body += good_photo + f"\r\n--{boundary}--\r\n".encode()
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    refused = httpx.post(f"{server}/predict", content=body, headers=headers, timeout=10)
    assert refused.status_code == 400 and "boundary" in secured_json(refused)["detail"]
    assert post(server, good_photo).status_code == 200


def test_marker_floods_and_scan_bombs_keep_the_service_answering(
    server: ServerUrl, good_photo: bytes
) -> None:
    """Four JPEGs with a million empty header segments each, and six progressive JPEGs with hundreds of
    scans, sent at once: each gets a 422 while /health answers at once and a good photo too. (Four floods
    of 4 MB stay within this server's 24 MB of uploads held at once; past it an upload gets 503.)"""
    flood = good_photo[:2] + b"\xff\xe1\x00\x02" * 1_000_000 + good_photo[2:]
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (20, 90, 40)).save(buffer, format="JPEG", progressive=True)
    progressive = buffer.getvalue()
    last = progressive.rindex(b"\xff\xda")
    bomb = progressive[:last] + progressive[last:-2] * 300 + b"\xff\xd9"
    answers: list[httpx.Response] = []
    senders = [
        threading.Thread(target=lambda data=data: answers.append(post(server, data, timeout=60)))
        for data in [flood] * 4 + [bomb] * 6
    ]
    for sender in senders:
        sender.start()
    health = []
    while any(sender.is_alive() for sender in senders):
        start = time.perf_counter()
        assert httpx.get(f"{server}/health", timeout=5).status_code == 200
        health.append(time.perf_counter() - start)
        time.sleep(0.05)
    for sender in senders:
        sender.join()
    assert sorted(response.status_code for response in answers) == [422] * 10
    assert {secured_json(response)["error"] for response in answers} == {
        "too_many_segments",
        "too_many_scans",
    }
    assert max(health, default=0) < 0.5
    assert post(server, good_photo).status_code == 200


def test_metrics_do_not_take_a_label_from_the_client(server: ServerUrl) -> None:
    """Each unknown HTTP method once made a new /metrics series."""
    port = int(server.rsplit(":", 1)[1])
    unusual = ["PROPFIND", "PURGE", "MKCOL", "SEARCH", "LINK", "UNLINK", "REPORT", "BIND"]
    for method in unusual:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"{method} /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
            sock.recv(65536)
    text = httpx.get(f"{server}/metrics").text
    methods = {line.split('method="')[1].split('"')[0] for line in text.splitlines() if 'method="' in line}
    assert methods <= {"GET", "POST", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE", "other"}
    assert not methods & set(unusual)


def test_other_image_formats_are_not_decoded(server: ServerUrl, good_photo: bytes) -> None:
    """Phones send JPEG, PNG, WebP (or HEIC): the dozens of other formats Pillow reads are refused."""
    for image_format in ("TGA", "PCX", "SGI", "BMP", "TIFF", "GIF"):
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (10, 120, 30)).save(buffer, format=image_format)
        response = post(server, buffer.getvalue(), "image/x-anything")
        assert response.status_code == 415 and response.json()["error"] == "not_an_image", image_format
    for image_format in ("PNG", "WEBP"):
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (10, 120, 30)).save(buffer, format=image_format)
        assert post(server, buffer.getvalue(), "image/png").status_code == 200, image_format


def test_security_headers(server: ServerUrl) -> None:
    page = httpx.get(f"{server}/")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "script-src 'sha256-" in policy and "unsafe-inline" not in policy
    for response in (page, httpx.get(f"{server}/health"), httpx.post(f"{server}/predict")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
    assert httpx.get(f"{server}/health").headers["content-security-policy"].startswith("default-src 'none'")


def test_an_unwritable_stats_file_costs_no_answer(
    exported_model: Path, tmp_path: Path, good_photo: bytes
) -> None:
    """With ``stats_path=/dev/full`` a third of keep-alive requests were reset, each with a traceback."""
    with (
        running_server(exported_model, tmp_path, "stats_path=/dev/full") as url,
        httpx.Client(timeout=30) as client,
    ):
        statuses = [
            client.post(f"{url}/predict", files={"file": ("a.jpg", good_photo, "image/jpeg")}).status_code
            for _ in range(30)
        ]
        time.sleep(0.3)
        metrics = client.get(f"{url}/metrics").text
    assert statuses == [200] * 30
    assert "mushroom_unrecorded_inputs_total 30.0" in metrics
    log = (tmp_path / "server.log").read_text()
    assert log.count("Cannot record input statistics") == 1 and "Traceback" not in log


def test_a_stats_folder_that_cannot_be_created_does_not_stop_the_service(
    exported_model: Path, tmp_path: Path, good_photo: bytes
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    with running_server(exported_model, tmp_path, f"stats_path={tmp_path / 'a-file' / 'stats.jsonl'}") as url:
        assert post(url, good_photo).status_code == 200
    assert "Cannot record input statistics" in (tmp_path / "server.log").read_text()


def test_an_internal_error_is_answered_in_json_and_the_service_goes_on(
    exported_model: Path, tmp_path: Path, good_photo: bytes
) -> None:
    """A bug once came back as plain text, and the web page said it could not reach the server."""
    fault = (
        "import mushroom.serving.app as app\n"
        "def broken(*args, **kwargs):\n"
        "    raise ZeroDivisionError('planted')\n"
        "app.answer = broken\n"
    )
    with running_server(exported_model, tmp_path, prelude=fault) as url:
        response = post(url, good_photo)
        assert response.status_code == 500
        assert response.json()["error"] == "internal" and "failed" in response.json()["detail"]
        assert "ZeroDivision" not in response.text and "planted" not in response.text  # nothing of the inside
        assert response.headers["x-content-type-options"] == "nosniff"
        assert httpx.get(f"{url}/health").status_code == 200


def with_metadata(model: Path, out: Path, edit: object) -> Path:
    """A copy of ``model`` whose mushroom metadata is replaced by ``edit(metadata dict)`` (or a string)."""
    import onnx

    graph = onnx.load(str(model))
    for prop in graph.metadata_props:
        if prop.key == "mushroom":
            prop.value = edit(json.loads(prop.value)) if callable(edit) else str(edit)
    onnx.save(graph, str(out))
    return out


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("{not json", "metadata is broken"),
        (lambda meta: json.dumps({**meta, "colour": "red"}), "metadata is broken"),
        (lambda meta: json.dumps({**meta, "class_names": meta["class_names"][:2]}), "gives 3 outputs"),
        (lambda meta: json.dumps({**meta, "preprocessing": {"image_size": "big"}}), "metadata is broken"),
    ],
    ids=["invalid JSON", "unknown key", "fewer class names than outputs", "wrong type"],
)
def test_bad_model_metadata_stops_the_service_with_one_clear_line(
    exported_model: Path, tmp_path: Path, edit: object, message: str
) -> None:
    """These once gave a raw traceback, or worse, /ready true and a 500 for every photo."""
    broken = with_metadata(exported_model, tmp_path / "broken.onnx", edit)
    with pytest.raises(RuntimeError, match="exited with 1") as stopped, running_server(broken, tmp_path):
        pass
    assert message in str(stopped.value) and "Traceback" not in str(stopped.value)


def test_a_photo_whose_client_hung_up_while_it_waited_is_not_decoded(
    exported_model: Path, tmp_path: Path, good_photo: bytes
) -> None:
    """Work once went on for uploads whose clients had gone: a queued photo is dropped when its turn
    comes. A 36-MP PNG holds the whole (small) pixel budget while a second one queues behind it and its
    client hangs up; the second is never decoded."""
    with running_server(exported_model, tmp_path, "decode_megapixels=40") as url:
        port = int(url.rsplit(":", 1)[1])
        large = plain_png(6000, 6000, rgba=True)
        first = threading.Thread(target=lambda: post(url, large))
        first.start()
        time.sleep(0.2)
        part = b"--b\r\nContent-Disposition: form-data; name=file; filename=p.png\r\nContent-Type: image/png"
        body = part + b"\r\n\r\n" + large + b"\r\n--b--\r\n"
        head = (
            "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head.encode() + body)
            time.sleep(0.1)
        first.join()
        time.sleep(0.5)
        metrics = httpx.get(f"{url}/metrics").text
        assert 'mushroom_rejected_uploads_total{reason="client_gone"} 1.0' in metrics
        assert "mushroom_inference_duration_seconds_count 1.0" in metrics  # the first photo only
        assert post(url, good_photo).status_code == 200
