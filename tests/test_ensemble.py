"""``mushroom.ensemble``: several checkpoints as one model, its thresholds fitted again, one ONNX graph."""

from __future__ import annotations

import logging
import re
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
from mushroom.ensemble import fitted_ensemble, shared_validation, validation_scores
from mushroom.errors import MushroomError
from mushroom.inference import collect_scores
from mushroom.models.ensemble import Ensemble
from tests.conftest import make_image_folder, run_export, run_train
from tests.helpers import datamodule_of


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
    return collect_scores(load_classifier(checkpoint), datamodule_of(checkpoint).val_dataloader())


def copy_with(checkpoint: Path, out: Path, **hyper_parameters: object) -> Path:
    """A copy of ``checkpoint`` at ``out`` with some of its model's hyper-parameters replaced."""
    stored = torch.load(checkpoint, weights_only=False)
    stored["hyper_parameters"].update(hyper_parameters)
    torch.save(stored, out)
    return out


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
    with pytest.raises(
        MushroomError, match=r"^An ensemble needs two models or more: give ensemble_with=\[\.\.\.\]\.$"
    ):
        Ensemble([first])
    mine = first.hparams["preprocessing"]
    third = load_classifier(two_members[1])
    third.hparams["preprocessing"] = {**mine, "mean": [0.5, 0.25, 0.125], "std": [0.5, 0.5, 0.5]}

    def hydra_list(values: list[float]) -> str:  # one command-line word: no spaces
        return re.escape("[" + ",".join(map(str, values)) + "]")

    # Every setting that differs, the member named by its place, the fix as overrides to paste.
    with pytest.raises(
        MushroomError,
        match=rf"^Member 2 reads its photos otherwise than the first \(mean \[0\.5, 0\.25, 0\.125\] against "
        rf"{re.escape(str(list(mine['mean'])))}, std \[0\.5, 0\.5, 0\.5\] against "
        rf"{re.escape(str(list(mine['std'])))}\): one graph takes one input\. Train it with "
        rf"data\.mean={hydra_list(mine['mean'])} data\.std={hydra_list(mine['std'])}\.$",
    ):
        Ensemble([first, second, third])
    second.hparams["preprocessing"] = {**second.hparams["preprocessing"], "image_size": 40}
    with pytest.raises(MushroomError, match=r"image_size 40 against 32.*Train it with data.image_size=32\."):
        Ensemble([first, second])
    second.hparams["open_set_classes"] = 0  # trained without negatives
    with pytest.raises(
        MushroomError,
        match=r"^Member 1 and the first were not trained on the same kinds of negatives: their open-set "
        r"scores do not mean the same\. Train the members with the same data\.open_set\.$",
    ):
        Ensemble([first, second])
    second.hparams["class_names"] = second.class_names = ["Amanita", "Boletus"]
    with pytest.raises(
        MushroomError,
        match=r"^Member 1 answers in the classes \['Amanita', 'Boletus'\], the first in "
        r"\['Amanita', 'Boletus', 'Lactarius'\]: an ensemble averages answers in one set of classes\. Train "
        r"the members on the same data\.$",
    ):
        Ensemble([first, second])


def test_members_validated_on_other_photos_are_refused(two_members: list[Path], tmp_path: Path) -> None:
    checkpoint = torch.load(two_members[1], weights_only=False)
    data = checkpoint["datamodule_hyper_parameters"]
    seed, val_fraction = data["seed"], data["val_fraction"]
    data.update(seed=seed + 1, val_fraction=0.3)  # another split of the same photos
    other_split = tmp_path / "other-split.ckpt"
    torch.save(checkpoint, other_split)
    differ = (
        rf"^{re.escape(str(other_split))} was validated on other photos than "
        rf"{re.escape(str(two_members[0]))} \(val_fraction: {val_fraction} against 0\.3, seed: {seed} "
        rf"against {seed + 1}\)\. The ensemble's "
        r"thresholds are fitted on photos no member trained on, so the members share one split: train it "
        rf"again with data\.val_fraction={val_fraction} data\.seed={seed} \(data\.seed follows seed unless "
        r"given: seed=7 data\.seed=42 is another model on the same split\)\.$"
    )
    with pytest.raises(MushroomError, match=differ):  # the second member shares the first's split
        shared_validation([*two_members, other_split])
    first = torch.load(two_members[0], weights_only=False)["datamodule_hyper_parameters"]
    assert shared_validation(two_members) == first
    del checkpoint["datamodule_hyper_parameters"]  # not written by mushroom.train
    torch.save(checkpoint, other_split)
    with pytest.raises(
        MushroomError,
        match=r"holds no data settings \(it was not written by mushroom\.train with its data module\), so "
        r"the photos it was validated on are unknown and the ensemble's thresholds cannot be fitted\.$",
    ):
        shared_validation([two_members[0], other_split])


def test_without_its_run_the_rules_must_be_given(two_members: list[Path], tmp_path: Path) -> None:
    moved = tmp_path / "best.ckpt"  # no config.yaml beside a checkpoints/ folder
    shutil.copy(two_members[0], moved)
    with pytest.raises(
        MushroomError,
        match=r"Give them as the members were trained: calibration\.dangerous_target=\.\.\. "
        r"calibration\.open_set_tpr=\.\.\. calibration\.deadly_risk=\.\.\.$",
    ):
        fitted_ensemble([moved, two_members[1]], {}, None)
    _, info = fitted_ensemble([moved, two_members[1]], {"dangerous_target": 1.0, "open_set_tpr": 0.5}, None)
    assert info.abstain_threshold == 0.0  # a target no threshold is needed for
    assert info.open_set_threshold is not None


def test_a_changed_folder_or_no_validation_photos_is_refused(two_members: list[Path], tmp_path: Path) -> None:
    """The thresholds are fitted on the members' validation photos rebuilt from their data settings: a
    folder that gained a genus since, or settings that hold no validation photos, cannot rebuild them."""
    settings = shared_validation(two_members)
    ensemble = Ensemble([load_classifier(path) for path in two_members]).eval()
    grown = shutil.copytree(settings["root"], tmp_path / "grown")
    make_image_folder(grown, classes=("Russula",), per_class=30, size=(40, 40), seed=9)
    changed = (
        f"^The members' data at {re.escape(str(grown))} now holds the classes "
        r"\['Amanita', 'Boletus', 'Lactarius', 'Russula'\], not the \['Amanita', 'Boletus', 'Lactarius'\] "
        r"they were trained on: the folder changed since training\.$"
    )
    with pytest.raises(MushroomError, match=changed):
        validation_scores(ensemble, {**settings, "root": str(grown)})
    with pytest.raises(
        MushroomError,
        match=r"^The members were trained without validation photos \(data\.val_fraction=0\): the "
        r"ensemble's thresholds have nothing to be fitted on\. Train them with validation photos\.$",
    ):
        validation_scores(ensemble, {**settings, "val_fraction": 0.0})
    labels = validation_scores(ensemble, settings)[2]  # unchanged: the members' own validation photos
    np.testing.assert_array_equal(labels, validation_scores_of(two_members[0])[2])


def test_the_rules_given_are_fitted_with_the_members_deadly_genera(
    two_members: list[Path], tmp_path: Path
) -> None:
    """A deadly-risk rule given is fitted with and exported; members trained without a safety table (no
    genus known to be deadly) get no "not sure" threshold, as training would fit none for them."""
    rules = {"dangerous_target": 0.02, "open_set_tpr": 0.8, "deadly_risk": 0.3}
    _, info = fitted_ensemble(two_members, rules, None)
    scores = [validation_scores_of(path) for path in two_members]
    expected = fit_thresholds(
        np.mean([s[0] for s in scores], axis=0),
        np.mean([s[1] for s in scores], axis=0),
        scores[0][2],
        np.asarray(load_classifier(two_members[0]).hparams["deadly"]),
        **rules,
    )
    assert info.deadly_risk == 0.3
    assert info.abstain_threshold == pytest.approx(expected["abstain_threshold"])
    unsafe = [
        copy_with(path, tmp_path / f"member-{i}.ckpt", deadly=None) for i, path in enumerate(two_members)
    ]
    _, info = fitted_ensemble(unsafe, rules, None)
    assert info.abstain_threshold is None and info.deadly_risk is None
    assert info.open_set_threshold == pytest.approx(expected["open_set_threshold"])


def test_what_the_ensemble_says_of_its_members(
    two_members: list[Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Where it came from, the safety table of its genera, mirror-image averaging only where every member
    was trained with it, and a log line with the photos its thresholds were fitted on."""
    rules: dict[str, float | None] = {"dangerous_target": 0.02, "open_set_tpr": 0.8}
    safety = {"Amanita": {"deadly": True}, "Boletus": {"deadly": False}, "Russula": {"deadly": False}}
    mirrored = [
        copy_with(path, tmp_path / f"member-{i}.ckpt", tta_hflip=hflip)
        for i, (path, hflip) in enumerate(zip(two_members, (True, False), strict=True))
    ]
    caplog.set_level(logging.INFO, logger="mushroom.ensemble")
    _, info = fitted_ensemble(mirrored, rules, safety)
    assert info.source == f"{mirrored[0]} + {mirrored[1]}"
    assert info.safety == {"Amanita": {"deadly": True}, "Boletus": {"deadly": False}}
    assert info.tta_hflip is False  # the second member was not
    photos = len(validation_scores_of(two_members[0])[2])
    fitted = [r.getMessage() for r in caplog.records if r.name == "mushroom.ensemble"]
    assert fitted == [
        f"Fitted the ensemble of 2 on {photos} validation photos: "
        f"{{'abstain_threshold': {info.abstain_threshold}, 'open_set_threshold': {info.open_set_threshold}}}"
    ]
    _, info = fitted_ensemble([mirrored[0], mirrored[0]], rules, None)
    assert info.tta_hflip is True and info.safety == {}
