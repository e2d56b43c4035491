"""The optimizer and scheduler config groups: what each option builds, and the learning rates it gives."""

from __future__ import annotations

import itertools
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from torch.utils.data import DataLoader, TensorDataset

from mushroom.errors import MushroomError
from tests.conftest import compose_config

STEPS_PER_EPOCH, EPOCHS = 5, 2


class RecordLearningRates(L.Callback):
    """The head's and the backbone's learning rate at every optimizer step."""

    def __init__(self) -> None:
        self.head: list[float] = []
        self.backbone: list[float] = []

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, *args: object) -> None:
        groups = trainer.optimizers[0].param_groups
        head = {id(p) for p in module.net.get_classifier().parameters()}
        for group in groups:
            target = self.head if id(group["params"][0]) in head else self.backbone
            if not group["weight_decay"]:
                continue  # one head and one backbone group are enough
            target.append(group["lr"])


def fit_and_record(overrides: list[str], tmp_path: Path) -> tuple[L.LightningModule, RecordLearningRates]:
    cfg = compose_config("train", ["model=cnn", "model.backbone_lr_scale=0.1", *overrides], tmp_path)
    model = instantiate(cfg.model, class_names=["a", "b"], _convert_="all")
    images = torch.rand(STEPS_PER_EPOCH * 4, 3, 32, 32)
    loader = DataLoader(TensorDataset(images, torch.arange(len(images)) % 2), batch_size=4)
    recorder = RecordLearningRates()
    trainer = L.Trainer(
        max_epochs=EPOCHS,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[recorder],
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    trainer.fit(model, loader)
    return model, recorder


@pytest.mark.usefixtures("hydra_init")
def test_adamw_with_warmup_then_cosine_is_the_default(tmp_path: Path) -> None:
    model, lrs = fit_and_record(["model.optimizer.lr=0.01", "model.scheduler.min_lr_ratio=0.1"], tmp_path)
    assert isinstance(model.trainer.optimizers[0], torch.optim.AdamW)
    head = lrs.head
    assert len(head) == STEPS_PER_EPOCH * EPOCHS
    # One warm-up epoch (5 steps) climbing to lr, then cosine decay towards 0.1 x lr.
    assert head[:STEPS_PER_EPOCH] == pytest.approx([0.01 * (i + 1) / 5 for i in range(5)])
    assert all(later < earlier for earlier, later in itertools.pairwise(head[5:]))
    assert 0.001 < head[-1] < 0.003
    assert lrs.backbone == pytest.approx([lr * 0.1 for lr in head])


@pytest.mark.usefixtures("hydra_init")
def test_sgd_with_one_cycle(tmp_path: Path) -> None:
    overrides = ["optimizer=sgd", "model.optimizer.lr=0.05", "scheduler=onecycle"]
    model, lrs = fit_and_record(overrides, tmp_path)
    optimizer = model.trainer.optimizers[0]
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["nesterov"]
    head = lrs.head
    assert head[0] == pytest.approx(0.05 / 25)  # starts at lr / div_factor
    peak = max(range(len(head)), key=head.__getitem__)
    assert head[peak] == pytest.approx(0.05, rel=0.05) and 1 <= peak <= 4
    assert head[-1] < head[0]
    assert lrs.backbone == pytest.approx([lr * 0.1 for lr in head])


@pytest.mark.usefixtures("hydra_init")
def test_no_schedule_keeps_the_learning_rate(tmp_path: Path) -> None:
    _, lrs = fit_and_record(["scheduler=none", "model.optimizer.lr=0.02"], tmp_path)
    assert lrs.head == pytest.approx([0.02] * STEPS_PER_EPOCH * EPOCHS)
    assert lrs.backbone == pytest.approx([0.002] * STEPS_PER_EPOCH * EPOCHS)


@pytest.mark.usefixtures("hydra_init")
def test_a_checkpoint_remembers_its_optimizer_and_schedule(tmp_path: Path) -> None:
    cfg = compose_config("train", ["model=cnn", "optimizer=sgd", "scheduler=none"], tmp_path)
    model = instantiate(cfg.model, class_names=["a", "b"], _convert_="all")
    assert model.hparams["optimizer"]["_target_"] == "torch.optim.SGD"
    assert model.hparams["scheduler"]["_target_"].endswith("schedules.constant")


def test_an_optimizer_option_without_its_package_line_is_a_clear_error() -> None:
    """A file in configs/optimizer/ without `# @package model.optimizer` leaves model.optimizer with keys
    but no _target_: say so instead of 'DictConfig object is not callable'."""
    from mushroom.models import MushroomClassifier

    model = MushroomClassifier(["a", "b"], name="small_cnn", pretrained=False, optimizer={"lr": 0.1})
    with pytest.raises(MushroomError, match=r"# @package model\.optimizer"):
        model.build_optimizer()


def test_warm_up_leaves_at_least_one_step_of_decay_and_none_on_a_one_step_run() -> None:
    from mushroom.models.schedules import one_cycle, warmup_steps_for

    assert warmup_steps_for(0.5, total_steps=100, steps_per_epoch=10) == 5
    assert warmup_steps_for(1.0, total_steps=10, steps_per_epoch=10) == 9  # a 1-epoch run still decays
    assert warmup_steps_for(3.0, total_steps=2, steps_per_epoch=1) == 1
    assert warmup_steps_for(1.0, total_steps=1, steps_per_epoch=1) == 0
    assert warmup_steps_for(1.0, total_steps=0, steps_per_epoch=1) == 0
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    schedule = one_cycle(
        optimizer, total_steps=1, steps_per_epoch=1, pct_start=0.3, div_factor=25, final_div_factor=1e4
    )
    assert schedule.total_steps == 1  # type: ignore[attr-defined]


@pytest.mark.usefixtures("hydra_init")
def test_the_dinov2_option_decays_the_learning_rate_layer_by_layer(tmp_path: Path) -> None:
    cfg = compose_config(
        "train", ["model=dinov2_vits14", "model.pretrained=false", "model.optimizer.lr=0.001"], tmp_path
    )
    model = instantiate(cfg.model, class_names=["a", "b"], preprocessing={"image_size": 28}, _convert_="all")
    optimizer = model.build_optimizer()
    lr_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    decay_of = {id(p): group.get("weight_decay") for group in optimizer.param_groups for p in group["params"]}
    named = dict(model.net.named_parameters())
    assert lr_of[id(named["head.weight"])] == pytest.approx(0.001)
    blocks = [lr_of[id(named[f"blocks.{i}.attn.qkv.weight"])] for i in range(12)]
    for lower, upper in itertools.pairwise(blocks):
        assert lower == pytest.approx(0.75 * upper)  # each block 0.75x the one above it
    assert blocks[-1] == pytest.approx(0.001 * 0.75)  # the head's layer is the top one
    assert lr_of[id(named["patch_embed.proj.weight"])] < blocks[0]
    # The position embedding and the class token are not decayed; the blocks' weights are.
    assert decay_of[id(named["pos_embed"])] == 0.0 and decay_of[id(named["cls_token"])] == 0.0
    assert decay_of[id(named["blocks.0.attn.qkv.weight"])] != 0.0
    # Built at the data's size (28 px: 2 x 2 patches of 14), as the photos will arrive.
    assert model.net(torch.rand(1, 3, 28, 28)).shape == (1, 2)


@pytest.mark.usefixtures("hydra_init")
def test_without_layer_decay_the_backbone_learns_at_one_rate(tmp_path: Path) -> None:
    cfg = compose_config("train", ["model=cnn", "model.backbone_lr_scale=0.1"], tmp_path)
    model = instantiate(cfg.model, class_names=["a", "b"], _convert_="all")
    head = {id(p) for p in model.net.get_classifier().parameters()}
    rates = {(id(group["params"][0]) in head, group["lr"]) for group in model.build_optimizer().param_groups}
    lr = cfg.model.optimizer.lr
    assert sorted(rate for is_head, rate in rates if not is_head) == pytest.approx([0.1 * lr])
    assert sorted(rate for is_head, rate in rates if is_head) == pytest.approx([lr])
    with pytest.raises(InstantiationException, match=r"model.layer_decay=1.5: must be in \(0, 1\]"):
        instantiate(cfg.model, class_names=["a", "b"], layer_decay=1.5, _convert_="all")  # its schema's range
