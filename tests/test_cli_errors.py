"""Everyday mistakes at the command line end in one line that says what to do, exit 1, no traceback.

Each of these once ended in a 15-47-line traceback from deep inside Lightning, PyTorch, OmegaConf or
torchmetrics, or (worse) in a run that "succeeded" with a class it could never learn.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_image_folder
from tests.helpers import assert_one_clear_line, run_module

pytestmark = pytest.mark.slow  # end to end: subprocesses of the package's own commands


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("cli_errors") / "photos", per_class=8, size=(40, 40))


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("trainer.max_epochs=abc", "trainer.max_epochs=abc: expected a whole number or null."),
        ("trainer.max_epochs=2.5", "trainer.max_epochs=2.5: expected a whole number or null."),
        ("trainer.precision=fast", "trainer.precision=fast: expected one of 64, 32, 16 or one of"),
        ("model.optimizer.lr=fast", "model.optimizer.lr=fast: expected a number."),
        ("data.balanced_sampling=3", "data.balanced_sampling=3: expected true or false."),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_before_training(
    photos: Path, tmp_path: Path, override: str, expected: str
) -> None:
    assert_one_clear_line(
        "mushroom.train", "experiment=smoke", f"data.root={photos}", override, cwd=tmp_path, expected=expected
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("data.batch_size=-3", "data.batch_size=-3: must be at least 1."),
        ("model.optimizer.lr=-1", "model.optimizer.lr=-1: must be above 0."),
        ("data.augment.hflip=2", "data.augment.hflip=2.0: must be in [0, 1]."),
    ],
)
def test_a_value_out_of_range_is_refused_in_one_line(
    photos: Path, tmp_path: Path, override: str, expected: str
) -> None:
    """They ended in 68- and 86-line tracebacks from PyTorch's DataLoader and AdamW."""
    assert_one_clear_line(
        "mushroom.train", "experiment=smoke", f"data.root={photos}", override, cwd=tmp_path, expected=expected
    )


@pytest.mark.parametrize(
    ("module", "override", "expected"),
    [
        ("mushroom.train", "model.lrr=1", "model.lrr: no such key. Did you mean model.optimizer.lr?"),
        ("mushroom.train", "model=resnet5", "model=resnet5: no such option. Did you mean model=resnet50?"),
        ("mushroom.evaluate", "model_pth=best.ckpt", "model_pth: no such key. Did you mean model_path?"),
    ],
)
def test_a_misspelt_key_or_option_is_one_line_with_the_closest_ones(
    tmp_path: Path, module: str, override: str, expected: str
) -> None:
    """Hydra's own report was 7 lines and named no valid key."""
    assert_one_clear_line(module, override, cwd=tmp_path, expected=expected)


def test_a_default_that_follows_another_value_can_be_overridden(photos: Path, tmp_path: Path) -> None:
    """real_photos_cpu's data.open_set.root is ${data.root}/../open-set: switching the negatives off must not
    trip the type check over the interpolation (it raised InterpolationToMissingValueError)."""
    fast = ["model=cnn", "model.pretrained=false", "model.freeze=[]", "model.head_only_epochs=0"]
    command = [sys.executable, "-m", "mushroom.train", "experiment=real_photos_cpu", f"data.root={photos}"]
    done = subprocess.run(
        [*command, *fast, "data.open_set.root=null", "data.image_size=32", "+trainer.fast_dev_run=1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_predict_top_k_of_the_wrong_type(tmp_path: Path) -> None:
    assert_one_clear_line(
        "mushroom.predict", "model_path=model.onnx", "inputs=photos", "top_k=abc", cwd=tmp_path,
        expected="top_k=abc: expected a whole number, like its default top_k=3",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("module", "args", "key"),
    [
        ("mushroom.train", ["experiment=smoke"], "data.root"),
        ("mushroom.evaluate", ["data=folder", "data.root=photos"], "model_path"),
        ("mushroom.export", [], "model_path"),
    ],
)
def test_a_required_value_left_out_is_named(tmp_path: Path, module: str, args: list[str], key: str) -> None:
    assert_one_clear_line(module, *args, cwd=tmp_path, expected=f"Missing value for {key}: add {key}=...")


def test_predict_without_inputs(exported_model: Path, tmp_path: Path) -> None:
    assert_one_clear_line(
        "mushroom.predict", f"model_path={exported_model}", cwd=tmp_path, expected="Missing value for inputs"
    )


@pytest.mark.parametrize(
    ("module", "args"),
    [
        (
            "mushroom.evaluate",
            ["model_path=best.ckpt", "data=folder", "data.root=photos", "abstain_threshold=1.5"],
        ),
        ("mushroom.predict", ["model_path=model.onnx", "inputs=photos", "abstain_threshold=1.5"]),
    ],
)
def test_a_threshold_outside_0_and_1_is_refused_before_any_work(
    tmp_path: Path, module: str, args: list[str]
) -> None:
    assert_one_clear_line(
        module, *args, cwd=tmp_path, expected="=1.5: a confidence threshold is a probability"
    )


def test_serve_refuses_a_threshold_outside_0_and_1(exported_model: Path, tmp_path: Path) -> None:
    assert_one_clear_line(
        "mushroom.serve", f"model_path={exported_model}", "abstain_threshold=-0.2", cwd=tmp_path,
        expected="abstain_threshold=-0.2: a confidence threshold is a probability between 0 and 1",
    )  # fmt: skip


@pytest.mark.parametrize("prepare", [False, True], ids=["folder", "prepared"])
def test_a_class_whose_files_are_all_undecodable_is_refused(
    photos: Path, tmp_path: Path, prepare: bool
) -> None:
    """It once trained (rc 0) with a class of zero images, or silently without that class."""
    broken = tmp_path / "photos"
    shutil.copytree(photos, broken)
    for path in (broken / "Boletus").iterdir():
        path.write_bytes(b"not a jpeg")
    prepared = f"data.prepare.enabled={str(prepare).lower()}"
    assert_one_clear_line(
        "mushroom.train", "experiment=smoke", f"data.root={broken}", prepared,
        f"paths.data_dir={tmp_path / 'data'}", cwd=tmp_path, expected="Boletus",
    )  # fmt: skip


def test_a_single_class_folder_is_refused(photos: Path, tmp_path: Path) -> None:
    """It once ended in torchmetrics' "num_classes ... larger than 1" traceback."""
    single = tmp_path / "photos"
    shutil.copytree(photos / "Amanita", single / "Amanita")
    line = assert_one_clear_line(
        "mushroom.train", "experiment=smoke", f"data.root={single}", cwd=tmp_path,
        expected="a classifier needs at least two",
    )  # fmt: skip
    assert "(Amanita)" in line


def test_a_search_config_on_train_points_to_mushroom_search(tmp_path: Path) -> None:
    result = run_module(
        "mushroom.train", "hparams_search=optuna", "data=folder", f"data.root={tmp_path}", cwd=tmp_path
    )
    assert result.returncode == 1
    assert "python -m mushroom.search" in result.stderr + result.stdout
