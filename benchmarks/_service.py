"""Shared by the serving benchmarks: 512-px JPEGs from real photos, the service in its own process, and a
lean HTTP client (the standard library's, with a pre-built multipart body, so that the client's own
Python costs as little as possible of the measured time)."""

from __future__ import annotations

import argparse
import http.client
import io
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

from mushroom.core.images import find_images


def arguments(doc: str | None) -> argparse.ArgumentParser:
    """The options both serving benchmarks take: the model, the photos, where to write the figures."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="ONNX file from mushroom.export")
    parser.add_argument("--photos", type=Path, required=True, help="folder of real photos")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    return parser


def report(figures: dict, out: Path | None) -> None:
    """Print the figures, and write them to ``out`` when given."""
    text = json.dumps(figures, indent=2)
    print(text)
    if out:
        out.write_text(text)


def jpegs_512(folder: Path, count: int) -> list[bytes]:
    """``count`` photos spread over ``folder``, resized so that the longer side is 512 px, JPEG quality 90."""
    photos = find_images([folder])
    chosen = photos[:: max(1, len(photos) // count)][:count]
    encoded = []
    for path in chosen:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
        scale = 512 / max(rgb.size)
        rgb = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        rgb.save(buffer, format="JPEG", quality=90)
        encoded.append(buffer.getvalue())
    return encoded


def multipart(photo: bytes) -> tuple[bytes, str]:
    """The body and content type of a ``file`` upload, as a browser's form sends it."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="photo.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    )
    return (
        head.encode() + photo + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


def timed_post(port: int, photo: bytes) -> tuple[int, float]:
    """Status and seconds of one upload on a new connection (its part says image/jpeg: any image/* is)."""
    body, content_type = multipart(photo)
    start = time.perf_counter()
    status = Client(port).post(body, content_type)
    return status, time.perf_counter() - start


class Client:
    """One keep-alive connection; ``post`` returns the status (0 when the connection dropped)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, body: bytes, content_type: str) -> int:
        try:
            self.connection.request("POST", "/predict", body, {"Content-Type": content_type})
            response = self.connection.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            return 0

    def get(self, path: str) -> tuple[int, bytes]:
        self.connection.request("GET", path)
        response = self.connection.getresponse()
        return response.status, response.read()


@contextmanager
def service(model: Path, workdir: Path, *overrides: str) -> Iterator[int]:
    """``python -m mushroom.serve`` on a free loopback port; yields the port once /ready says so."""
    with service_process(model, workdir, *overrides) as (port, _):
        yield port


@contextmanager
def service_process(model: Path, workdir: Path, *overrides: str) -> Iterator[tuple[int, int]]:
    """:func:`service`, yielding the port and the server's process id (for its memory, in /proc)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    command = [
        sys.executable, "-m", "mushroom.serve", f"model_path={model}", f"port={port}", "log_level=warning",
        f"hydra.run.dir={workdir / 'hydra'}", f"stats_path={workdir / 'input_stats.jsonl'}", *overrides,
    ]  # fmt: skip
    log_path = workdir / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            try:
                if Client(port).get("/ready")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"service not ready; see {log_path}")
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)
