"""Networks and the LightningModule: names, pretrained weights offline, freezing, learning rates."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from mushroom.errors import MushroomError
from mushroom.models import MushroomClassifier, create_network, network_preprocessing
from mushroom.models.schedules import warmup_cosine_factor as warmup_cosine
from tests.conftest import SHARED

HF_CACHE = SHARED / "weights" / "hf-cache"


def test_unknown_model_name_suggests_close_ones() -> None:
    with pytest.raises(MushroomError, match="resnet50"):
        create_network("resnet5O", num_classes=3)


@pytest.fixture
def hub_cache(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Point the Hugging Face hub at a cache folder, offline, as HF_HUB_CACHE=... HF_HUB_OFFLINE=1 would.

    huggingface_hub reads those variables once, at import; the tests patch what it read.
    """
    from huggingface_hub import constants

    def use(path: Path) -> None:
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(path))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    return use


def test_missing_pretrained_weights_name_the_ways_out(
    hub_cache: Callable[[Path], None], tmp_path: Path
) -> None:
    hub_cache(tmp_path)  # an empty cache, and no network
    with pytest.raises(MushroomError, match="Could not load pretrained weights") as missing:
        create_network("tf_efficientnet_lite0.in1k", num_classes=4, pretrained=True)
    message = str(missing.value)
    assert "model.pretrained=false" in message and "HF_HUB_CACHE" in message and "HF_HUB_OFFLINE" in message


@pytest.mark.skipif(not HF_CACHE.is_dir(), reason="needs ../shared/weights/hf-cache")
def test_pretrained_weights_load_offline_from_a_hub_cache(hub_cache: Callable[[Path], None]) -> None:
    import safetensors.torch

    hub_cache(HF_CACHE)
    net = create_network("tf_efficientnet_lite0.in1k", num_classes=4, pretrained=True)
    root = HF_CACHE / "models--timm--tf_efficientnet_lite0.in1k"
    reference = safetensors.torch.load_file(next(root.glob("snapshots/*/model.safetensors")))
    assert torch.equal(net.conv_stem.weight, reference["conv_stem.weight"])
    assert net.get_classifier().out_features == 4


@pytest.mark.slow
@pytest.mark.skipif(
    not (HF_CACHE / "models--timm--vit_small_patch14_dinov2.lvd142m").is_dir(),
    reason="needs the DINOv2 weights",
)
def test_dinov2_loads_its_weights_at_the_training_size_and_trains(
    hub_cache: Callable[[Path], None], toy_folder: Path, tmp_path: Path
) -> None:
    """model=dinov2_vits14 on the CPU: pretrained at 518 px, built at 56 px (its position embeddings
    resampled), and one real training step and test through mushroom.train."""
    import safetensors.torch

    from tests.conftest import run_train

    hub_cache(HF_CACHE)
    net = create_network("vit_small_patch14_dinov2.lvd142m", num_classes=3, pretrained=True, image_size=56)
    root = HF_CACHE / "models--timm--vit_small_patch14_dinov2.lvd142m"
    reference = safetensors.torch.load_file(next(root.glob("snapshots/*/model.safetensors")))
    assert torch.equal(net.blocks[0].attn.qkv.weight, reference["blocks.0.attn.qkv.weight"])
    assert net.pos_embed.shape[1] == 1 + 4 * 4  # 56 px / 14 = 4 x 4 patches (and the class token)
    run_train(
        [f"data.root={toy_folder}", "model=dinov2_vits14", "data.image_size=56", "+trainer.fast_dev_run=1"],
        tmp_path,
    )


def test_preprocessing_comes_from_the_pretrained_config() -> None:
    lite0 = network_preprocessing("tf_efficientnet_lite0.in1k")
    assert lite0["mean"] == (0.5, 0.5, 0.5) and lite0["image_size"] == 224
    resnet = network_preprocessing("resnet50.a1_in1k")
    assert resnet["mean"] == pytest.approx((0.485, 0.456, 0.406)) and resnet["crop_pct"] == 0.95


def small_timm_module(**kwargs: object) -> MushroomClassifier:
    return MushroomClassifier(["a", "b", "c"], name="tf_efficientnet_lite0", pretrained=False, **kwargs)


def test_frozen_modules_get_no_gradients_and_keep_batchnorm_statistics() -> None:
    module = small_timm_module(freeze=["conv_stem", "bn1", "blocks.0"])
    module.train()
    assert not module.net.bn1.training and not module.net.blocks[0].training
    assert module.net.blocks[1].training
    before = module.net.bn1.running_mean.clone()
    module(torch.rand(2, 3, 64, 64)).sum().backward()
    assert module.net.conv_stem.weight.grad is None
    assert module.net.blocks[1][0].conv_pw.weight.grad is not None
    assert torch.equal(before, module.net.bn1.running_mean)


def test_unknown_frozen_module_is_a_clear_error() -> None:
    with pytest.raises(MushroomError, match=r"block\.9"):
        small_timm_module(freeze=["block.9"])


def test_backbone_learns_slower_than_the_head_and_norms_skip_weight_decay() -> None:
    optimizer = {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3, "weight_decay": 0.05}
    module = small_timm_module(optimizer=optimizer, backbone_lr_scale=0.1)
    groups = module.build_optimizer().param_groups
    head = {id(p) for p in module.net.get_classifier().parameters()}
    for group in groups:
        is_head = all(id(p) in head for p in group["params"])
        assert group["lr"] == pytest.approx(1e-3 if is_head else 1e-4)
        assert group["weight_decay"] == (0.0 if group["params"][0].ndim == 1 else 0.05)
    assert sum(len(g["params"]) for g in groups) == len(list(module.parameters()))


def test_class_weighted_loss_up_weights_rare_classes() -> None:
    module = small_timm_module(class_weighted_loss=True, class_counts=[90, 10, 50])
    weights = module.class_weights
    assert weights[1] > weights[2] > weights[0]
    assert torch.allclose((weights * torch.tensor([90.0, 10.0, 50.0])).sum(), torch.tensor(150.0))


def test_the_danger_term_costs_only_harmless_answers_to_deadly_photos() -> None:
    """Classes a (deadly), b, c; photo 0 is an a, photo 1 a b. Only photo 0's mass on b and c costs."""
    module = small_timm_module(danger_weight=2.0, deadly=[True, False, False])
    logits = torch.tensor([[1.0, 2.0, 0.0], [0.0, 3.0, 1.0]])
    targets = torch.tensor([0, 1])
    p_deadly = logits[0].softmax(-1)[0]
    assert module.danger(logits, targets) == pytest.approx(float(-p_deadly.log() / 2))
    plain = torch.nn.functional.cross_entropy(
        logits, targets, label_smoothing=module.hparams["label_smoothing"]
    )
    assert module.loss(logits, targets) == pytest.approx(float(plain - 2.0 * p_deadly.log() / 2))
    # A batch without deadly photos, and the negatives' extra outputs, add nothing.
    assert module.danger(logits[1:], targets[1:]) == 0.0
    with_negatives = small_timm_module(danger_weight=1.0, deadly=[True, False, False], open_set_classes=2)
    wide = torch.tensor([[1.0, 2.0, 0.0, 5.0, 5.0]])
    expected = -wide.softmax(-1)[0, 0].log()
    assert with_negatives.danger(wide, torch.tensor([0])) == pytest.approx(float(expected))
    with pytest.raises(MushroomError, match="danger_weight needs the safety table"):
        small_timm_module(danger_weight=1.0, deadly=None)


def test_warmup_then_cosine() -> None:
    assert warmup_cosine(0, 10, 100, 0.0) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 100, 0.0) == pytest.approx(1.0)
    assert warmup_cosine(55, 10, 100, 0.0) == pytest.approx(0.5)
    assert warmup_cosine(100, 10, 100, 0.01) == pytest.approx(0.01)
    assert warmup_cosine(32, 10, 100, 0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 22 / 90)))
    assert warmup_cosine(55, 10, 100, 0.1) == pytest.approx(0.55)  # halfway between 1 and min_ratio
    assert warmup_cosine(150, 10, 100, 0.01) == pytest.approx(0.01)  # past the end it stays at the floor
    assert warmup_cosine(10, 9, 10, 0.0) == pytest.approx(0.0)  # one step of decay reaches the floor


def test_head_only_epochs_train_the_head_first_then_everything() -> None:
    module = small_timm_module(head_only_epochs=1, freeze=["conv_stem"])

    class FakeTrainer:
        current_epoch = 0

    module._trainer = FakeTrainer()  # type: ignore[assignment]
    module.train()
    module.on_train_epoch_start()
    assert not module.net.blocks[3].training and not module.net.blocks[3][0].conv_pw.weight.requires_grad
    assert module.net.get_classifier().weight.requires_grad

    FakeTrainer.current_epoch = 1
    module.train()
    module.on_train_epoch_start()
    assert module.net.blocks[3].training and module.net.blocks[3][0].conv_pw.weight.requires_grad
    assert not module.net.conv_stem.weight.requires_grad  # frozen for good stays frozen
    module._trainer = None


def test_a_probe_throughout_moves_the_head_and_nothing_else() -> None:
    """head_only_epochs = max_epochs (real_photos_cpu's frozen backbone): after a real fit, every backbone
    weight and BatchNorm statistic is what it was, the head is not, and the optimizer kept no state for the
    backbone (the frozen features cost no gradient)."""
    from lightning import Trainer
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    module = small_timm_module(head_only_epochs=2)
    head = module.net.get_classifier()
    head_ids = {id(p) for p in head.parameters()}
    before = {k: v.clone() for k, v in module.net.state_dict().items()}
    photos = TensorDataset(torch.rand(16, 3, 32, 32), torch.randint(0, 3, (16,)))
    trainer = Trainer(
        max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    trainer.fit(module, DataLoader(photos, batch_size=8))
    head_names = {name for name, p in module.net.named_parameters() if id(p) in head_ids}
    after = module.net.state_dict()
    moved = {name for name, value in after.items() if not torch.equal(value, before[name])}
    assert moved == head_names
    optimizer = trainer.optimizers[0]
    assert {id(p) for p in optimizer.state} == head_ids


def test_mirror_tta_averages_probabilities() -> None:
    module = small_timm_module(tta_hflip=True).eval()
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = (module(images).softmax(-1) + module(images.flip(-1)).softmax(-1)) / 2
        assert torch.allclose(module.predict_log_proba(images).exp(), expected, atol=1e-6)
        with pytest.warns(DeprecationWarning, match="predict_log_proba"):
            assert torch.equal(module.predict_logits(images), module.predict_log_proba(images))


def test_centre_view_enlarges_the_centre_share_of_the_image() -> None:
    from mushroom.models.tta import centre_enlarged

    images = torch.zeros(1, 3, 20, 20)
    images[..., 5:15, 5:15] = 1.0  # the centre half, and nothing else, is white
    assert torch.equal(centre_enlarged(images, 0.5), torch.ones(1, 3, 20, 20))
    wider = centre_enlarged(images, 0.8)  # the centre 16 px: a black frame 1 px wide, enlarged
    assert wider.shape == images.shape and 0 < wider.mean() < 1
    assert float(wider[0, 0, 10, 10]) == 1.0 and float(wider[0, 0, 0, 0]) == 0.0


@pytest.mark.parametrize("mirror", [False, True])
def test_centre_view_tta_averages_the_genus_over_both_views_and_scores_the_centre(mirror: bool) -> None:
    torch.manual_seed(0)
    module = small_timm_module(tta_hflip=mirror, tta_centre_crop=0.5, open_set_classes=2).eval()
    images = torch.rand(3, 3, 32, 32)
    centre = torch.nn.functional.interpolate(images[..., 8:24, 8:24], size=(32, 32), mode="bilinear")
    views = [images, centre] + ([images.flip(-1), centre.flip(-1)] if mirror else [])
    with torch.no_grad():
        probs, open_set = module.predict_scores(images)
        outputs = [module.all_logits(view) for view in views]
    expected = torch.stack([out[:, :3].softmax(-1) for out in outputs]).mean(0)
    assert torch.allclose(probs, expected, atol=1e-6)
    # The open set judges the centre alone (and its mirror image).
    known = torch.stack([out.softmax(-1)[:, :3].sum(-1) for out in outputs[1::2]]).mean(0)
    assert torch.allclose(open_set[:, 0], known, atol=1e-6)
    assert not torch.allclose(probs, outputs[0][:, :3].softmax(-1), atol=1e-4)  # the centre counted


def test_mixup_blends_images_and_targets_alike() -> None:
    from mushroom.models.mixing import Mixing

    torch.manual_seed(0)
    images = torch.stack([torch.full((3, 8, 8), float(i)) for i in range(4)])
    targets = torch.tensor([0, 1, 2, 0])
    mixed, soft = Mixing(mixup_alpha=0.4)(images, targets, num_classes=3)
    lam = float(soft[1, 1])  # image 1 is paired with image 2 (the batch reversed)
    assert torch.allclose(mixed[1], lam * images[1] + (1 - lam) * images[2])
    assert torch.allclose(soft.sum(dim=1), torch.ones(4))
    assert 0 < lam < 1


def test_cutmix_weighs_labels_by_the_pasted_area() -> None:
    from mushroom.models.mixing import Mixing

    torch.manual_seed(3)
    images = torch.stack([torch.zeros(3, 16, 16), torch.ones(3, 16, 16)])
    mixed, soft = Mixing(cutmix_alpha=1.0)(images, torch.tensor([0, 1]), num_classes=2)
    pasted = float(mixed[0].mean())  # share of image 0 now covered by image 1's ones
    assert 0 < pasted < 1
    assert math.isclose(float(soft[0, 1]), pasted, abs_tol=1e-6)
    assert math.isclose(float(soft[0, 0]), 1 - pasted, abs_tol=1e-6)


def test_mixing_off_gives_one_hot_targets() -> None:
    from mushroom.models.mixing import Mixing

    images = torch.rand(4, 3, 8, 8)
    mixed, soft = Mixing()(images, torch.tensor([0, 1, 1, 0]), num_classes=2)
    assert mixed is images
    assert soft.tolist() == [[1, 0], [0, 1], [0, 1], [1, 0]]


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x.mean(dim=(2, 3)), x.std(dim=(2, 3), correction=0)


def test_mixstyle_gives_each_photo_a_blend_of_batch_styles_and_keeps_its_content() -> None:
    from mushroom.models.mixstyle import MixStyle

    torch.manual_seed(0)
    content = torch.randn(6, 4, 8, 8)
    scale, shift = torch.rand(6, 4, 1, 1) * 3 + 0.5, torch.randn(6, 4, 1, 1) * 5  # six "sources"
    x = content * scale + shift
    mixstyle = MixStyle(prob=1.0, alpha=2.0).train()  # blend shares near a half
    y = mixstyle(x)
    (x_mean, x_std), (y_mean, y_std) = channel_stats(x), channel_stats(y)
    # Each output's statistics lie between the batch's (a convex blend of two photos'), and most moved.
    assert ((y_mean >= x_mean.min(0).values - 1e-4) & (y_mean <= x_mean.max(0).values + 1e-4)).all()
    assert ((y_std >= x_std.min(0).values - 1e-4) & (y_std <= x_std.max(0).values + 1e-4)).all()
    assert (y_mean - x_mean).abs().amax(1).gt(1e-2).sum() >= 3
    assert (y_std - x_std).abs().amax(1).gt(1e-2).sum() >= 3
    # What is left once the style is taken out is the photo's own content.
    assert torch.allclose((y - y_mean[..., None, None]) / y_std[..., None, None],
                          (x - x_mean[..., None, None]) / x_std[..., None, None], atol=1e-3)  # fmt: skip
    assert mixstyle.eval()(x) is x and MixStyle(prob=0.0, alpha=2.0).train()(x) is x


def test_mixstyle_mixes_the_named_layers_in_training_only_and_leaves_weights_alone() -> None:
    frozen = ["conv_stem", "bn1", "blocks.0", "blocks.1"]
    plain = small_timm_module(freeze=frozen, drop_rate=0.0, drop_path_rate=0.0)
    mixed_layers = ["blocks.1", "blocks.2"]
    module = small_timm_module(
        freeze=frozen, drop_rate=0.0, drop_path_rate=0.0, mixstyle_layers=mixed_layers, mixstyle_prob=1.0
    )
    module.load_state_dict(plain.state_dict())  # the same keys: checkpoints load either way
    images = torch.rand(4, 3, 64, 64)
    plain.eval(), module.eval()
    assert torch.allclose(module.all_logits(images), plain.all_logits(images))
    plain.train(), module.train()
    mixed = module.all_logits(images)
    assert not torch.allclose(mixed, plain.all_logits(images), atol=1e-4)
    mixed.sum().backward()
    # A frozen layer may be mixed, and stays frozen.
    assert module.net.blocks[1][0].conv_pw.weight.grad is None
    assert module.net.blocks[2][0].conv_pw.weight.grad is not None
    with pytest.raises(MushroomError, match=r"mixstyle_layers .*\['block\.2'\]"):
        small_timm_module(mixstyle_layers=["block.2"])


@pytest.fixture
def unreachable_hub(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """No network (the connection fails at the socket), no proxy, HF_HUB_OFFLINE not set; a cache folder."""
    import socket

    from huggingface_hub import constants

    def no_network(*args: object, **kwargs: object) -> socket.socket:
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", no_network)
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)

    def use(cache: Path) -> None:
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    return use


def test_an_unreachable_hub_fails_at_once_instead_of_retrying(
    unreachable_hub: Callable[[Path], None], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without HF_HUB_OFFLINE and without network, the hub client retried for most of a minute, logging
    53 lines, before the message. Now one failed connection sends it to the cache: an empty one here."""
    import time

    from huggingface_hub import constants

    unreachable_hub(tmp_path)
    start = time.perf_counter()
    with pytest.raises(MushroomError, match=r"huggingface\.co cannot be reached and the cache does not hold"):
        create_network("tf_efficientnet_lite0.in1k", num_classes=4, pretrained=True)
    assert time.perf_counter() - start < 5
    assert constants.HF_HUB_OFFLINE is False  # put back as it was
    assert "looking for tf_efficientnet_lite0.in1k's weights in the cache only" in caplog.text


@pytest.mark.skipif(not HF_CACHE.is_dir(), reason="needs ../shared/weights/hf-cache")
def test_an_unreachable_hub_still_finds_cached_weights(unreachable_hub: Callable[[Path], None]) -> None:
    unreachable_hub(HF_CACHE)
    net = create_network("tf_efficientnet_lite0.in1k", num_classes=4, pretrained=True)
    assert net.get_classifier().out_features == 4
