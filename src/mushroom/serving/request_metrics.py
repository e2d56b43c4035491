"""Requests counted by route, method and status, and timed until their last byte is sent (``/metrics``)."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mushroom.serving.metrics import ServiceMetrics

ROUTES = ("/", "/predict", "/health", "/ready", "/metrics", "/docs", "/openapi.json")

# The methods /metrics labels by name; anything else a client sends is counted as "other", so that
# nobody can create a new time series per request.
METHODS = ("GET", "POST", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE")


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
