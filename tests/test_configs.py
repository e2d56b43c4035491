"""Every option of every config group composes, and the objects it names can be built."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate

from mushroom.config_checks import RENAMED_KEYS_REMOVED_IN
from mushroom.configs import group_options
from mushroom.runtime import instantiate_all
from mushroom.tracking import prepare_wandb
from tests.conftest import ENTRY_POINTS, REPO, compose_config
from tests.helpers import make_distinct_folder

options = group_options


def test_groups_have_the_documented_options() -> None:
    assert {"genus", "folder"} <= set(options("data"))
    assert {"resnet50", "efficientnet_lite0", "cnn"} <= set(options("model"))
    assert {"default", "cpu", "gpu", "ddp"} <= set(options("trainer"))
    assert {"csv", "tensorboard", "wandb"} <= set(options("logger"))
    assert {"real_photos_cpu"} <= set(options("experiment"))


@pytest.mark.usefixtures("hydra_init")
def test_defaults_are_genus_resnet50_csv(tmp_path: Path) -> None:
    cfg = compose_config("train", [], tmp_path)
    assert cfg.model.name == "resnet50.a1_in1k" and cfg.model.pretrained
    assert cfg.data.kaggle_handle == "maysee/mushrooms-classification-common-genuss-images/versions/1"
    assert cfg.data.root.endswith("data/raw/genus")
    assert cfg.trainer.accelerator == "auto"
    assert list(cfg.logger) == ["csv"]
    assert cfg.callbacks.model_checkpoint.dirpath == f"{tmp_path}/checkpoints"


@pytest.mark.usefixtures("hydra_init")
def test_an_experiment_sets_train_s_own_keys_and_the_command_line_still_wins(tmp_path: Path) -> None:
    """train.yaml's own keys (calibration.*) come before the experiment: real_photos_cpu's stricter thresholds
    were silently replaced by the defaults when train.yaml's _self_ came last."""
    recipe = ["experiment=real_photos_cpu", "data.root=/photos"]
    cfg = compose_config("train", recipe, tmp_path)
    assert (cfg.calibration.open_set_tpr, cfg.calibration.dangerous_target) == (0.825, 0.01)
    assert cfg.calibration.deadly_risk == 0.01
    assert (cfg.data.image_size, cfg.data.prepare.cache_size) == (288, 256)
    # Validated on sources it does not train on; tested at random unless split_by_source asks for more.
    assert (cfg.data.prepare.validate_by_source, cfg.data.prepare.split_by_source) == (True, False)
    # The head alone for 2 epochs, then the last two stages with it; the stages below stay frozen.
    assert (cfg.model.head_only_epochs, cfg.trainer.max_epochs, cfg.model.backbone_lr_scale) == (2, 12, 0.15)
    assert list(cfg.model.freeze) == ["conv_stem", "bn1", *(f"blocks.{i}" for i in range(5))]
    cfg = compose_config("train", [*recipe, "calibration.open_set_tpr=0.8", "model.freeze=[]"], tmp_path)
    assert cfg.calibration.open_set_tpr == 0.8 and list(cfg.model.freeze) == []
    assert compose_config("train", [], tmp_path).calibration.open_set_tpr == 0.95


@pytest.mark.usefixtures("hydra_init")
def test_real_photos_cpu_fine_tunes_the_last_two_stages_of_lite0(tmp_path: Path) -> None:
    """The recipe's frozen modules exist in its network (CI never trains the real recipe), and what is left to
    learn is the last two stages, the last convolution and the head."""
    import timm

    cfg = compose_config("train", ["experiment=real_photos_cpu", "data.root=/photos"], tmp_path)
    net = timm.create_model(cfg.model.name, pretrained=False)
    modules = dict(net.named_modules())
    assert all(name in modules for name in cfg.model.freeze)
    frozen = tuple(f"{name}." for name in cfg.model.freeze)
    learning = {name.split(".")[0] + (f".{name.split('.')[1]}" if name.startswith("blocks.") else "")
                for name, _ in net.named_parameters() if not name.startswith(frozen)}  # fmt: skip
    assert learning == {"blocks.5", "blocks.6", "conv_head", "bn2", "classifier"}


@pytest.mark.usefixtures("hydra_init")
@pytest.mark.parametrize("data", options("data"))
def test_data_options_compose(data: str, tmp_path: Path, toy_folder: Path) -> None:
    root, expected = toy_folder, ["Amanita", "Boletus", "Lactarius"]
    if data == "safety":  # labels come from safety folders anywhere on the path
        root = make_distinct_folder(tmp_path / "safety" / "Classes", {"Edible": 10, "Deadly": 10}).parent
        expected = ["deadly", "edible"]
    overrides = [f"data={data}", f"data.root={root}", "data.num_workers=0", f"paths.root_dir={tmp_path}"]
    overrides += ["data.open_set.other_genera=[]", "data.open_set.not_mushroom=[]"]  # (test_negatives.py)
    dm = instantiate(compose_config("train", overrides, tmp_path).data, _convert_="all")
    dm.prepare_data()
    dm.setup()
    assert dm.class_names == expected


@pytest.mark.usefixtures("hydra_init")
@pytest.mark.parametrize("model", options("model"))
def test_model_options_build_a_network(model: str, tmp_path: Path) -> None:
    cfg = compose_config("train", [f"model={model}", "model.pretrained=false"], tmp_path)
    # Built for the data's size, as training builds it (a ViT's input size is fixed when it is built).
    module = instantiate(
        cfg.model, class_names=["a", "b"], preprocessing={"image_size": 56}, _convert_="all"
    ).eval()
    with torch.no_grad():
        assert module(torch.rand(1, 3, 56, 56)).shape == (1, 2)


@pytest.mark.usefixtures("hydra_init")
@pytest.mark.parametrize("trainer", options("trainer"))
def test_trainer_options_compose(trainer: str, tmp_path: Path) -> None:
    cfg = compose_config("train", [f"trainer={trainer}"], tmp_path)
    assert cfg.trainer._target_ == "lightning.pytorch.Trainer"
    if trainer in ("default", "cpu"):
        assert isinstance(instantiate(cfg.trainer, logger=False), L.Trainer)
    if trainer == "ddp":
        assert cfg.trainer.strategy == "ddp"


@pytest.mark.usefixtures("hydra_init")
@pytest.mark.parametrize("logger", options("logger"))
def test_logger_options_instantiate(logger: str, tmp_path: Path) -> None:
    cfg = compose_config("train", [f"logger={logger}"], tmp_path)
    prepare_wandb(cfg.get("logger"))
    loggers = instantiate_all(cfg.get("logger"))
    assert len(loggers) == (0 if logger == "none" else 1)


@pytest.mark.usefixtures("hydra_init")
@pytest.mark.parametrize("callbacks", options("callbacks"))
def test_callback_options_instantiate(callbacks: str, tmp_path: Path) -> None:
    cfg = compose_config("train", [f"callbacks={callbacks}"], tmp_path)
    built = instantiate_all(cfg.get("callbacks"))
    assert len(built) == len(cfg.get("callbacks") or {})
    assert all(isinstance(c, L.Callback) for c in built)
    if callbacks == "default":
        assert {type(c).__name__ for c in built} >= {"ModelCheckpoint", "RichProgressBar"}


@pytest.mark.usefixtures("hydra_init")
@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiments_compose(experiment: str, tmp_path: Path) -> None:
    cfg = compose_config("train", [f"experiment={experiment}", "data.root=/some/photos"], tmp_path)
    assert cfg.data.root == "/some/photos"
    assert cfg.trainer.max_epochs >= 1


@pytest.mark.usefixtures("hydra_init")
def test_balanced_accuracy_picks_the_checkpoint_stops_early_and_drives_searches(tmp_path: Path) -> None:
    """The figure that is fair to rare genera decides everything; plain accuracy would favour common ones."""
    cfg = compose_config("train", ["callbacks=[model_checkpoint,early_stopping]"], tmp_path)
    assert cfg.optimized_metric == "val/balanced_acc"
    for name in ("model_checkpoint", "early_stopping"):
        assert (cfg.callbacks[name].monitor, cfg.callbacks[name].mode) == ("val/balanced_acc", "max")


@pytest.mark.usefixtures("hydra_init")
def test_paths_and_command_line_overrides(tmp_path: Path) -> None:
    cfg = compose_config(
        "train",
        ["model.optimizer.lr=3e-4", "trainer.max_epochs=20", "data.batch_size=64", "paths=default"],
        tmp_path,
    )
    assert cfg.model.optimizer.lr == pytest.approx(3e-4)
    assert cfg.trainer.max_epochs == 20 and cfg.data.batch_size == 64
    assert cfg.paths.output_dir == str(tmp_path)
    assert Path(cfg.paths.data_dir).is_absolute()


@pytest.mark.usefixtures("hydra_init")
def test_unknown_override_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigCompositionException, match="lrr"):
        compose_config("train", ["model.lrr=1"], tmp_path)


@pytest.mark.usefixtures("hydra_init")
def test_evaluate_config_composes(tmp_path: Path) -> None:
    cfg = compose_config("evaluate", ["model_path=x.ckpt", "data.root=/photos"], tmp_path)
    assert cfg.metrics_path == f"{tmp_path}/metrics.json"


@pytest.mark.usefixtures("hydra_init")
def test_old_key_names_still_work_for_one_release_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """ckpt_path, eval.tta, eval.abstain_threshold and eval.open_set_dirs reach their new keys."""
    from mushroom.config_checks import apply_renamed_keys

    old = ["ckpt_path=x.ckpt", "data.root=/photos", "eval.tta=true", "eval.abstain_threshold=0.7"]
    cfg = compose_config("evaluate", [*old, "eval.open_set_dirs=[cats]"], tmp_path)
    with pytest.warns(DeprecationWarning, match="ckpt_path is now called model_path"):
        apply_renamed_keys(cfg)
    assert (cfg.model_path, cfg.tta_hflip, cfg.abstain_threshold) == ("x.ckpt", True, 0.7)
    assert list(cfg.open_set_dirs) == ["cats"] and cfg.ckpt_path is None and cfg.eval.tta is None
    assert "eval.abstain_threshold is now called abstain_threshold" in caplog.text
    assert f"read until mushroom {RENAMED_KEYS_REMOVED_IN}" in caplog.text
    assert (
        f"until {RENAMED_KEYS_REMOVED_IN} (`config_checks.RENAMED_KEYS_REMOVED_IN`)"
        in (REPO / "CHANGELOG.md").read_text()
    )
    # train has no model_path: its ckpt_path (resume from) is left alone; its eval.* are calibration.*.
    train = compose_config(
        "train", ["ckpt_path=last", "eval.calibrate=false", "eval.open_set_tpr=0.9"], tmp_path
    )
    with pytest.warns(DeprecationWarning, match="eval.calibrate is now called calibration.enabled"):
        apply_renamed_keys(train)
    assert train.ckpt_path == "last" and train.eval.calibrate is None
    assert train.calibration.enabled is False and train.calibration.open_set_tpr == 0.9
    assert train.calibration.dangerous_target == 0.02  # not given: the default stays


@pytest.mark.slow
@pytest.mark.parametrize("module", sorted(ENTRY_POINTS))
def test_help_lists_its_own_groups_and_examples_that_run(module: str, tmp_path: Path) -> None:
    """Each entry point's --help lists the groups it composes (serve's once listed the trainer and the
    optimizer), with their options, and examples whose keys and options exist; train does not offer
    hparams_search, which it refuses."""
    import subprocess
    import sys

    from hydra import compose, initialize_config_module

    from mushroom.config_checks import command_line_error
    from mushroom.configs import group_options

    config = ENTRY_POINTS[module]
    result = subprocess.run(
        [sys.executable, "-m", f"mushroom.{module}", "--help"], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    header, _, rest = result.stdout.partition("== Groups (group=option) ==")
    groups_text = rest.partition("== Keys (key=value) ==")[0]
    listed = {line.split("=")[0].strip(): line for line in groups_text.splitlines() if "options:" in line}
    with initialize_config_module("mushroom.configs", version_base="1.3"):
        choices = compose(config, return_hydra_config=True).hydra.runtime.choices
    expected = {group for group in choices if not group.startswith("hydra")} - (
        {"hparams_search"} if config == "train" else set()
    )
    assert set(listed) == expected
    for group, line in listed.items():
        assert line.rstrip().endswith(", ".join(group_options(group)))
    examples = [line.strip() for line in header.splitlines() if line.startswith("  python -m mushroom.")]
    assert examples and header.startswith(f"python -m mushroom.{module}: ")
    for example in examples:
        words = example.split("#")[0].split()[3:]
        if example.split()[2] == f"mushroom.{module}" and "..." not in words:  # a search example on train
            assert command_line_error(config, words) is None, example
