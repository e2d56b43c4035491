"""What the tests share: callbacks they plug into real training runs through Hydra
(``+callbacks.x._target_=tests.helpers.X``), the package's commands run as a user runs them, photo sets
the audit keeps apart, and a tiny ONNX model in the package's format. Replicas of the Kaggle archives are
in ``tests/replicas.py``; fixtures in ``tests/conftest.py``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image

import mushroom
from mushroom.core.onnx_model import INPUT_NAME, OUTPUT_NAME, ModelInfo
from mushroom.data import MushroomDataModule


class RecordTrainIndices(L.Callback):
    """Write the dataset indices this rank will train on in the first epoch to ``rank<N>.json``."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch != 0:
            return
        sampler = trainer.train_dataloader.sampler  # type: ignore[union-attr]
        # EpochSampler yields (epoch, index) pairs, which the distributed wrapper passes on as they are.
        indices = [int(i[1]) if isinstance(i, tuple) else int(i) for i in sampler]
        path = Path(trainer.default_root_dir) / f"rank{trainer.global_rank}.json"
        record = {"world_size": trainer.world_size, "indices": indices, "package": mushroom.__file__}
        path.write_text(json.dumps(record))


class RecordFinalWeights(L.Callback):
    """Write this rank's node, rank and a checksum of its weights after fitting to ``weights<N>.json``."""

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        total = sum(float(p.detach().double().sum()) for p in pl_module.parameters())
        record = {"node": trainer.node_rank, "rank": trainer.global_rank, "world_size": trainer.world_size}
        record["checksum"] = round(total, 9)
        (Path(trainer.default_root_dir) / f"weights{trainer.global_rank}.json").write_text(json.dumps(record))


class KillAt(L.Callback):
    """SIGKILL this process at the start of batch ``batch`` of epoch ``epoch``: no handler runs, no
    checkpoint is written, as when a job is killed or a node is lost."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch = epoch
        self.batch = batch

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: object, batch_idx: int
    ) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), signal.SIGKILL)


class SignalAt(L.Callback):
    """Send this process ``signal_name`` ``times`` times at the start of batch ``batch`` of epoch ``epoch``,
    as SLURM does before a job's time limit; only in a job's first start (``SLURM_RESTART_COUNT`` unset or 0),
    since a requeued job runs the same command."""

    def __init__(self, epoch: int, batch: int, signal_name: str = "SIGUSR1", times: int = 1) -> None:
        self.epoch, self.batch, self.times = epoch, batch, times
        self.signal = signal.Signals[signal_name]

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: object, batch_idx: int
    ) -> None:
        first_start = os.environ.get("SLURM_RESTART_COUNT", "0") == "0"
        if first_start and trainer.current_epoch == self.epoch and batch_idx == self.batch:
            for _ in range(self.times):
                os.kill(os.getpid(), self.signal)


class RunAtEpochEnd(L.Callback):
    """Run ``script`` once, at the end of training epoch ``epoch``: something in the world changes while a
    run trains (a database goes away)."""

    def __init__(self, script: str, epoch: int) -> None:
        self.script, self.epoch, self.done = script, epoch, False

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch and not self.done:
            self.done = True
            subprocess.run([self.script], check=True, timeout=120)


def run_module(module: str, *args: str, cwd: Path, measured: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    if not measured:
        # Coverage traces the subprocess; Hydra takes any tracer for a debugger and then prints full
        # tracebacks. A user's shell has no tracer: run as they would.
        env.pop("COVERAGE_PROCESS_CONFIG", None)
        env.pop("COVERAGE_PROCESS_START", None)
    if env.get("MUTANT_UNDER_TEST") == "stats":
        # `invoke mutate` first records which tests call which function, in this process only; a child in
        # another directory cannot find mutmut's settings and fails. Mutants still reach the child.
        env.pop("MUTANT_UNDER_TEST")
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=240
    )


def assert_one_clear_line(module: str, *args: str, cwd: Path, expected: str) -> str:
    """Run the command; it must fail with exit 1 and one error line (plus at most one hint line)."""
    result = run_module(module, *args, f"hydra.run.dir={cwd / 'run'}", cwd=cwd, measured=False)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "Traceback" not in output and "HYDRA_FULL_ERROR" not in output, output[-3000:]
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if re.match(r"\[[\d:]+\]\[[\w.]+\]\[ERROR\]", line)]
    assert len(errors) == 1, output[-3000:]
    assert len(lines) - errors[0] <= 2, output[-3000:]  # the error line and at most one hint
    assert expected in "\n".join(lines[errors[0] :]), output[-3000:]
    return lines[errors[0]]


def run_predict(overrides: list[str], output_dir: Path) -> list[dict]:
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from mushroom.predict import predict
    from tests.conftest import compose_config

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="mushroom.configs", version_base="1.3"):
        cfg = compose_config("predict", overrides, output_dir)
    return predict(cfg)


def distinct_photo(rng: np.random.Generator, size: tuple[int, int] = (96, 80)) -> Image.Image:
    """A smooth random picture: unlike the toy shapes, every one has its own perceptual hash."""
    coarse = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)


def make_distinct_folder(root: Path, classes: dict[str, int], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for cls, count in classes.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            distinct_photo(rng).save(root / cls / f"{cls.lower()}_{i:03d}.jpg", quality=92)
    return root


QUARTERS = ["top-left", "top-right", "bottom-left", "bottom-right"]


def corner_finder(path: Path, size: int = 32) -> Path:
    """An ONNX model in mushroom's format whose class is the quarter with the most red (over green)."""
    import onnx
    from onnx import TensorProto, helper

    half = size // 2
    nodes, initializers, scores = [], [], []

    def constant(name: str, values: list[int]) -> str:
        initializers.append(helper.make_tensor(name, TensorProto.INT64, [len(values)], values))
        return name

    axes = constant("axes", [1, 2, 3])
    for q, (y0, x0) in enumerate([(0, 0), (0, half), (half, 0), (half, half)]):
        for channel, colour in ((0, "red"), (1, "green")):
            starts = constant(f"starts_{q}_{colour}", [channel, y0, x0])
            ends = constant(f"ends_{q}_{colour}", [channel + 1, y0 + half, x0 + half])
            nodes.append(helper.make_node("Slice", [INPUT_NAME, starts, ends, axes], [f"{colour}_{q}"]))
        nodes.append(helper.make_node("Sub", [f"red_{q}", f"green_{q}"], [f"diff_{q}"]))
        nodes.append(helper.make_node("ReduceMean", [f"diff_{q}"], [f"mean_{q}"], axes=[1, 2, 3], keepdims=0))
        nodes.append(helper.make_node("Unsqueeze", [f"mean_{q}", constant(f"one_{q}", [1])], [f"score_{q}"]))
        scores.append(f"score_{q}")
    nodes.append(helper.make_node("Concat", scores, ["scores"], axis=1))
    nodes.append(helper.make_node("Softmax", ["scores"], [OUTPUT_NAME], axis=1))
    graph = helper.make_graph(
        nodes,
        "corner_finder",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", 4])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    info = ModelInfo(
        class_names=QUARTERS,
        preprocessing={"image_size": size, "crop_pct": 1.0, "mean": [0.5] * 3, "std": [0.5] * 3},
        abstain_threshold=0.0,
        architecture="corner_finder",
    )
    helper.set_model_props(model, info.to_metadata())
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def datamodule_of(checkpoint: Path) -> MushroomDataModule:
    """The data a checkpoint trained on, split as it was (training stores its data settings in it)."""
    settings = torch.load(checkpoint, weights_only=False)["datamodule_hyper_parameters"]
    datamodule = MushroomDataModule(**settings)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule
