"""``mushroom.ensemble``: several checkpoints as one model, its thresholds fitted again, one ONNX graph."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mushroom.calibration import fit_thresholds
from mushroom.checkpoints import load_classifier
from mushroom.core.images import find_images, load_rgb
from mushroom.core.onnx_model import OnnxClassifier
from mushroom.core.preprocessing import eval_preprocess
from mushroom.data import MushroomDataModule
from mushroom.ensemble import fitted_ensemble, shared_validation
from mushroom.errors import MushroomError
from mushroom.inference import collect_scores
from mushroom.models.ensemble import Ensemble
from tests.conftest import make_image_folder, run_export, run_train


@pytest.fixture(scope="module")
def two_members(open_set_run: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """:func:`open_set_run`'s checkpoint and one more trained on the same photos and split, another seed."""
    run, negatives = open_set_run
    data = torch.load(run / "checkpoints" / "best.ckpt", weights_only=False)["datamodule_hyper_parameters"]
    out = tmp_path_factory.mktemp("second-member")
    run_train(
        [
            f"data.root={data['root']}",
            f"data.open_set.root={negatives}",
            "data.val_fraction=0.25",
            "trainer.max_epochs=6",
            "model.optimizer.lr=0.01",
            "seed=5",
            f"data.seed={data['seed']}",  # data.seed follows seed unless given: the same split
        ],
        out,
    )
    return [run / "checkpoints" / "best.ckpt", out / "checkpoints" / "best.ckpt"]


def validation_scores_of(checkpoint: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One member's calibrated scores on its own validation photos, as a user would rebuild them."""
    settings = torch.load(checkpoint, weights_only=False)["datamodule_hyper_parameters"]
    datamodule = MushroomDataModule(**settings)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return collect_scores(load_classifier(checkpoint), datamodule.val_dataloader())


def test_a_model_averaged_with_itself_gets_its_own_thresholds_back(two_members: list[Path]) -> None:
    """The same validation photos, the same rules (read from the run's config.yaml), the same fit as
    training's: a split rebuilt wrongly or a rule misread would move the thresholds."""
    first = two_members[0]
    ensemble, info = fitted_ensemble([first, first], {}, None)
    member = load_classifier(first)
    assert member.fitted_open_set_threshold() is not None  # trained with negatives: both thresholds fitted
    assert info.abstain_threshold == pytest.approx(member.fitted_abstain_threshold())
    assert info.open_set_threshold == pytest.approx(member.fitted_open_set_threshold())
    assert info.class_names == member.class_names and info.temperature == 1.0
    images = torch.rand(5, 3, 32, 32)
    with torch.no_grad():
        for got, expected in zip(ensemble.predict_scores(images), member.predict_scores(images), strict=True):
            torch.testing.assert_close(got, expected)


def test_the_exported_ensemble_averages_its_members_and_fits_its_own_thresholds(
    two_members: list[Path], tmp_path: Path
) -> None:
    first, second = two_members
    photos = make_image_folder(tmp_path / "photos", per_class=4, size=(60, 50), seed=21)
    output = tmp_path / "ensemble.onnx"
    summary = run_export(
        [
            f"model_path={first}",
            f"ensemble_with=[{second}]",
            f"parity_dir={photos}",
            f"output_path={output}",
            "calibration.open_set_tpr=0.8",  # given: it wins over the run's own 0.95
        ],
        tmp_path,
    )
    assert summary["parity"]["passed"]
    exported = OnnxClassifier(output)
    members = [load_classifier(path) for path in two_members]
    batch = np.stack([eval_preprocess(load_rgb(p), exported.pre) for p in find_images([photos])])
    with torch.no_grad():
        each = [member.predict_scores(torch.from_numpy(batch)) for member in members]
    probs, open_set = exported.predict_scores(batch)
    np.testing.assert_allclose(probs, np.mean([p.numpy() for p, _ in each], axis=0), atol=1e-4)
    assert open_set is not None
    np.testing.assert_allclose(open_set, np.mean([o.numpy() for _, o in each], axis=0), atol=1e-4)
    # The thresholds are the ensemble's, fitted on the averaged validation scores by the rules.
    scores = [validation_scores_of(path) for path in two_members]
    assert (scores[0][2] == scores[1][2]).all()  # the same validation photos
    expected = fit_thresholds(
        np.mean([s[0] for s in scores], axis=0),
        np.mean([s[1] for s in scores], axis=0),
        scores[0][2],
        np.asarray(members[0].hparams["deadly"]),
        0.02,
        0.8,
        None,
    )
    assert exported.info.abstain_threshold == pytest.approx(expected["abstain_threshold"])
    assert exported.info.open_set_threshold == pytest.approx(expected["open_set_threshold"])
    assert exported.info.architecture == "ensemble of small_cnn + small_cnn"


def test_members_that_cannot_be_averaged_are_refused(two_members: list[Path], tmp_path: Path) -> None:
    first, second = (load_classifier(path) for path in two_members)
    with pytest.raises(MushroomError, match="needs two models or more"):
        Ensemble([first])
    second.hparams["preprocessing"] = {**second.hparams["preprocessing"], "image_size": 40}
    with pytest.raises(MushroomError, match=r"image_size 40 against 32.*Train it with data.image_size=32\."):
        Ensemble([first, second])
    second.hparams["open_set_classes"] = 0  # trained without negatives
    with pytest.raises(MushroomError, match="same kinds of negatives"):
        Ensemble([first, second])
    second.hparams["class_names"] = ["Amanita", "Boletus"]
    with pytest.raises(MushroomError, match="answers in the classes"):
        Ensemble([first, second])


def test_members_validated_on_other_photos_are_refused(two_members: list[Path], tmp_path: Path) -> None:
    checkpoint = torch.load(two_members[1], weights_only=False)
    checkpoint["datamodule_hyper_parameters"]["seed"] += 1  # another split of the same photos
    other_split = tmp_path / "other-split.ckpt"
    torch.save(checkpoint, other_split)
    with pytest.raises(MushroomError, match=r"validated on other photos .*seed: \d+ against \d+"):
        shared_validation([two_members[0], other_split])
    assert shared_validation(two_members)["root"] == checkpoint["datamodule_hyper_parameters"]["root"]
    del checkpoint["datamodule_hyper_parameters"]  # not written by mushroom.train
    torch.save(checkpoint, other_split)
    with pytest.raises(MushroomError, match="holds no data settings"):
        shared_validation([two_members[0], other_split])


def test_without_its_run_the_rules_must_be_given(two_members: list[Path], tmp_path: Path) -> None:
    moved = tmp_path / "best.ckpt"  # no config.yaml beside a checkpoints/ folder
    shutil.copy(two_members[0], moved)
    with pytest.raises(
        MushroomError, match=r"calibration\.dangerous_target=\.\.\. calibration\.open_set_tpr"
    ):
        fitted_ensemble([moved, two_members[1]], {}, None)
    _, info = fitted_ensemble([moved, two_members[1]], {"dangerous_target": 1.0, "open_set_tpr": 0.5}, None)
    assert info.abstain_threshold == 0.0  # a target no threshold is needed for
    assert info.open_set_threshold is not None
