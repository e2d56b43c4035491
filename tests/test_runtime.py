"""The entry points' error boundary: which exceptions are the user's to fix, and how they are told."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from hydra.errors import InstantiationException
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from mushroom.calibration import warn_about_calibration
from mushroom.config_checks import (
    ValueRangeError,
    _fits,
    _same_kind,
    _target_hint,
    check_value_ranges,
    command_line_error,
)
from mushroom.errors import MushroomError
from mushroom.runtime import user_error_message
from mushroom.schemas import COUNT, POSITIVE, PROBABILITY, DataConfig, Range, from_mapping


def raised(error: BaseException, cause: BaseException | None = None) -> BaseException:
    """``error``, raised from ``cause`` as Hydra raises it, so that ``__cause__`` is set."""
    try:
        raise error from cause
    except BaseException as caught:
        return caught


def missing_value() -> MissingMandatoryValue:
    try:
        OmegaConf.create({"data": {"root": "???"}}).data.root  # noqa: B018 - the access raises
    except MissingMandatoryValue as error:
        return error
    raise AssertionError("no error")


def test_a_mushroom_error_inside_instantiation_is_shown_alone() -> None:
    wrapped = raised(
        InstantiationException("Error in call to target 'x.Y':\nMushroomError(...)"), MushroomError("fix it")
    )
    assert user_error_message(wrapped) == "fix it"


def test_another_error_inside_instantiation_names_the_target_in_one_line() -> None:
    wrapped = raised(
        InstantiationException(
            "Error in call to target 'mushroom.models.Net':\nValueError('bad')\nfull_key: model"
        ),
        ValueError("num_classes must be > 1"),
    )
    message = user_error_message(wrapped)
    assert (
        message
        == "Could not build (mushroom.models.Net) from the config: ValueError: num_classes must be > 1"
    )


def test_a_missing_value_names_its_key() -> None:
    assert (
        user_error_message(missing_value())
        == "Missing value for data.root: add data.root=... to the command (it has no default)."
    )
    nested = raised(InstantiationException("Error in call to target 'x'"), missing_value())
    assert "Missing value for data.root" in str(user_error_message(nested))


def test_a_bug_is_not_dressed_up_as_a_user_error() -> None:
    assert user_error_message(ValueError("a bug")) is None
    assert user_error_message(KeyError("a bug")) is None


@pytest.mark.parametrize(
    ("value", "default", "same"),
    [
        ("abc", 10, False), (2.5, 10, False), (3, 10, True), (True, 10, False),
        ("fast", 0.1, False), (1, 0.1, True), (1e-3, 0.1, True),
        (3, True, False), ("yes", False, False), (False, True, True),
        ("x", "y", True), (None, 10, True), (5, None, True), ("abc", None, True),
    ],
)  # fmt: skip
def test_which_values_may_replace_a_default(value: object, default: object, same: bool) -> None:
    assert _same_kind(value, default) is same


def test_calibration_on_few_images_is_called_unreliable(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        warn_about_calibration(images=4, temperature=1.4)
    assert "only 4 validation images" in caplog.text and "bound" not in caplog.text


@pytest.mark.parametrize("temperature", [20.0, 0.05])
def test_a_temperature_on_its_bound_is_called_out(
    caplog: pytest.LogCaptureFixture, temperature: float
) -> None:
    with caplog.at_level(logging.WARNING):
        warn_about_calibration(images=500, temperature=temperature)
    assert "sits on its bound" in caplog.text and "validation images" not in caplog.text


def test_enough_images_and_a_temperature_inside_its_bounds_say_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        warn_about_calibration(images=500, temperature=1.7)
    assert caplog.text == ""


@pytest.mark.usefixtures("hydra_init")
def test_types_come_from_the_class_a_config_node_builds(tmp_path: Path) -> None:
    """``trainer.devices`` takes ``auto``, a count or a list (Lightning's hint says so), although its
    default is 1; ``trainer.max_epochs`` takes a whole number or null."""
    from tests.conftest import compose_config

    defaults = compose_config("train", [], tmp_path)
    devices = _target_hint(defaults, "trainer.devices")
    assert _fits("auto", devices) and _fits(2, devices) and _fits([0, 1], devices)
    epochs = _target_hint(defaults, "trainer.max_epochs")
    assert _fits(None, epochs) and _fits(3, epochs) and not _fits("abc", epochs) and not _fits(2.5, epochs)
    precision = _target_hint(defaults, "trainer.precision")
    assert _fits("bf16-mixed", precision) and _fits(32, precision) and not _fits("fast", precision)
    lr = _target_hint(defaults, "model.optimizer.lr")  # torch.optim's float | Tensor: a number, not text
    assert _fits(3e-4, lr) and _fits(1, lr) and not _fits("fast", lr)
    assert _target_hint(defaults, "seed") is None  # no class builds the top level: its default decides


# -- value ranges and misspelt keys -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("allowed", "inside", "outside", "text"),
    [
        (COUNT, [1, 10**6], [0, -3], "at least 1"),
        (POSITIVE, [1e-9, 3], [0, -1.0], "above 0"),
        (PROBABILITY, [0, 0.5, 1], [-0.01, 1.01, float("nan")], "in [0, 1]"),
        (Range(0, 1, low_open=True, high_open=True), [0.2], [0, 1], "in (0, 1)"),
        (Range(high=5, high_open=True), [4.9, -100], [5], "below 5"),
    ],
)
def test_a_range_holds_its_ends_as_written(allowed: Range, inside: list, outside: list, text: str) -> None:
    assert all(value in allowed for value in [*inside, None, "text", True])  # not numbers: not its job
    assert not any(value in allowed for value in outside)
    assert str(allowed) == text


@pytest.mark.usefixtures("hydra_init")
@pytest.mark.parametrize(
    ("config", "override", "expected"),
    [
        ("train", "data.num_folds=1", "data.num_folds=1: must be at least 2."),
        ("train", "data.prepare.near_duplicate_distance=65", "must be in [0, 64]"),  # nested schema
        ("train", "model.scheduler.min_lr_ratio=2", "model.scheduler.min_lr_ratio=2: must be in [0, 1]."),
        ("train", "calibration.open_set_tpr=0", "calibration.open_set_tpr=0: must be in (0, 1]."),
        ("train", "eval.open_set_tpr=0", "eval.open_set_tpr=0: must be in (0, 1]."),  # the old name too
        ("serve", "server.max_connections=0", "server.max_connections=0: must be at least 1."),
    ],
)
def test_every_ranged_setting_is_checked_where_it_is_composed(
    tmp_path: Path, config: str, override: str, expected: str
) -> None:
    from tests.conftest import compose_config

    base = ["model_path=m.onnx"] if config == "serve" else []
    check_value_ranges(compose_config(config, base, tmp_path))  # the defaults are all in range
    with pytest.raises(ValueRangeError) as raised_error:
        check_value_ranges(compose_config(config, [*base, override], tmp_path))
    assert expected in str(raised_error.value)


def test_a_schema_built_in_code_checks_its_ranges_too() -> None:
    with pytest.raises(MushroomError, match=r"^data.batch_size=0: must be at least 1.$"):
        from_mapping(DataConfig, {"root": "photos", "batch_size": 0}, "data")
    with pytest.raises(MushroomError, match=r"data.augment.rotate=181.0: must be in \[0, 180\]"):
        from_mapping(DataConfig, {"root": "photos", "augment": {"rotate": 181.0}}, "data")


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("model.lrr", ["model.optimizer.lr"]),
        ("trainer.max_epoch", ["trainer.max_epochs"]),
        ("data.open_set.shar", ["data.open_set.share"]),
        ("modle", ["model"]),
        ("data.balanced_samplin", ["data.balanced_sampling"]),
        ("data.zzzz", []),
    ],
)
def test_a_misspelt_key_is_answered_with_the_closest_keys(tmp_path: Path, typed: str, expected: list) -> None:
    message = command_line_error("train", [typed + "=1"])
    assert message is not None and message.startswith(f"{typed}: no such key.")
    suggested = re.findall(r"[\w.]+", message.partition("Did you mean")[2].partition("?")[0])
    assert [word for word in suggested if word != "or"] == expected


def test_a_key_is_still_named_when_composing_for_suggestions_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suggestions come from a second composition; if that one fails too, the user still gets the
    first message (without suggestions), never the traceback of the second."""
    from hydra.errors import ConfigCompositionException

    from mushroom import config_checks

    compose = config_checks.compose
    calls: list[list[str]] = []

    def compose_once(*, config_name: str, overrides: list[str]) -> object:
        calls.append(overrides)
        if len(calls) > 1:
            raise ConfigCompositionException("the second composition failed")
        return compose(config_name=config_name, overrides=overrides)

    monkeypatch.setattr(config_checks, "compose", compose_once)
    assert command_line_error("train", ["trainer.max_epoch=3"]) == (
        "trainer.max_epoch: no such key. "
        "(`--cfg job` prints every key; +trainer.max_epoch=... adds a new one.)"
    )
    assert len(calls) == 2


def test_a_command_line_that_composes_is_left_to_hydra() -> None:
    assert command_line_error("train", ["data.batch_size=8", "model=cnn", "hydra.run.dir=x"]) is None
    assert command_line_error("train", ["-m", "data.fold=0,1,2"]) is None  # sweeps: Hydra expands them
    assert command_line_error("train", ["--cfg", "job", "model.optimizer.lr=1e-3"]) is None
    assert "no such option" in (command_line_error("train", ["callbacks=[default,emma]"]) or "")


def test_a_group_the_command_does_not_compose_is_named_with_the_commands_that_do() -> None:
    """``python -m mushroom.data.prepare experiment=real_photos_cpu`` (preparing the data a recipe will train
    on) ended in a 20-line traceback: the message's own second composition raised again."""
    assert command_line_error("prepare", ["experiment=real_photos_cpu", "data.root=photos"]) == (
        "experiment=real_photos_cpu: the prepare command has no experiment choice. Give the keys it does "
        "take (`--help` lists them), or run a command that takes experiment=...: "
        "`python -m mushroom.search`, `python -m mushroom.train`."
    )
    appended = command_line_error("prepare", ["+experiment=real_photos_cpu"])
    assert appended is not None
    assert appended.startswith("experiment=real_photos_cpu sets model, which the prepare command does not")
    serve = command_line_error("serve", ["model=cnn"]) or ""
    assert serve.startswith("model=cnn: the serve command has no model choice.")
    assert "`python -m mushroom.train`" in serve and "mushroom.serve`" not in serve
    # train composes hparams_search only to say "run search": the message sends users to search alone
    search = command_line_error("evaluate", ["hparams_search=optuna"]) or ""
    assert search.endswith("takes hparams_search=...: `python -m mushroom.search`.")
