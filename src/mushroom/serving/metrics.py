"""Prometheus metrics of one service instance (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram

from mushroom.core.answer import VERDICTS
from mushroom.core.stats import FEATURES

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNIT_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
PIXEL_BUCKETS = (64, 128, 256, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192)


class ServiceMetrics:
    def __init__(self, class_names: Sequence[str]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mushroom_http_requests",
            "HTTP requests by route and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mushroom_http_request_duration_seconds",
            "Time to answer a request",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inference = Histogram(
            "mushroom_inference_duration_seconds",
            "ONNX Runtime time per photo",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "mushroom_predictions",
            "Answers given, by predicted class ('not sure', 'not a mushroom', 'not a genus I know' included)",
            ["name"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "mushroom_rejected_uploads", "Uploads refused, by reason", ["reason"], registry=self.registry
        )
        self.unrecorded = Counter(
            "mushroom_unrecorded_inputs",
            "Answered photos whose statistics could not be written to stats_path",
            registry=self.registry,
        )
        self.inputs = {
            name: Histogram(
                f"mushroom_input_{name}",
                f"Input photos: {description}",
                buckets=PIXEL_BUCKETS if name in ("width", "height") else UNIT_BUCKETS,
                registry=self.registry,
            )
            for name, description in FEATURES.items()
        }
        for name in [*class_names, *VERDICTS]:
            self.predictions.labels(name=name)  # every class shows up, at 0, from the first scrape

    def observe_input(self, stats: dict[str, float]) -> None:
        for name, value in stats.items():
            if name in self.inputs:
                self.inputs[name].observe(value)
