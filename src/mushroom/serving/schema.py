"""The service's API contract: what each route takes and answers, as the OpenAPI document declares it.

The models document the JSON that :func:`mushroom.core.answer.answer` builds; the routes return it
directly (no per-request validation, which costs time on every photo), and a test checks that real
answers match these models.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from mushroom.serving.form import FIELD


class RankedClass(BaseModel):
    name: str = Field(description="A class the model knows (a genus).")
    probability: float = Field(ge=0.0, le=1.0, description="Calibrated probability.")


class DangerousClass(RankedClass):
    deadly: bool = Field(description="The genus holds deadly species.")
    poisonous: bool = Field(description="The genus holds poisonous species.")
    note: str | None = Field(description="What to know about this genus.")


class Answer(BaseModel):
    prediction: str = Field(
        description="The most likely class; 'not a mushroom' or 'not a genus I know' when the photo is "
        "unlike the known genera; 'not sure' below the confidence threshold."
    )
    verdict: Literal["genus", "not_sure", "not_a_mushroom", "unknown_genus"] = Field(
        description="Which kind of answer the prediction is."
    )
    reason: str | None = Field(description="Why the answer is not a genus (null when it is one).")
    confidence: float = Field(ge=0.0, le=1.0, description="The top class's probability.")
    not_sure: bool
    abstain_threshold: float | None = Field(description="Below this confidence the answer is 'not sure'.")
    known_score: float | None = Field(
        description="How much the photo looks like the known genera (open-set score; null for models "
        "exported without it)."
    )
    open_set_threshold: float | None = Field(
        description="Below this known score the answer is 'not a mushroom' or 'not a genus I know'."
    )
    top_k: list[RankedClass] = Field(description="The most likely classes, most likely first.")
    note: str | None = Field(description="The safety note of the predicted class.")
    dangerous: list[DangerousClass] = Field(description="Classes among the top k with dangerous species.")
    warning: str = Field(description="Never eat a mushroom because of this answer.")


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
