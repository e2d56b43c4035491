"""The entry points' error boundary: which exceptions are the user's to fix, and how they are told."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hydra.errors import InstantiationException
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from mushroom.calibration import warn_about_calibration
from mushroom.errors import MushroomError
from mushroom.runtime import _fits, _same_kind, _target_hint, user_error_message


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
