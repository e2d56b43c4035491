"""Export a checkpoint to ONNX, check it against PyTorch on real photos, optionally quantize it.

    python -m mushroom.export model_path=CKPT [output_path=model.onnx] [parity_dir=DIR] [quantize=true]

The graph takes the normalised image batch and returns calibrated probabilities (temperature and
mirror averaging included); class names, preprocessing, the "not sure" threshold and the safety table
travel in the file's metadata (:class:`mushroom.core.onnx_model.ModelInfo`). The export fails, and
leaves no file, when ONNX Runtime disagrees with PyTorch beyond ``parity_tolerance`` or on a top-1.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from mushroom.checkpoints import TorchClassifier
from mushroom.core.images import find_images, load_rgb, sample_evenly
from mushroom.core.onnx_model import INPUT_NAME, OPEN_SET_OUTPUT, OUTPUT_NAME, ModelInfo, OnnxClassifier
from mushroom.core.preprocessing import eval_preprocess
from mushroom.core.safety import table_from_config
from mushroom.ensemble import fitted_ensemble
from mushroom.errors import MushroomError
from mushroom.models import MushroomClassifier
from mushroom.models.ensemble import Ensemble
from mushroom.runtime import checked_command_line, exit_on_user_error

log = logging.getLogger(__name__)


class CalibratedScores(torch.nn.Module):
    """What the exported graph computes: :meth:`MushroomClassifier.predict_scores` (an ensemble's: the
    mean of its members')."""

    def __init__(self, classifier: MushroomClassifier | Ensemble) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.classifier.predict_scores(images)


def write_onnx(classifier: MushroomClassifier | Ensemble, info: ModelInfo, path: Path, opset: int) -> None:
    """Export with the dynamo-based exporter (batch size left free) and attach ``info`` as metadata."""
    import onnx

    size = info.pre.image_size
    example = torch.zeros(2, 3, size, size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The exporter prints its progress and its graph passes log every step: keep the user's log readable.
    with contextlib.redirect_stdout(io.StringIO()), quiet_loggers("onnx_ir", "onnxscript"):
        torch.onnx.export(
            CalibratedScores(classifier).eval(),
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME, OPEN_SET_OUTPUT],
            dynamic_shapes=({0: batch},),
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    set_metadata(path, info.to_metadata())
    onnx.checker.check_model(str(path))


@contextlib.contextmanager
def quiet_loggers(*names: str) -> Iterator[None]:
    """Only errors from these loggers ("" is the root logger) while the block runs."""
    loggers = [logging.getLogger(name) if name else logging.getLogger() for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def set_metadata(path: Path, metadata: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    kept = [prop for prop in model.metadata_props if prop.key not in metadata]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def parity_check(
    reference: TorchClassifier, exported: OnnxClassifier, images: list[Path], tolerance: float
) -> dict[str, Any]:
    """Same photos through PyTorch and ONNX Runtime: largest probability difference and top-1 agreement."""
    batch = np.stack([eval_preprocess(load_rgb(p, exported.pre.resize_size), exported.pre) for p in images])
    expected, expected_open_set = reference.predict_scores(batch)
    got, got_open_set = exported.predict_scores(batch)
    max_diff = float(np.abs(expected - got).max())
    if got_open_set is not None:  # the known score too: the open-set answer depends on it
        scale = np.maximum(1.0, np.abs(expected_open_set[:, 0]))  # the energy score is not a probability
        max_diff = max(max_diff, float((np.abs(expected_open_set - got_open_set) / scale[:, None]).max()))
    disagree = [str(p) for p, a, b in zip(images, expected.argmax(1), got.argmax(1), strict=True) if a != b]
    result = {
        "images": len(images),
        "max_abs_diff": max_diff,
        "tolerance": tolerance,
        "top1_disagreements": disagree,
        "passed": max_diff <= tolerance and not disagree,
    }
    log.info(
        "Parity on %d photos: max |p_torch - p_onnx| = %.2e, top-1 differs on %d",
        len(images),
        max_diff,
        len(disagree),
    )
    return result


def labelled_accuracy(models: dict[str, OnnxClassifier], root: Path, samples: int | None) -> dict[str, Any]:
    """Top-1 accuracy of each model on a ``<class>/<image>`` folder, and how often they agree."""
    from mushroom.data.prepare import index_folder

    names = next(iter(models.values())).class_names
    index = index_folder(root, class_names=names)
    chosen = sample_evenly(list(range(len(index.paths))), samples)
    labels = np.asarray([index.labels[i] for i in chosen])
    predictions = {}
    for key, model in models.items():
        predictions[key] = np.asarray(
            [model.predict_rgb(load_rgb(index.paths[i], model.pre.resize_size)).argmax() for i in chosen]
        )
    first, second = predictions.values()
    return {
        "folder": str(root),
        "images": len(chosen),
        **{f"{key}_accuracy": float((pred == labels).mean()) for key, pred in predictions.items()},
        "top1_agreement": float((first == second).mean()),
    }


def quantize(fp32_path: Path, eval_dir: Path | None, samples: int | None) -> dict[str, Any]:
    """Dynamic int8 quantization of the weights (activations quantized on the fly)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8_path = fp32_path.with_suffix(".int8.onnx")
    # The quantizer re-infers shapes, and clashes with the exporter's recorded intermediate shapes.
    graph = onnx.load(str(fp32_path))
    del graph.graph.value_info[:]
    onnx.save(graph, str(int8_path))
    with quiet_loggers(""):  # the quantizer logs a line per tensor on the root logger
        quantize_dynamic(int8_path, int8_path, weight_type=QuantType.QInt8)
    fp32 = OnnxClassifier(fp32_path)
    set_metadata(int8_path, fp32.info.to_metadata())
    result: dict[str, Any] = {
        "path": str(int8_path),
        "size_mb": round(int8_path.stat().st_size / 2**20, 2),
        "fp32_size_mb": round(fp32_path.stat().st_size / 2**20, 2),
    }
    if eval_dir is not None and eval_dir.is_dir():
        scores = labelled_accuracy({"fp32": fp32, "int8": OnnxClassifier(int8_path)}, eval_dir, samples)
        scores["accuracy_change"] = scores["int8_accuracy"] - scores["fp32_accuracy"]
        result.update(scores)
        log.info(
            "int8: accuracy %.4f vs float %.4f (%+.4f) on %d images of %s; top-1 agreement %.4f",
            scores["int8_accuracy"],
            scores["fp32_accuracy"],
            scores["accuracy_change"],
            scores["images"],
            eval_dir,
            scores["top1_agreement"],
        )
    else:
        log.warning("No quantize_eval_dir folder (%s): the int8 model's accuracy was not measured.", eval_dir)
    return result


def export(cfg: DictConfig) -> dict[str, Any]:
    if cfg.format != "onnx":
        raise MushroomError(f"format={cfg.format} is not supported: the only export format is onnx.")
    model_path = Path(cfg.model_path)
    safety = table_from_config(cfg.get("safety"))
    if cfg.ensemble_with:
        rules = {rule: cfg.calibration.get(rule) for rule in cfg.calibration}
        reference = TorchClassifier.wrapping(
            *fitted_ensemble([model_path, *cfg.ensemble_with], rules, safety)
        )
    else:
        reference = TorchClassifier(model_path, safety)
    output = Path(cfg.output_path) if cfg.output_path else model_path.with_suffix(".onnx")

    parity_images = sample_evenly(
        find_images([cfg.parity_dir]) if Path(cfg.parity_dir).is_dir() else [], cfg.parity_samples
    )
    if not parity_images:
        raise MushroomError(
            f"No photos found in parity_dir={cfg.parity_dir} for the ONNX-vs-PyTorch check. "
            "Pass parity_dir=<folder of photos> (for example the training data)."
        )

    write_onnx(reference.model, reference.info, output, cfg.opset)
    parity = parity_check(reference, OnnxClassifier(output), parity_images, cfg.parity_tolerance)
    if not parity["passed"]:
        output.unlink()
        raise MushroomError(
            f"The ONNX model disagrees with PyTorch on {len(parity['top1_disagreements'])} of "
            f"{parity['images']} photos (max probability difference {parity['max_abs_diff']:.2e}, "
            f"tolerance {cfg.parity_tolerance}); nothing was written. Try another opset (opset=17), "
            "and report the model name if it persists."
        )
    summary: dict[str, Any] = {
        "path": str(output),
        "size_mb": round(output.stat().st_size / 2**20, 2),
        "parity": parity,
    }
    if cfg.quantize:
        eval_dir = Path(cfg.quantize_eval_dir) if cfg.quantize_eval_dir else None
        summary["int8"] = quantize(output, eval_dir, cfg.quantize_eval_samples)
    report = output.with_suffix(".export.json")
    report.write_text(json.dumps(summary, indent=2))
    log.info("Wrote %s (%s MB) and %s", output, summary["size_mb"], report)
    return summary


@checked_command_line("export")
@hydra.main(version_base="1.3", config_path="configs", config_name="export")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    export(cfg)


if __name__ == "__main__":
    main()
