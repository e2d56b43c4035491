"""The service's API contract: what each route takes and answers, as the OpenAPI document declares it.

The answer's model is :class:`mushroom.core.answer.Answer` itself (one description of an answer); the
routes return the JSON directly (no per-request validation, which costs time on every photo), and a test
checks that real answers match the models.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from mushroom.serving.form import FIELD


class ErrorBody(BaseModel):
    error: str = Field(description="A short machine-readable reason, e.g. 'not_an_image'.")
    detail: str = Field(description="What is wrong and how to fix it, for the person.")


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    classes: list[str]
    architecture: str


def errors(statuses: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error statuses, each with the JSON error body."""
    return {status: {"model": ErrorBody, "description": text} for status, text in statuses.items()}


PREDICT_ERRORS = errors(
    {
        400: "Empty, corrupt or malformed upload (empty, corrupt, bad_form, missing_file, unexpected_field).",
        408: "The upload did not arrive in time (upload_timeout).",
        413: "The file or the image is too large (too_large, too_many_pixels).",
        415: "Not an image this service reads, or not sent as multipart/form-data.",
        422: "An image, but far too long for its width to be a photo (too_thin).",
        500: "An internal error; the detail says what to report.",
        503: "The service is busy; send the photo again in a few seconds (busy).",
    }
)

PREDICT_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": [FIELD],
                "additionalProperties": False,
                "properties": {
                    FIELD: {
                        "type": "string",
                        "format": "binary",
                        "minLength": 1,
                        "description": "The photo: JPEG, PNG or WebP.",
                    }
                },
            },
            "encoding": {FIELD: {"contentType": "image/jpeg, image/png, image/webp"}},
        }
    },
}

METRICS_RESPONSE = {
    200: {
        "description": "Prometheus text exposition format.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}
