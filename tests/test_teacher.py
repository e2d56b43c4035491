"""Distillation from a frozen teacher: cross-fitted soft targets, their cache, the loss, a run that learns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn import functional as F

from mushroom.data import MushroomDataModule
from mushroom.data import teacher as teacher_module
from mushroom.data.teacher import cross_fitted_probabilities, frozen_features
from mushroom.errors import MushroomError
from mushroom.models import MushroomClassifier
from tests.conftest import FAST_TRAIN, compose_config, make_image_folder, make_negatives, run_train

#: A teacher small enough for tests: timm's test ViT, random weights, 32-px inputs.
TINY_TEACHER = ["data.teacher.name=test_vit", "data.teacher.pretrained=false", "data.teacher.input_size=32"]


def _two_clusters(rng: np.random.Generator, per_class: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Class 0 around the first axis, class 1 around the second, in 3 dimensions (the third stays 0)."""
    centres = np.array([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    labels = np.repeat([0, 1], per_class)
    features = centres[labels] + rng.normal(0, 1, (len(labels), 3)) * [1, 1, 0]
    return features, labels


def test_each_photo_is_taught_by_a_probe_that_never_saw_it() -> None:
    """A photo of class 1 alone along the third axis: a probe fitted on it learns "third axis -> class 1"
    and hands its label back; the cross-fitted probe has never seen that axis and cannot."""
    features, labels = _two_clusters(np.random.default_rng(0))
    features = np.vstack([features, [0.0, 0.0, 6.0]])
    labels = np.append(labels, 1)
    groups = [f"photo {i}" for i in range(len(labels))]

    probs = cross_fitted_probabilities(features, labels, groups, num_outputs=3, folds=5, strength=100.0)

    assert probs.shape == (41, 3) and np.allclose(probs.sum(1), 1)
    assert np.all(probs[:, 2] == 0)  # an output no photo has
    assert (probs[:40].argmax(1) == labels[:40]).mean() > 0.9
    from sklearn.linear_model import LogisticRegression

    in_sample = LogisticRegression(C=100.0, max_iter=3000).fit(features, labels).predict_proba(features)
    assert in_sample[-1, 1] > 0.95  # what a probe that saw it says
    assert probs[-1, 1] < 0.8


def test_duplicates_are_held_out_together() -> None:
    """Four copies of that lone photo in one duplicate group: none may teach another (split apart, each would
    be taught its label back by a probe that learnt it from a copy: 0.99)."""
    features, labels = _two_clusters(np.random.default_rng(1))
    copies = np.column_stack([np.zeros((4, 2)), 6 + 0.1 * np.arange(4)])
    features, labels = np.vstack([features, copies]), np.append(labels, [1] * 4)
    groups = [f"photo {i}" for i in range(40)] + ["copies"] * 4

    probs = cross_fitted_probabilities(features, labels, groups, num_outputs=2, folds=5, strength=100.0)

    assert np.all(probs[-4:, 1] < 0.8)


def test_too_few_photos_of_an_output_to_cross_fit_is_refused() -> None:
    features, labels = _two_clusters(np.random.default_rng(2))
    features, labels = np.vstack([features, [1.0, 1.0, 1.0]]), np.append(labels, 2)
    with pytest.raises(MushroomError, match="two training photos of each output"):
        cross_fitted_probabilities(
            features, labels, [str(i) for i in range(41)], num_outputs=3, folds=5, strength=0.1
        )


def test_a_teacher_timm_cannot_build_is_named_with_the_fix(tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8)).save(photo)
    with pytest.raises(MushroomError, match=r"data\.teacher\.name=no_such_network: timm could not build it"):
        frozen_features("no_such_network", [photo], 32, pretrained=False)


def test_features_are_mirror_invariant_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    left = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
    paths = [tmp_path / "photo.png", tmp_path / "mirror.png", tmp_path / "other.png"]
    Image.fromarray(left).save(paths[0])
    Image.fromarray(left[:, ::-1].copy()).save(paths[1])
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(paths[2])
    cache = tmp_path / "cache" / "teacher.npz"

    torch.manual_seed(0)
    first = frozen_features("test_vit", paths, 32, pretrained=False, cache=cache)
    assert first.shape == (3, 128)  # class token and mean patch token, 64 each
    assert np.allclose(first[0], first[1], atol=1e-5)  # a photo and its mirror image: one answer
    assert not np.allclose(first[0], first[2], atol=1e-3)

    computed: list[int] = []
    real = teacher_module._features

    def counting(model_name: str, chosen: list[Path], *args: object) -> np.ndarray:
        computed.append(len(chosen))
        return real(model_name, chosen, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(teacher_module, "_features", counting)
    again = frozen_features("test_vit", paths, 32, pretrained=False, cache=cache)
    assert computed == [] and np.array_equal(again, first)  # every photo from the cache
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(paths[2])  # a photo changed
    frozen_features("test_vit", paths, 32, pretrained=False, cache=cache)
    assert computed == [1]


def test_the_distillation_loss_is_least_where_the_student_agrees_with_the_teacher() -> None:
    model = MushroomClassifier(["a", "b", "c"], name="small_cnn", cnn_channels=[4], distill_temperature=2.0)
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.5, -0.5]], requires_grad=True)
    # softmax(log softmax(z) / T) = softmax(z / T): this teacher, softened, is the student softened.
    agreeing = logits.detach().softmax(-1)
    loss = model.distillation(logits, agreeing)
    (gradient,) = torch.autograd.grad(loss, logits)
    assert torch.allclose(gradient, torch.zeros_like(gradient), atol=1e-6)
    # Its value: T^2 x the cross-entropy of the softened logits against the softened teacher.
    teacher = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    softened = (teacher.log() / 2).softmax(-1)
    expected = 4 * F.cross_entropy(logits.detach() / 2, softened)
    assert torch.allclose(model.distillation(logits.detach(), teacher), expected)


def test_each_training_photo_carries_its_own_targets(
    toy_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Known photos and negatives, drawn in the sampler's order: each item's row is the one the teacher gave
    that photo (here a row computed from its path), not a neighbour's."""
    negatives = make_negatives(tmp_path / "negatives", not_mushrooms=12, per_genus=4, genera=3)

    def by_path(settings: object, paths: list[Path], *args: object, **kwargs: object) -> np.ndarray:
        return np.stack([_row_of(path) for path in paths])

    monkeypatch.setattr(teacher_module, "teacher_targets", by_path)
    dm = MushroomDataModule(
        toy_folder,
        image_size=32,
        batch_size=8,
        num_workers=0,
        open_set={"root": str(negatives)},
        teacher={"name": "any"},
    )
    loader = dm.train_dataloader()
    dataset = loader.dataset
    assert any(label >= 3 for label in dataset.labels)  # negatives among them
    for epoch, index in list(iter(loader.sampler))[:40]:
        _, _, row = dataset[(epoch, index)]
        assert torch.equal(row, torch.as_tensor(_row_of(dataset.paths[index]), dtype=torch.float32))
    assert len(next(iter(dm.val_dataloader()))) == 2  # validation is judged on the labels alone


def _row_of(path: Path) -> np.ndarray:
    """Five numbers that differ from photo to photo, summing to 1."""
    digits = np.frombuffer(str(path).encode(), dtype=np.uint8)[-5:].astype(np.float64) + 1
    return digits / digits.sum()


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")  # a step outside a Trainer
def test_the_loss_mixes_labels_and_teacher_in_the_share_given() -> None:
    model = MushroomClassifier(["a", "b", "c"], name="small_cnn", cnn_channels=[4], distill_weight=0.25)
    model.eval()  # no dropout: the same logits twice
    images = torch.rand(4, 3, 32, 32)
    labels = torch.tensor([0, 1, 2, 0])
    teacher = torch.tensor([[0.1, 0.3, 0.6]] * 4)
    logits = model.all_logits(images)
    expected = 0.75 * model.loss(logits, labels) + 0.25 * model.distillation(logits, teacher)
    assert torch.allclose(model.training_step((images, labels, teacher), 0), expected)


def test_a_student_taught_by_the_teacher_alone_learns_the_genera(tmp_path: Path) -> None:
    """distill_weight=1: the labels never reach the loss, only the teacher's probabilities do. The student
    learns the genera only if each photo's targets are that photo's: with the rows shuffled it scores chance
    (0.33 on these 18 test photos), with them 0.72 (the labels themselves: 0.83)."""
    data = make_image_folder(tmp_path / "photos", per_class=30, size=(40, 40), seed=5)
    overrides = [
        f"data.root={data}",
        *TINY_TEACHER,
        "model.distill_weight=1.0",
        "trainer.max_epochs=5",
        "model.optimizer.lr=0.01",
    ]
    metrics = run_train(overrides, tmp_path / "run")
    assert metrics["test/acc"] >= 0.6


@pytest.mark.parametrize(
    ("extra", "advice"),
    [
        ([], r"set data\.teacher\.name"),
        ([*TINY_TEACHER, "model.mixup_alpha=0.2"], r"set model\.mixup_alpha=0"),
    ],
    ids=["no-teacher", "with-mixup"],
)
def test_distillation_it_cannot_do_says_what_to_set(
    extra: list[str], advice: str, toy_folder: Path, tmp_path: Path
) -> None:
    overrides = [f"data.root={toy_folder}", "model.distill_weight=0.5", "+trainer.fast_dev_run=1", *extra]
    with pytest.raises(MushroomError, match=advice):
        run_train(overrides, tmp_path)


@pytest.mark.parametrize(("weight", "kept"), [(0.0, False), (0.5, True)])
def test_a_teacher_that_would_teach_nothing_is_not_computed(
    weight: float,
    kept: bool,
    toy_folder: Path,
    tmp_path: Path,
    hydra_init: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from mushroom.train import build_datamodule

    overrides = [f"data.root={toy_folder}", *TINY_TEACHER, f"model.distill_weight={weight}"]
    datamodule = build_datamodule(compose_config("train", FAST_TRAIN + overrides, tmp_path))
    assert (datamodule.config.teacher.name == "test_vit") is kept
    assert datamodule.config.teacher.input_size == 32  # the rest of the teacher's settings kept
    assert ("would teach nothing" in caplog.text) is not kept
