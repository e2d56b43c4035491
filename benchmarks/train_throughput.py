"""Images/s of the bare training step on in-memory tensors vs the full pipeline (DataModule from disk +
Lightning Trainer) for the same model, batch and image size; the same for evaluation. Their ratio says how
much the data pipeline and the framework cost.

    python benchmarks/train_throughput.py --data ../shared/data/mushrooms-real \
        --model tf_efficientnet_lite0 --image-size 224 --batch-size 32 --channels-last
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import lightning as L
import torch

from mushroom.data import MushroomDataModule
from mushroom.models import MushroomClassifier


class BatchClock(L.Callback):
    """Wall time from the end of batch ``warmup`` to the end of the last batch, training or test."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start: float | None = None
        self.end = 0.0
        self.images = 0

    def _tick(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        now = time.perf_counter()
        if batch_idx == self.warmup - 1:
            self.start = now
        elif batch_idx >= self.warmup:
            self.end = now
            self.images += len(batch[1])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self._tick(batch, batch_idx)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:  # type: ignore[no-untyped-def]
        self._tick(batch, batch_idx)

    @property
    def images_per_second(self) -> float:
        assert self.start is not None, "too few batches for the warm-up"
        return self.images / (self.end - self.start)


def autocast(device: str, precision: str) -> torch.autocast:
    dtype = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}.get(precision)
    return torch.autocast(device_type=device, dtype=dtype or torch.float32, enabled=dtype is not None)


def bare_train(module: MushroomClassifier, args: argparse.Namespace, device: str) -> float:
    module = module.to(device).train()
    optimizer = torch.optim.AdamW(module.parameter_groups())
    scaler = torch.amp.GradScaler(enabled=args.precision == "16-mixed")
    images = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    labels = torch.randint(0, len(module.class_names), (args.batch_size,), device=device)
    times = []
    for _ in range(args.warmup + args.steps):
        start = time.perf_counter()
        with autocast(device, args.precision):
            loss = module.loss(module(images), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return args.batch_size * args.steps / sum(times[args.warmup :])


@torch.no_grad()
def bare_eval(module: MushroomClassifier, args: argparse.Namespace, device: str) -> float:
    module = module.to(device).eval()
    images = torch.randn(args.eval_batch_size, 3, args.image_size, args.image_size, device=device)
    times = []
    for _ in range(args.warmup + args.steps):
        start = time.perf_counter()
        with autocast(device, args.precision):
            module(images)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return args.eval_batch_size * args.steps / sum(times[args.warmup :])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="<class>/<image> folder read by the pipeline"
    )
    parser.add_argument("--model", default="tf_efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="timed steps (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--num-workers", type=int, default=None)
    parser.add_argument("--precision", default="32-true", choices=["32-true", "16-mixed", "bf16-mixed"])
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--freeze", nargs="*", default=[])
    parser.add_argument(
        "--cache-size", type=int, default=None, help="read a resized cache (data.prepare) at this size"
    )
    parser.add_argument("--processed-root", type=Path, default=Path("data/processed"))
    args = parser.parse_args()
    prepare = {"enabled": args.cache_size is not None, "cache_size": args.cache_size}

    device = "cuda" if torch.cuda.is_available() else "cpu"

    def datamodule(test_on_all: bool = False) -> MushroomDataModule:
        return MushroomDataModule(
            args.data,
            image_size=args.image_size,
            batch_size=args.batch_size,
            eval_batch_size=args.eval_batch_size,
            num_workers=args.num_workers,
            processed_root=args.processed_root,
            prepare=prepare,
            test_on_all=test_on_all,
        )

    dm = datamodule()
    dm.prepare_data()
    dm.setup()

    def fresh_module() -> MushroomClassifier:
        torch.manual_seed(0)
        return MushroomClassifier(
            dm.class_names,
            name=args.model,
            pretrained=False,
            channels_last=args.channels_last,
            compile=args.compile,
            freeze=args.freeze,
        )

    results: dict[str, float | str | int | None] = {
        "device": torch.cuda.get_device_name()
        if device == "cuda"
        else f"cpu x{torch.get_num_threads()} threads",
        "model": args.model,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "precision": args.precision,
        "channels_last": args.channels_last,
        "compile": args.compile,
        "num_workers": dm.num_workers,
        "cache_size": args.cache_size,
    }
    # CPU clocks drift (turbo, neighbours): time the bare step before and after the pipeline, use the mean.
    bare_before = bare_train(fresh_module(), args, device)

    train_batches = args.warmup + args.steps
    needed = train_batches * args.batch_size
    if len(dm.split.train) < needed:
        raise SystemExit(
            f"--data has {len(dm.split.train)} training images; {needed} are needed for this run"
        )
    clock = BatchClock(args.warmup)
    trainer = L.Trainer(
        accelerator="auto",
        devices=1,
        precision=args.precision,
        max_steps=train_batches,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[clock],
    )
    trainer.fit(fresh_module(), datamodule=dm)
    results["train_pipeline_img_s"] = clock.images_per_second
    bare_after = bare_train(fresh_module(), args, device)
    results["train_bare_img_s"] = (bare_before + bare_after) / 2
    results["train_bare_spread"] = abs(bare_before - bare_after) / results["train_bare_img_s"]
    results["train_ratio"] = results["train_pipeline_img_s"] / results["train_bare_img_s"]

    eval_before = bare_eval(fresh_module(), args, device)
    clock = BatchClock(args.warmup)
    trainer = L.Trainer(
        accelerator="auto",
        devices=1,
        precision=args.precision,
        limit_test_batches=args.warmup + args.steps,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[clock],
    )
    trainer.test(fresh_module(), datamodule=datamodule(test_on_all=True), verbose=False)
    results["eval_pipeline_img_s"] = clock.images_per_second
    results["eval_bare_img_s"] = (eval_before + bare_eval(fresh_module(), args, device)) / 2
    results["eval_ratio"] = results["eval_pipeline_img_s"] / results["eval_bare_img_s"]

    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
