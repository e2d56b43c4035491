"""Every key of every config group reaches the object it configures.

One generic check instead of one test per key: each leaf key of each group option is composed with a
changed value, the object is instantiated as training does, and what the object holds must change.
A key that a refactoring stops passing on (renamed in the YAML, dropped while mapping settings,
shadowed by a hard-coded default) fails here with its name.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from mushroom.configs import group_options
from mushroom.runtime import instantiate_all
from tests.conftest import compose_config

# Values for keys whose default is null (no type to change it by) or that must stay valid.
ALTERNATIVES: dict[str, Any] = {
    "data.name": "renamed",
    "data.image_size": 48,
    "data.crop_pct": 0.8,
    "data.mean": [0.1, 0.2, 0.3],
    "data.std": [0.4, 0.5, 0.6],
    "data.eval_batch_size": 7,
    "data.num_workers": 3,
    "data.pin_memory": True,
    "data.kaggle_handle": "someone/another-set",
    "data.label_map": {"Amanita": "deadly"},  # where the default is null; a table's entries change
    "data.seed": 7,
    "data.processed_root": "/elsewhere/processed",
    "data.prepare.dir": "/elsewhere/prepared",
    "data.prepare.cache_size": 128,
    "data.prepare.max_per_class": 9,
    "data.prepare.validate_by_source": True,
    "data.prepare.val_source_max_share": 0.2,
    "data.prepare.val_by_fold": True,
    "data.prepare.safety_table": "genus",
    "data.prepare.safety_conflicts": "relabel",
    "data.prepare.published_counts": {"total": 12, "classes": 3},
    "data.open_set.root": "/elsewhere/open-set",
    "data.open_set.other_genera": ["/elsewhere/other-genera"],
    "data.open_set.not_mushroom": ["kaggle:someone/everyday-photos"],
    "data.teacher.name": "vit_small_patch14_dinov2.lvd142m",
    "model.name": "resnet18",
    "model.freeze": ["features"],
    "model.mixstyle_layers": ["features"],
    "model.cnn_channels": [4, 8],
    "model.layer_decay": 0.5,
    "model.tta_centre_crop": 0.875,
    "trainer.accelerator": "cpu",
    "trainer.precision": "bf16-mixed",
    "trainer.gradient_clip_val": 0.5,
    "trainer.strategy": "ddp_spawn",
    "trainer.devices": 2,
    "callbacks.ema.update_starting_at_step": 5,
    "callbacks.slurm_requeue.signal_name": "SIGUSR2",
    "callbacks.early_stopping.monitor": "val/loss",
    "callbacks.early_stopping.mode": "min",
    "callbacks.model_checkpoint.monitor": "val/loss",
    "callbacks.model_checkpoint.mode": "min",
    "callbacks.model_checkpoint.filename": "renamed",
    "callbacks.last_checkpoint.filename": "renamed",
    "callbacks.lr_monitor.logging_interval": "step",
    "callbacks.last_checkpoint.save_top_k": -1,
    "logger.wandb.name": "renamed",
    "logger.wandb.tags": ["changed"],
}
# Keys that instantiation does not see, and why.
NOT_INSTANTIATED = {
    "data.root": "mandatory, given in every case",
    "model.class_names": "mandatory, filled in by train from the data",
    "model.class_counts": "filled in by train from the data",
    "model.preprocessing": "filled in by train from the data",
    "model.open_set_classes": "filled in by train from data.open_set",
    "model.deadly": "filled in by train from the safety table",
    "model.danger_weight": "needs deadly classes; tested in test_models",
    "model.compile": "compiles on first forward; tested in test_models",
    "model.pretrained": "downloads weights; tested in test_models",
    "trainer.default_root_dir": "an interpolation of paths.output_dir",
    "callbacks.model_checkpoint.dirpath": "an interpolation of paths.output_dir",
    "callbacks.last_checkpoint.dirpath": "an interpolation of paths.output_dir",
    "logger.csv.save_dir": "an interpolation of paths.output_dir",
    "logger.tensorboard.save_dir": "an interpolation of paths.output_dir",
    "logger.wandb.save_dir": "an interpolation of paths.output_dir",
    "trainer.accelerator": "auto and cpu build the same Trainer on a machine without a GPU",
    "trainer.deterministic": "sets global torch flags, not the Trainer's state",
    "trainer.benchmark": "sets global torch flags, not the Trainer's state",
    "callbacks.ema.decay": "held in the averaging function's closure, not in an attribute",
    "callbacks.last_checkpoint.monitor": "null on purpose: last.ckpt follows no metric",
    "logger.wandb.offline": "offline=true with log_model=true is refused; test_train runs wandb offline",
}
# Top-level settings that become objects of their own; every other top-level data/model setting is
# kept in hparams and read from there where it is used.
SETTINGS_OBJECTS = {"data.prepare", "data.augment", "data.open_set"}
HPARAM_NAMES = {"hparams", "_hparams", "_hparams_initial", "_log_hyperparams", "_hparams_name"}


def leaves(node: dict, prefix: str) -> Iterator[tuple[str, Any]]:
    """``(dotted key, default)`` of every setting in a config file, nested settings included."""
    for key, value in node.items():
        if key.startswith("_") and key.endswith("_"):  # _target_, _partial_, _recursive_: Hydra's own
            continue
        if isinstance(value, dict) and value:
            yield from leaves(value, f"{prefix}.{key}")
        else:
            yield f"{prefix}.{key}", value


def changed(key: str, value: Any) -> Any:
    if key in ALTERNATIVES and ALTERNATIVES[key] != value:
        return ALTERNATIVES[key]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 3
    if isinstance(value, float):
        return round(value * 0.5 + 0.07, 6)
    if isinstance(value, list) and value and all(isinstance(v, float) for v in value):
        return [round(v * 0.5 + 0.07, 6) for v in value]
    if isinstance(value, str):
        return value + "_changed"
    raise AssertionError(f"{key}: add a changed value for {value!r} to ALTERNATIVES")


def state(obj: Any, depth: int = 7, skip: frozenset[str] = frozenset(HPARAM_NAMES)) -> dict[str, Any]:
    """What an object holds: primitive values by attribute path, a few levels deep (no properties)."""
    found: dict[str, Any] = {}
    seen: set[int] = set()

    def visit(value: Any, path: str, level: int) -> None:
        if value is None or isinstance(value, bool | int | float | str):
            found[path] = value
            return
        if isinstance(value, Path):
            found[path] = str(value)
            return
        if isinstance(value, DictConfig | ListConfig):
            value = OmegaConf.to_container(value)
        if level >= depth or id(value) in seen or isinstance(value, torch.Tensor | torch.nn.Parameter):
            return
        seen.add(id(value))
        if isinstance(value, dict):
            items = value.items()
        elif isinstance(value, list | tuple):
            items = enumerate(value)
        elif dataclasses.is_dataclass(value) or hasattr(value, "__dict__"):
            items = vars(value).items()
        else:
            return
        for key, item in items:
            if str(key) not in skip:
                visit(item, f"{path}.{key}", level + 1)

    visit(obj, "", 0)
    return found


def holds(obj: Any, value: Any) -> bool:
    flat = state(obj)
    if isinstance(value, dict):  # each entry held under its own key
        return all(
            any(path.endswith(f".{key}") and _same(held, item) for path, held in flat.items())
            for key, item in value.items()
        )
    wanted = value if isinstance(value, list) else [value]
    return all(any(_same(v, w) for v in flat.values()) for w in wanted)


def _same(a: Any, b: Any) -> bool:
    if (
        isinstance(a, float | int)
        and isinstance(b, float | int)
        and not isinstance(a, bool) | isinstance(b, bool)
    ):
        return math.isclose(a, b, rel_tol=1e-6)
    return (type(a) is type(b) and a == b) or (isinstance(a, str) and str(b) in a and len(str(b)) > 3)


def build(group: str, cfg: DictConfig) -> list[Any]:
    if group == "data":
        return [instantiate(cfg.data, _convert_="all")]
    if group == "model":
        return [
            instantiate(
                cfg.model, class_names=["a", "b"], class_counts=[3, 5], pretrained=False, _convert_="all"
            )
        ]
    if group == "trainer":
        return [instantiate(cfg.trainer, logger=False, callbacks=[])]
    if group == "optimizer":
        return [build("model", cfg)[0].build_optimizer()]
    if group == "scheduler":  # the learning rates it gives over 50 steps of 10 per epoch
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        scheduler = instantiate(cfg.model.scheduler)(optimizer, total_steps=50, steps_per_epoch=10)
        rates = []
        for _ in range(50):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return [rates]
    return instantiate_all(cfg.get(group))


def composed_option(group: str, option: str) -> dict:
    """What an option holds once composed: its schema's defaults (``mushroom.schemas``) and its own keys."""
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="mushroom.configs", version_base="1.3"):
        cfg = compose("train", overrides=[f"{group}={option}", "data.root=/photos"])
    GlobalHydra.instance().clear()
    node = OmegaConf.select(cfg, f"model.{group}" if group in ("optimizer", "scheduler") else group)
    values = OmegaConf.to_container(node, resolve=False)
    assert isinstance(values, dict)
    return values


def option_keys() -> Iterator[Any]:
    for group in ("data", "model", "optimizer", "scheduler", "trainer", "callbacks", "logger"):
        for option in group_options(group):
            if group == "trainer" and option in ("gpu", "ddp"):
                continue  # the same keys as default/cpu, with values this machine cannot run
            node = composed_option(group, option)
            if group == "model":
                node.pop("optimizer", None), node.pop("scheduler", None)  # their own groups' keys
            # The optimizer and scheduler options are placed under model (# @package model.<group>).
            prefix = f"model.{group}" if group in ("optimizer", "scheduler") else group
            for key, value in leaves(node, prefix):
                interpolated = isinstance(value, str) and value.startswith("${")
                if key not in NOT_INSTANTIATED and (key in ALTERNATIVES or not interpolated):
                    yield pytest.param(group, option, key, value, id=f"{option}:{key}")


_BASES: dict[tuple[str, str], tuple[DictConfig, dict]] = {}


def composed(group: str, option: str, tmp_path: Path) -> tuple[DictConfig, dict]:
    """The composed config of one option and the state of its objects (composed once per option)."""
    if (group, option) not in _BASES:
        overrides = [f"{group}={option}", "data.root=/photos", f"paths.root_dir={tmp_path}"]
        if group in ("model", "optimizer", "scheduler"):  # the small CNN builds in milliseconds
            overrides += ["model.name=small_cnn", "++model.cnn_channels=[4,8]"]
        cfg = compose_config("train", overrides, tmp_path)
        _BASES[group, option] = cfg, state(build(group, cfg))
    return _BASES[group, option]


@pytest.mark.usefixtures("hydra_init")
@pytest.mark.parametrize(("group", "option", "key", "default"), list(option_keys()))
def test_every_config_key_reaches_its_object(
    group: str, option: str, key: str, default: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    base, before = composed(group, option, tmp_path_factory.getbasetemp())
    new = changed(key, default)
    cfg = base.copy()
    OmegaConf.update(cfg, key, new, merge=False)
    after = build(group, cfg)
    top = ".".join(key.split(".")[:2])
    if group in ("data", "model") and top not in SETTINGS_OBJECTS:
        # Kept in hparams and read from there when used.
        value = after[0].hparams
        for part in key.split(".")[1:]:
            value = value[part]
        assert value == new, f"{key}={new!r} reached {type(after[0]).__name__} as {value!r}"
        return
    # Settings objects (data.prepare.*, data.augment.*) and third-party objects: the object's own state.
    assert state(after) != before, f"{key}={new!r} changed nothing in {type(after[0]).__name__}"
    if not isinstance(new, bool) and group != "scheduler":  # a schedule shows its keys in its rates only
        assert holds(after, new), f"{key}={new!r} is not what {type(after[0]).__name__} holds"


def _hydra_literal(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_hydra_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_hydra_literal(v) for v in value) + "]"
    return str(value)
