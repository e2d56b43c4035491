"""Name the genus in photos: top-k classes with calibrated probabilities, or "not sure".

    python -m mushroom.predict model_path=best.ckpt inputs=[photo.jpg,folder/] [top_k=3] [format=json]

``model_path`` may be a training checkpoint (PyTorch) or an exported ``.onnx`` file (ONNX Runtime);
both preprocess photos the same way and answer through :func:`mushroom.core.answer.answer`.
A photo that cannot be decoded gets a row with its error; the others are still answered.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from mushroom.core.answer import SAFETY_WARNING, answer, chosen_threshold, scalar_fields
from mushroom.core.images import find_images, load_rgb
from mushroom.core.onnx_model import ModelInfo, OnnxClassifier
from mushroom.core.preprocessing import eval_preprocess
from mushroom.core.safety import load_table, table_from_config
from mushroom.errors import MushroomError
from mushroom.runtime import checked_command_line, exit_on_user_error
from mushroom.schemas import ServeSettings

log = logging.getLogger(__name__)


class Classifier(Protocol):
    info: ModelInfo

    def predict_scores(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...


def load_any(path: str | Path, safety: dict[str, Any] | None = None) -> Classifier:
    """An exported ``.onnx`` file (ONNX Runtime; its safety notes are inside), else a training checkpoint
    (PyTorch, imported only here) with the notes of ``safety`` (default: the shipped genus table)."""
    if Path(path).suffix == ".onnx":
        return OnnxClassifier(path)
    from mushroom.checkpoints import TorchClassifier

    return TorchClassifier(path, load_table("genus") if safety is None else safety)


def _batches(items: Sequence[str | Path], size: int) -> Iterator[Sequence[str | Path]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def predict_files(
    model: Classifier,
    paths: Sequence[str | Path],
    top_k: int = ServeSettings.top_k,
    abstain_threshold: float | None = ServeSettings.abstain_threshold,
    batch_size: int = 16,
    open_set: bool = ServeSettings.open_set,
) -> list[dict[str, Any]]:
    """One result per path, in order: the answer (:class:`mushroom.core.answer.Answer`'s fields), or
    ``{"path", "error"}`` for a file that cannot be read. Defaults as the service answers: the top 3, the
    model's fitted thresholds; ``open_set=False``: never "not a mushroom" / "not a genus I know"."""
    info, pre = model.info, model.info.pre
    threshold = chosen_threshold(abstain_threshold, info.abstain_threshold)
    open_set_threshold = info.open_set_threshold if open_set else None
    results: list[dict[str, Any]] = []
    for chunk in _batches(paths, batch_size):
        rows = [{"path": str(path)} for path in chunk]
        arrays, readable = [], []
        for path, row in zip(chunk, rows, strict=True):
            try:
                arrays.append(eval_preprocess(load_rgb(Path(path), pre.resize_size), pre))
                readable.append(row)
            except Exception as error:  # PIL raises many types for a broken file
                row["error"] = f"cannot decode ({type(error).__name__}: {error})"
        if arrays:
            probs, open_set_scores = model.predict_scores(np.stack(arrays))
            for i, row in enumerate(readable):
                scores = open_set_scores[i] if open_set_scores is not None else None
                row.update(
                    answer(
                        probs[i],
                        info.class_names,
                        top_k,
                        threshold,
                        info.safety,
                        scores,
                        open_set_threshold,
                        info.deadly_risk,
                    )
                )
        results += rows
    return results


def format_results(results: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(results, indent=2)
    if fmt == "csv":
        return _csv(results)
    if fmt == "table":
        return _table(results)
    raise MushroomError(f"format={fmt} is not one of table, json, csv.")


def _top_k_text(result: dict[str, Any]) -> str:
    return ", ".join(f"{row['name']} {row['probability']:.3f}" for row in result["top_k"])


def _table(results: list[dict[str, Any]]) -> str:
    rows = [("photo", "answer", "top-k")]
    for result in results:
        if "error" in result:
            rows.append((result["path"], "ERROR", result["error"]))
        else:
            rows.append((result["path"], result["prediction"], _top_k_text(result)))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}" for row in rows]
    return "\n".join([*lines, "", SAFETY_WARNING])


#: Answer fields the CSV leaves out: the same safety warning on every row (the table prints it once).
CSV_LEFT_OUT = ("warning",)


def csv_columns() -> list[str]:
    """The photo, every one-value field of :class:`mushroom.core.answer.Answer`, the top k, the error."""
    fields = [name for name in scalar_fields() if name not in CSV_LEFT_OUT]
    return ["path", *fields, "top_k", "error"]


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.6f}" if isinstance(value, float) else str(value)


def _csv(results: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=csv_columns(), extrasaction="ignore")
    writer.writeheader()
    for result in results:
        if "error" in result:
            writer.writerow({"path": result["path"], "error": result["error"]})
        else:
            row = {name: _csv_value(value) for name, value in result.items()}
            writer.writerow(row | {"top_k": _top_k_text(result)})
    return buffer.getvalue()


def predict(cfg: DictConfig) -> list[dict[str, Any]]:
    chosen_threshold(cfg.abstain_threshold, None)  # refuse a threshold outside [0, 1] before any work
    model = load_any(cfg.model_path, table_from_config(cfg.get("safety")))
    inputs = OmegaConf.to_container(cfg.inputs) if OmegaConf.is_list(cfg.inputs) else [cfg.inputs]
    paths = find_images([str(item) for item in inputs])  # type: ignore[union-attr]
    if not paths:
        raise MushroomError(f"No images found in inputs={list(inputs)}.")  # type: ignore[arg-type]
    results = predict_files(model, paths, cfg.top_k, cfg.abstain_threshold, cfg.batch_size, cfg.open_set)
    text = format_results(results, cfg.format)
    if cfg.output_path:
        Path(cfg.output_path).write_text(text + "\n")
        log.info("Wrote %d results to %s", len(results), cfg.output_path)
    else:
        sys.stdout.write(text + "\n")
    failed = [result["path"] for result in results if "error" in result]
    if failed:
        log.warning("%d of %d photos could not be decoded: %s", len(failed), len(results), ", ".join(failed))
    return results


@checked_command_line("predict")
@hydra.main(version_base="1.3", config_path="configs", config_name="predict")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    main()
