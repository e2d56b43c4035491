"""The FastAPI service: ``POST /predict``, ``GET /`` (web page), ``/health``, ``/ready``, ``/metrics``.

Decoding and inference run in worker threads, so the event loop stays free to accept requests and
refuse bad ones quickly; a semaphore lets one photo at a time into ONNX Runtime, which already uses
every core for one photo.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import mushroom
from mushroom.data.preprocessing import resize_and_crop
from mushroom.serving.answer import answer
from mushroom.serving.form import read_photo
from mushroom.serving.metrics import ServiceMetrics
from mushroom.serving.model import OnnxClassifier
from mushroom.serving.stats import image_stats
from mushroom.serving.uploads import UploadError, decode_upload

log = logging.getLogger(__name__)
ROUTES = ("/", "/predict", "/health", "/ready", "/metrics")


@dataclass
class ServeSettings:
    model_path: str
    top_k: int = 3
    max_upload_mb: float = 10.0
    max_megapixels: float = 64.0
    # null = the threshold fitted on validation and stored in the model.
    abstain_threshold: float | None = None
    # Where each answered photo's statistics are appended (JSON lines) for mushroom.drift; null = nowhere.
    stats_path: str | None = None
    threads: int | None = None
    # Photos in ONNX Runtime at once; 1 is fastest on a CPU, where one photo already uses every core.
    concurrent_inferences: int = 1

    @property
    def max_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)


class StatsRecorder:
    """Appends one JSON line per answered photo to a file kept open (line-buffered) while serving."""

    def __init__(self, path: str | None) -> None:
        self.file: TextIO | None = None
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.file = Path(path).open("a", buffering=1, encoding="utf-8")  # noqa: SIM115 - open while serving

    def record(self, row: dict[str, Any]) -> None:
        if self.file is not None:
            when = datetime.now(timezone.utc).isoformat(timespec="seconds")
            self.file.write(json.dumps({"time": when, **row}) + "\n")

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class RequestMetrics:
    """Counts requests by route and status and times them until the last byte of the answer is sent.

    Plain ASGI rather than ``@app.middleware("http")``, which costs a noticeable share of a request here.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = scope["path"] if scope["path"] in ROUTES else "other"
        start = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self.metrics.latency.labels(route=route).observe(time.perf_counter() - start)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            self.metrics.requests.labels(route=route, method=scope["method"], status=str(status)).inc()


def error_response(error: UploadError, metrics: ServiceMetrics) -> JSONResponse:
    metrics.rejected.labels(reason=error.reason).inc()
    return JSONResponse({"error": error.reason, "detail": error.message}, status_code=error.status_code)


def create_app(settings: ServeSettings) -> FastAPI:
    model = OnnxClassifier(settings.model_path, threads=settings.threads)
    info = model.info
    threshold = (
        settings.abstain_threshold if settings.abstain_threshold is not None else info.abstain_threshold
    )
    metrics = ServiceMetrics(info.class_names)
    recorder = StatsRecorder(settings.stats_path)
    page = resources.files("mushroom.serving").joinpath("static/index.html").read_text(encoding="utf-8")
    inference_slots = threading.BoundedSemaphore(max(1, settings.concurrent_inferences))
    state = {"ready": False}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One photo through the model before saying ready: the first run allocates ONNX Runtime's memory.
        size = model.pre.image_size
        await run_in_threadpool(model.predict_batch, np.zeros((1, 3, size, size), np.float32))
        state["ready"] = True
        log.info("Serving %s (%s) with classes %s", settings.model_path, info.architecture, info.class_names)
        yield
        recorder.close()

    app = FastAPI(
        title="mushroom",
        version=mushroom.__version__,
        description="Names the mushroom genus in a photo. Never eat a mushroom because of it.",
        lifespan=lifespan,
    )
    app.add_middleware(RequestMetrics, metrics=metrics)

    def answer_photo(data: bytes) -> tuple[dict[str, Any], BackgroundTask]:
        rgb, size = decode_upload(
            data, settings.max_bytes, int(settings.max_megapixels * 1e6), model.pre.resize_size
        )
        pixels = resize_and_crop(rgb, model.pre)
        with inference_slots:
            start = time.perf_counter()
            probs = model.predict_pixels(pixels)
            metrics.inference.observe(time.perf_counter() - start)
        said = answer(probs, info.class_names, settings.top_k, threshold, info.safety)
        # Here rather than after the answer: 0.1 ms now costs less than competing with the next photo.
        stats = {**image_stats(pixels, size), "confidence": said["confidence"]}
        return said, BackgroundTask(record_input, stats, said["prediction"])

    async def record_input(stats: dict[str, float], prediction: str) -> None:
        """After the answer is sent: statistics for /metrics and for mushroom.drift (quick enough for the
        event loop, so no thread is woken for it)."""
        metrics.observe_input(stats)
        metrics.predictions.labels(name=prediction).inc()
        recorder.record({**stats, "prediction": prediction})

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        """Multipart upload with the photo in the field ``file``: top-k genera, "not sure", safety."""
        try:
            data = await read_photo(request, settings.max_bytes)
            result, record = await run_in_threadpool(answer_photo, data)
        except UploadError as error:
            return error_response(error, metrics)
        return JSONResponse(result, background=record)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        body = {"ready": state["ready"], "classes": info.class_names, "architecture": info.architecture}
        return JSONResponse(body, status_code=200 if state["ready"] else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
