"""An exported classifier: the ONNX graph plus what it needs around it, read from the file's metadata.

The graph maps a normalised ``N x 3 x S x S`` float32 batch to calibrated class probabilities
(temperature and mirror averaging are inside it) and to the ``N x 2`` open-set scores
(:mod:`mushroom.core.open_set`). The metadata carries the rest: class names, preprocessing, the "not sure"
and open-set thresholds and the safety table, so one file is the whole model.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mushroom.core.preprocessing import Preprocessing, normalize_chw, resize_and_crop
from mushroom.errors import MushroomError

METADATA_KEY = "mushroom"
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
OPEN_SET_OUTPUT = "open_set"


@dataclass
class ModelInfo:
    """Everything besides the weights that turns a photo into an answer."""

    class_names: list[str]
    preprocessing: dict[str, Any]
    abstain_threshold: float | None = None
    open_set_threshold: float | None = None
    # A genus without deadly species is named only below this mass on deadly genera (None: no such rule).
    deadly_risk: float | None = None
    temperature: float = 1.0
    tta_hflip: bool = False
    # The centre share also classified and averaged in (the graph does it; None: not).
    tta_centre_crop: float | None = None
    safety: dict[str, Any] = field(default_factory=dict)
    architecture: str = ""
    source: str = ""

    def to_metadata(self) -> dict[str, str]:
        return {METADATA_KEY: json.dumps(asdict(self))}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], path: Path) -> ModelInfo:
        if METADATA_KEY not in metadata:
            raise MushroomError(
                f"{path} is an ONNX model, but not one exported by mushroom (no '{METADATA_KEY}' metadata "
                "with class names and preprocessing). "
                "Export it with: python -m mushroom.export model_path=..."
            )
        try:
            values = json.loads(metadata[METADATA_KEY])
            info = cls(**values)
            info.pre  # noqa: B018 - the preprocessing must make sense too
        except (json.JSONDecodeError, TypeError, ValueError) as error:
            raise MushroomError(
                f"{path}: the model's '{METADATA_KEY}' metadata is broken ({type(error).__name__}: {error}). "
                "Export the model again with this version: python -m mushroom.export model_path=..."
            ) from error
        if not isinstance(info.class_names, list) or not all(isinstance(n, str) for n in info.class_names):
            names = info.class_names
            raise MushroomError(f"{path}: the model's class names are not a list of names: {names!r}.")
        return info

    @property
    def pre(self) -> Preprocessing:
        return Preprocessing.from_dict(self.preprocessing)


class OnnxClassifier:
    """Probabilities for preprocessed batches or decoded photos, with ONNX Runtime on the CPU."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise MushroomError(
                f"Model file {self.path} does not exist. Export one with: "
                "python -m mushroom.export model_path=<run dir>/checkpoints/best.ckpt"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:
            raise MushroomError(
                f"{self.path} is not a readable ONNX model ({type(error).__name__}: {error}). "
                "Export one with: python -m mushroom.export model_path=..."
            ) from error
        self.info = ModelInfo.from_metadata(self.session.get_modelmeta().custom_metadata_map, self.path)
        self.pre = self.info.pre
        names = [output.name for output in self.session.get_outputs()]
        # Models exported before the open-set answer have the probabilities alone.
        self.outputs = [OUTPUT_NAME, OPEN_SET_OUTPUT] if OPEN_SET_OUTPUT in names else [OUTPUT_NAME]
        self._check_outputs()

    def _check_outputs(self) -> None:
        """One blank photo through the graph: its output must be one probability per class name.

        Also the warm-up: the first run allocates ONNX Runtime's memory, so the first user does not wait.
        """
        size = self.pre.image_size
        try:
            probs = self.predict_batch(np.zeros((1, 3, size, size), np.float32))
        except Exception as error:
            raise MushroomError(
                f"{self.path} does not take a 1 x 3 x {size} x {size} image as its metadata says "
                f"({type(error).__name__}: {error}). "
                "Export it again: python -m mushroom.export model_path=..."
            ) from error
        if probs.shape != (1, len(self.class_names)):
            raise MushroomError(
                f"{self.path} gives {probs.shape[-1]} outputs per photo but names {len(self.class_names)} "
                f"classes ({', '.join(self.class_names)}). "
                "Export it again: python -m mushroom.export model_path=..."
            )

    @property
    def class_names(self) -> list[str]:
        return self.info.class_names

    def predict_scores(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``N x 3 x S x S`` float32 → ``N x C`` probabilities and ``N x 2`` open-set scores (``None`` for a
        model exported without them)."""
        outputs = self.session.run(self.outputs, {INPUT_NAME: np.ascontiguousarray(batch, np.float32)})
        return outputs[0], (outputs[1] if len(outputs) > 1 else None)

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """``N x 3 x S x S`` float32 → ``N x C`` probabilities."""
        return self.predict_scores(batch)[0]

    def predict_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """One decoded ``H x W x 3`` uint8 photo → its ``C`` probabilities."""
        return self.predict_pixels(resize_and_crop(rgb, self.pre))[0]

    def predict_pixels(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The model-sized uint8 crop (:func:`resize_and_crop`) → its ``C`` probabilities and 2 open-set
        scores (or ``None``)."""
        probs, open_set = self.predict_scores(normalize_chw(pixels, self.pre)[None])
        return probs[0], (open_set[0] if open_set is not None else None)
