"""The FastAPI service: ``POST /predict``, ``GET /`` (web page), ``/health``, ``/ready``, ``/metrics``.

Hostile input is bounded before it costs anything: uploads by size, arrival time and the bytes all
uploads hold together; images by header (pixels, shape) before decoding, and decoding by the pixels
all requests hold at once, so that a few large images cannot take the memory or make a good photo wait.
Decoding and inference run in worker threads, so the event loop stays free to accept requests and
refuse bad ones quickly; a semaphore lets one photo at a time into ONNX Runtime, which already uses
every core for one photo.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import threading
import time
from base64 import b64encode
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.background import BackgroundTask
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import mushroom
from mushroom.core import answer as answer_module
from mushroom.core.answer import answer, chosen_threshold
from mushroom.core.model import OnnxClassifier
from mushroom.core.preprocessing import resize_and_crop
from mushroom.core.stats import image_stats
from mushroom.schemas import ServeSettings
from mushroom.serving.budget import Budget, give_back_free_memory
from mushroom.serving.form import read_photo
from mushroom.serving.metrics import ServiceMetrics
from mushroom.serving.protocol import NO_SNIFFING_OR_FRAMING, SECURITY_HEADERS
from mushroom.serving.recorder import StatsRecorder
from mushroom.serving.schema import (
    METRICS_RESPONSE,
    PREDICT_BODY,
    PREDICT_ERRORS,
    Health,
    Readiness,
)
from mushroom.serving.uploads import OpenedUpload, UploadError, UploadLimits, decode_checked, open_upload

log = logging.getLogger(__name__)
ROUTES = ("/", "/predict", "/health", "/ready", "/metrics", "/docs", "/openapi.json")
# The methods /metrics labels by name; anything else a client sends is counted as "other", so that
# nobody can create a new time series per request.
METHODS = ("GET", "POST", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE")
DOC_ROUTES = ("/docs",)
#: Swagger UI for /docs: one exact version from the CDN, each file checked by the browser against its hash
#: (Subresource Integrity; computed from the npm package swagger-ui-dist, which jsDelivr serves unchanged).
SWAGGER_UI = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.35.0"
SWAGGER_UI_FILES = {
    "swagger-ui-bundle.js": "sha384-gjRm0bEPMeTmMh5jT2cHccIwCUZSTd8YC+j0d0sXw0MdGEfScduGpSyF3ZSSLkX9",
    "swagger-ui.css": "sha384-WlYgdmXYOOBWL5apwjDEZwN+U3HmXSSu5R6V5aGxEcf7z+KuRNwBhoxKVN1i3D5I",
}
DOCS_SCRIPT = "SwaggerUIBundle({url: '/openapi.json', dom_id: '#swagger-ui'});"
LARGE_DECODE_PIXELS = 8_000_000  # past this, the memory a decode freed is given back to the system


class RequestMetrics:
    """Counts requests by route, method and status and times them until the last byte is sent.

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
        method = scope["method"] if scope["method"] in METHODS else "other"
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
            self.metrics.requests.labels(route=route, method=method, status=str(status)).inc()


class SecurityHeaders:
    """Headers that keep a browser from sniffing, framing or running anything the page did not ship.

    The web page may run only its own inline script and style (allowed by hash); API answers allow
    nothing at all; ``/docs`` may load only the two Swagger UI files it names, checked by their hashes.
    """

    def __init__(self, app: ASGIApp, page_policy: str) -> None:
        self.app = app
        policy = b"content-security-policy"
        self.page = [*NO_SNIFFING_OR_FRAMING, (policy, page_policy.encode())]
        self.api = SECURITY_HEADERS
        self.docs = [*NO_SNIFFING_OR_FRAMING, (policy, docs_policy().encode())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        extra = self.page if path == "/" else self.docs if path in DOC_ROUTES else self.api

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def page_policy(page: str) -> str:
    """The web page's Content-Security-Policy: its inline script and style by SHA-256, photo previews
    from ``blob:``, requests only to this service."""

    def hashes(tag: str) -> str:
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.DOTALL)
        return " ".join(f"'sha256-{b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in blocks)

    return (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; img-src blob:; "
        "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    )


def docs_page() -> str:
    """``/docs``: Swagger UI on the service's OpenAPI document, its files pinned and checked (SRI)."""
    css, js = "swagger-ui.css", "swagger-ui-bundle.js"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>mushroom API</title>'
        f'<link rel="stylesheet" href="{SWAGGER_UI}/{css}" integrity="{SWAGGER_UI_FILES[css]}" '
        'crossorigin="anonymous"></head><body><div id="swagger-ui"></div>'
        f'<script src="{SWAGGER_UI}/{js}" integrity="{SWAGGER_UI_FILES[js]}" '
        'crossorigin="anonymous"></script>'
        f"<script>{DOCS_SCRIPT}</script></body></html>"
    )


def docs_policy() -> str:
    """The /docs page may run the pinned Swagger UI and its own one-line start script, nothing else."""
    start = b64encode(hashlib.sha256(DOCS_SCRIPT.encode()).digest()).decode()
    return (
        f"default-src 'none'; script-src {SWAGGER_UI}/swagger-ui-bundle.js 'sha256-{start}'; "
        f"style-src {SWAGGER_UI}/swagger-ui.css 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    )


def error_response(error: UploadError, metrics: ServiceMetrics) -> JSONResponse:
    metrics.rejected.labels(reason=error.reason).inc()
    headers = {"Retry-After": "5"} if error.status_code == 503 else None
    if error.status_code in (408, 413):
        headers = {"Connection": "close"}  # the rest of the body is not read: the connection cannot be reused
    return JSONResponse(
        {"error": error.reason, "detail": error.message}, status_code=error.status_code, headers=headers
    )


def create_app(settings: ServeSettings) -> FastAPI:
    model = OnnxClassifier(settings.model_path, threads=settings.threads)  # checks and warms the model
    info = model.info
    threshold = chosen_threshold(settings.abstain_threshold, info.abstain_threshold)
    open_set_threshold = info.open_set_threshold if settings.open_set else None
    metrics = ServiceMetrics(info.class_names)
    recorder = StatsRecorder(settings.stats_path, settings.stats_max_mb)
    page = resources.files("mushroom.serving").joinpath("static/index.html").read_text(encoding="utf-8")
    inference_slots = threading.BoundedSemaphore(max(1, settings.concurrent_inferences))
    limits = UploadLimits(
        int(settings.max_upload_mb * 2**20), int(settings.max_megapixels * 1e6), settings.max_aspect_ratio
    )
    model_side = model.pre.resize_size
    decoding = Budget(settings.decode_megapixels * 1e6, settings.queue_timeout_s, "decoding other photos")
    uploads = Budget(settings.uploads_in_memory_mb * 2**20, 0.0, "receiving other uploads")
    # Decoding and inference leave the event loop for these threads (rather than Starlette's shared pool,
    # whose limiter and task group cost a few tenths of a millisecond per photo); the pixel budget, not
    # the thread count, bounds how much decoding runs at once.
    workers = ThreadPoolExecutor(max_workers=(os.cpu_count() or 1) + 4, thread_name_prefix="photo")
    state = {"ready": False}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["ready"] = True
        log.info("Serving %s (%s) with classes %s", settings.model_path, info.architecture, info.class_names)
        yield
        workers.shutdown(wait=False, cancel_futures=True)
        recorder.close()

    # FastAPI's own /docs and /redoc load unpinned CDN files without integrity checks: /docs is ours.
    docs = {"docs_url": None, "redoc_url": None, **({} if settings.api_docs else {"openapi_url": None})}
    app = FastAPI(
        title="mushroom",
        version=mushroom.__version__,
        description="Names the mushroom genus in a photo. Never eat a mushroom because of it.",
        lifespan=lifespan,
        **docs,  # type: ignore[arg-type]
    )
    app.add_middleware(SecurityHeaders, page_policy=page_policy(page))
    app.add_middleware(RequestMetrics, metrics=metrics)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        """A bug, not the user's fault: still the documented JSON, so clients and the page can show it, and
        nothing of the code's inside (exception names, library text) for a prober to read."""
        log.exception("Internal error answering %s %s", request.method, request.url.path)
        body = {"error": "internal", "detail": "The service failed to answer; please try again or report it."}
        # Answered outside the middlewares (by Starlette's outermost one): the headers are added here.
        headers = {name.decode(): value.decode() for name, value in SECURITY_HEADERS}
        return JSONResponse(body, status_code=500, headers=headers)

    def answer_photo(upload: OpenedUpload) -> tuple[dict[str, Any], BackgroundTask]:
        rgb = decode_checked(upload, model_side)
        pixels = resize_and_crop(rgb, model.pre)
        del rgb  # the full-size pixels are not needed past here; free them before inference
        if upload.decode_pixels > LARGE_DECODE_PIXELS:
            give_back_free_memory()
        with inference_slots:
            start = time.perf_counter()
            probs, open_set = model.predict_pixels(pixels)
            metrics.inference.observe(time.perf_counter() - start)
        said = answer(
            probs, info.class_names, settings.top_k, threshold, info.safety, open_set, open_set_threshold
        )
        # Here rather than after the answer: 0.1 ms now costs less than competing with the next photo.
        stats = {**image_stats(pixels, upload.size), "confidence": said["confidence"]}
        return said, BackgroundTask(record_input, stats, said["prediction"])

    async def record_input(stats: dict[str, float], prediction: str) -> None:
        """After the answer is sent: statistics for /metrics and for mushroom.drift (quick enough for the
        event loop, so no thread is woken for it)."""
        metrics.observe_input(stats)
        metrics.predictions.labels(name=prediction).inc()
        if not recorder.record({**stats, "prediction": prediction}):
            metrics.unrecorded.inc()

    @app.post(
        "/predict",
        response_model=answer_module.Answer,  # read when the app is made: the answer's one description
        responses=PREDICT_ERRORS,
        openapi_extra={"requestBody": PREDICT_BODY},
    )
    async def predict(request: Request) -> JSONResponse:
        """Multipart upload with the photo in the field ``file``: top-k genera, "not sure", "not a mushroom",
        "not a genus I know", safety."""
        try:
            data = await read_photo(request, limits.max_bytes, settings.upload_timeout_s, uploads)
            loop = asyncio.get_running_loop()
            # The header only, but off the event loop all the same: nothing an upload holds can stall it.
            upload = await loop.run_in_executor(workers, open_upload, data, limits, model_side)
            async with decoding.hold(upload.decode_pixels):
                if await request.is_disconnected():  # it waited for room, and its client has gone
                    upload.image.close()
                    metrics.rejected.labels(reason="client_gone").inc()
                    return JSONResponse({"error": "client_gone", "detail": "Not decoded."}, status_code=499)
                result, record = await loop.run_in_executor(workers, answer_photo, upload)
        except UploadError as error:
            return error_response(error, metrics)
        return JSONResponse(result, background=record)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    if settings.api_docs:

        @app.get("/docs", include_in_schema=False)
        async def docs_ui() -> HTMLResponse:
            return HTMLResponse(docs_page())

    @app.get("/health", response_model=Health)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/ready", response_model=Readiness, responses={503: {"model": Readiness, "description": "Starting"}}
    )
    async def ready() -> JSONResponse:
        body = {"ready": state["ready"], "classes": info.class_names, "architecture": info.architecture}
        return JSONResponse(body, status_code=200 if state["ready"] else 503)

    @app.get("/metrics", response_class=Response, responses=METRICS_RESPONSE)  # type: ignore[arg-type]
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
