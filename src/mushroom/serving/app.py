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
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.background import BackgroundTask

import mushroom
from mushroom.core import answer as answer_module
from mushroom.core.answer import answer, chosen_threshold
from mushroom.core.onnx_model import OnnxClassifier
from mushroom.core.preprocessing import resize_and_crop
from mushroom.core.stats import image_stats
from mushroom.schemas import ServeSettings
from mushroom.serving.budget import Budget, give_back_free_memory
from mushroom.serving.form import read_photo
from mushroom.serving.metrics import ServiceMetrics
from mushroom.serving.openapi import (
    METRICS_RESPONSE,
    PREDICT_BODY,
    PREDICT_ERRORS,
    Health,
    Readiness,
)
from mushroom.serving.page_policy import SecurityHeaders, docs_page, page_policy
from mushroom.serving.protocol import SECURITY_HEADERS
from mushroom.serving.recorder import StatsRecorder
from mushroom.serving.request_metrics import RequestMetrics
from mushroom.serving.uploads import OpenedUpload, UploadError, UploadLimits, decode_checked, open_upload

log = logging.getLogger(__name__)
LARGE_DECODE_PIXELS = 8_000_000  # past this, the memory a decode freed is given back to the system


def error_response(error: UploadError, metrics: ServiceMetrics) -> JSONResponse:
    metrics.rejected.labels(reason=error.reason).inc()
    headers = {"Retry-After": "5"} if error.status_code == 503 else None
    if error.status_code in (408, 413):
        headers = {"Connection": "close"}  # the rest of the body is not read: the connection cannot be reused
    return JSONResponse(
        {"error": error.reason, "detail": error.message}, status_code=error.status_code, headers=headers
    )


@dataclass
class Service:
    """What the handlers share: the model and its thresholds, the limits and budgets that bound what
    requests cost, the worker threads, the metrics and the statistics file. One per app
    (``app.state.service``)."""

    settings: ServeSettings
    model: OnnxClassifier
    threshold: float | None
    open_set_threshold: float | None
    metrics: ServiceMetrics
    recorder: StatsRecorder
    page: str
    limits: UploadLimits
    decoding: Budget
    uploads: Budget
    inference_slots: threading.BoundedSemaphore
    # Decoding and inference leave the event loop for these threads (rather than Starlette's shared pool,
    # whose limiter and task group cost a few tenths of a millisecond per photo); the pixel budget, not
    # the thread count, bounds how much decoding runs at once.
    workers: ThreadPoolExecutor
    ready: bool = False

    @classmethod
    def start(cls, settings: ServeSettings) -> Service:
        model = OnnxClassifier(settings.model_path, threads=settings.threads)  # checks and warms the model
        info = model.info
        return cls(
            settings=settings,
            model=model,
            threshold=chosen_threshold(settings.abstain_threshold, info.abstain_threshold),
            open_set_threshold=info.open_set_threshold if settings.open_set else None,
            metrics=ServiceMetrics(info.class_names),
            recorder=StatsRecorder(settings.stats_path, settings.stats_max_mb),
            page=resources.files("mushroom.serving")
            .joinpath("static/index.html")
            .read_text(encoding="utf-8"),
            limits=UploadLimits(
                int(settings.max_upload_mb * 2**20),
                int(settings.max_megapixels * 1e6),
                settings.max_aspect_ratio,
            ),
            decoding=Budget(
                settings.decode_megapixels * 1e6, settings.queue_timeout_s, "decoding other photos"
            ),
            uploads=Budget(settings.uploads_in_memory_mb * 2**20, 0.0, "receiving other uploads"),
            inference_slots=threading.BoundedSemaphore(max(1, settings.concurrent_inferences)),
            workers=ThreadPoolExecutor((os.cpu_count() or 1) + 4, thread_name_prefix="photo"),
        )

    @property
    def model_side(self) -> int:
        return self.model.pre.resize_size


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def answer_photo(service: Service, upload: OpenedUpload) -> tuple[dict[str, Any], BackgroundTask]:
    """Decode, crop and answer one checked upload (in a worker thread); the input statistics are recorded
    after the answer is sent."""
    model, info = service.model, service.model.info
    rgb = decode_checked(upload, service.model_side)
    pixels = resize_and_crop(rgb, model.pre)
    del rgb  # the full-size pixels are not needed past here; free them before inference
    if upload.decode_pixels > LARGE_DECODE_PIXELS:
        give_back_free_memory()
    with service.inference_slots:
        start = time.perf_counter()
        probs, open_set = model.predict_pixels(pixels)
        service.metrics.inference.observe(time.perf_counter() - start)
    said = answer(
        probs,
        info.class_names,
        service.settings.top_k,
        service.threshold,
        info.safety,
        open_set,
        service.open_set_threshold,
        info.deadly_risk,
    )
    # Here rather than after the answer: 0.1 ms now costs less than competing with the next photo.
    stats = {**image_stats(pixels, upload.size), "confidence": said["confidence"]}
    return said, BackgroundTask(record_input, service, stats, said["prediction"])


async def record_input(service: Service, stats: dict[str, float], prediction: str) -> None:
    """After the answer is sent: statistics for /metrics and for mushroom.drift (quick enough for the
    event loop, so no thread is woken for it)."""
    service.metrics.observe_input(stats)
    service.metrics.predictions.labels(name=prediction).inc()
    if not service.recorder.record({**stats, "prediction": prediction}):
        service.metrics.unrecorded.inc()


async def internal_error(request: Request, error: Exception) -> JSONResponse:
    """A bug, not the user's fault: still the documented JSON, so clients and the page can show it, and
    nothing of the code's inside (exception names, library text) for a prober to read."""
    log.exception("Internal error answering %s %s", request.method, request.url.path)
    body = {"error": "internal", "detail": "The service failed to answer; please try again or report it."}
    # Answered outside the middlewares (by Starlette's outermost one): the headers are added here.
    headers = {name.decode(): value.decode() for name, value in SECURITY_HEADERS}
    return JSONResponse(body, status_code=500, headers=headers)


routes = APIRouter()


async def predict(request: Request) -> JSONResponse:
    """Multipart upload with the photo in the field ``file``: top-k genera, "not sure", "not a mushroom",
    "not a genus I know", safety."""
    service = service_of(request)
    limits, side = service.limits, service.model_side
    try:
        data = await read_photo(request, limits.max_bytes, service.settings.upload_timeout_s, service.uploads)
        loop = asyncio.get_running_loop()
        # The header only, but off the event loop all the same: nothing an upload holds can stall it.
        upload = await loop.run_in_executor(service.workers, open_upload, data, limits, side)
        async with service.decoding.hold(upload.decode_pixels):
            if await request.is_disconnected():  # it waited for room, and its client has gone
                upload.image.close()
                service.metrics.rejected.labels(reason="client_gone").inc()
                return JSONResponse({"error": "client_gone", "detail": "Not decoded."}, status_code=499)
            result, record = await loop.run_in_executor(service.workers, answer_photo, service, upload)
    except UploadError as error:
        return error_response(error, service.metrics)
    return JSONResponse(result, background=record)


@routes.get("/", response_class=HTMLResponse)
async def index(request: Request) -> HTMLResponse:
    return HTMLResponse(service_of(request).page)


async def docs_ui() -> HTMLResponse:
    return HTMLResponse(docs_page())


@routes.get("/health", response_model=Health)
async def health() -> dict[str, str]:
    return {"status": "ok"}


@routes.get(
    "/ready", response_model=Readiness, responses={503: {"model": Readiness, "description": "Starting"}}
)
async def ready(request: Request) -> JSONResponse:
    service = service_of(request)
    info = service.model.info
    body = {"ready": service.ready, "classes": info.class_names, "architecture": info.architecture}
    return JSONResponse(body, status_code=200 if service.ready else 503)


@routes.get("/metrics", response_class=Response, responses=METRICS_RESPONSE)  # type: ignore[arg-type]
async def prometheus(request: Request) -> Response:
    return Response(generate_latest(service_of(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)


def create_app(settings: ServeSettings) -> FastAPI:
    """The service for ``settings``: the model loaded and warmed, the routes above over its state."""
    service = Service.start(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.ready = True
        info = service.model.info
        log.info("Serving %s (%s) with classes %s", settings.model_path, info.architecture, info.class_names)
        yield
        service.workers.shutdown(wait=False, cancel_futures=True)
        service.recorder.close()

    # FastAPI's own /docs and /redoc load unpinned CDN files without integrity checks: /docs is ours.
    docs = {"docs_url": None, "redoc_url": None, **({} if settings.api_docs else {"openapi_url": None})}
    app = FastAPI(
        title="mushroom",
        version=mushroom.__version__,
        description="Names the mushroom genus in a photo. Never eat a mushroom because of it.",
        lifespan=lifespan,
        **docs,  # type: ignore[arg-type]
    )
    app.state.service = service
    app.add_middleware(SecurityHeaders, page_policy=page_policy(service.page))
    app.add_middleware(RequestMetrics, metrics=service.metrics)
    app.add_exception_handler(Exception, internal_error)
    app.add_api_route(
        "/predict",
        predict,
        methods=["POST"],
        response_model=answer_module.Answer,  # read when the app is made: the answer's one description
        responses=PREDICT_ERRORS,
        openapi_extra={"requestBody": PREDICT_BODY},
    )
    app.include_router(routes)
    if settings.api_docs:
        app.add_api_route("/docs", docs_ui, methods=["GET"], include_in_schema=False)
    return app
