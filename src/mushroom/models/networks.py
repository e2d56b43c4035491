"""Building a network by name: a registered one (:mod:`mushroom.models.registry`, such as ``small_cnn``) or
any timm model, with clear errors for what goes wrong."""

from __future__ import annotations

import difflib
import logging
import os
import socket
from collections.abc import Sequence
from typing import cast
from urllib.parse import urlsplit

import timm
from torch import nn

import mushroom.models.cnn  # noqa: F401  (registers small_cnn)
from mushroom.core.preprocessing import Preprocessing
from mushroom.errors import MushroomError
from mushroom.models.registry import registered_names, registered_network

log = logging.getLogger(__name__)


def _check_timm_name(name: str) -> None:
    architecture = name.split(".", 1)[0]
    if timm.is_model(architecture):
        return
    close = difflib.get_close_matches(
        architecture, [*registered_names(), *timm.list_models()], n=5, cutoff=0.6
    )
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    ours = " or ".join(f"'{n}'" for n in registered_names())
    raise MushroomError(
        f"model.name={name!r} is neither a registered network ({ours}) nor a timm model.{hint} "
        "List timm's models with: python -c \"import timm; print(timm.list_models('*resnet*'))\""
    )


def create_network(
    name: str,
    num_classes: int,
    pretrained: bool = False,
    drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
    cnn_channels: Sequence[int] = (),
    image_size: int | None = None,
) -> nn.Module:
    """Create ``name`` with a fresh ``num_classes``-way head; ImageNet weights when ``pretrained``.
    ``cnn_channels``: the stages of our small CNN (``model.cnn_channels``). ``image_size``: the input size,
    for networks built for one size (a ViT's position embeddings; timm resamples the pretrained ones)."""
    registered = registered_network(name)
    if registered is not None:
        return registered.build(
            num_classes,
            pretrained=pretrained,
            drop_rate=drop_rate,
            drop_path_rate=drop_path_rate,
            cnn_channels=cnn_channels,
            image_size=image_size,
        )
    _check_timm_name(name)
    kwargs: dict = {"num_classes": num_classes, "drop_rate": drop_rate}
    if drop_path_rate:
        kwargs["drop_path_rate"] = drop_path_rate
    cfg = timm.get_pretrained_cfg(name)
    if image_size and cfg is not None and getattr(cfg, "fixed_input_size", False):
        kwargs["img_size"] = image_size
    if not pretrained:
        return timm.create_model(name, pretrained=False, **kwargs)
    from huggingface_hub import constants

    offline = constants.HF_HUB_OFFLINE
    unreachable = not offline and not hub_reachable()
    if unreachable:
        log.warning("%s cannot be reached: looking for %s's weights in the cache only", hub_host(), name)
    try:
        # Offline when the hub cannot be reached: the cache answers at once, where the hub client would
        # retry for most of a minute and log every retry before failing.
        constants.HF_HUB_OFFLINE = offline or unreachable
        net = timm.create_model(name, pretrained=True, **kwargs)
    except Exception as error:  # hub, network, cache and "no weights for this tag" errors alike
        why = f"{hub_host()} cannot be reached and the cache does not hold them" if unreachable else error
        raise MushroomError(
            f"Could not load pretrained weights for {name!r} ({type(error).__name__}: {why}).\n"
            "Ways out: train from scratch with model.pretrained=false; or point the Hugging Face cache "
            "at a folder that already holds the weights and stay offline, e.g. "
            "HF_HUB_CACHE=/path/to/hf-cache HF_HUB_OFFLINE=1; or give this machine network access."
        ) from error
    finally:
        constants.HF_HUB_OFFLINE = offline
    zero_init_head(net)
    return net


def hub_host() -> str:
    from huggingface_hub import constants

    return urlsplit(constants.ENDPOINT).netloc or constants.ENDPOINT


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether a connection to the Hugging Face hub opens (or a proxy is configured, which we trust)."""
    from huggingface_hub import constants

    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    endpoint = urlsplit(constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname or "", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def zero_init_head(net: nn.Module) -> None:
    """Start a new head on top of pretrained features at zero.

    Every class then starts equally likely (loss = log K) and the first, large gradients do not flow
    back through random head weights into the pretrained backbone and wreck its features.
    """
    head = classifier_head(net)
    for module in head.modules():
        if isinstance(module, nn.Linear | nn.Conv2d):
            nn.init.zeros_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def classifier_head(net: nn.Module) -> nn.Module:
    """The final classification layer (timm's ``get_classifier()``; SmallCNN offers the same)."""
    return cast(nn.Module, net.get_classifier())  # type: ignore[operator]


def layer_lr_scales(net: nn.Module, layer_decay: float | None) -> dict[str, float]:
    """Layer-wise learning-rate decay (BEiT; the usual way to fine-tune a ViT): per parameter name,
    ``layer_decay ** (layers between it and the head)``, layers as timm groups them (a ViT's blocks).
    Empty (every scale 1) without ``layer_decay``."""
    if not layer_decay:
        return {}
    if not 0.0 < layer_decay <= 1.0:
        raise MushroomError(f"model.layer_decay={layer_decay}: a factor in (0, 1], e.g. 0.75 (null = off).")
    from timm.optim import param_groups_layer_decay

    scales: dict[str, float] = {}
    by_id = {id(p): name for name, p in net.named_parameters()}
    for group in param_groups_layer_decay(net, weight_decay=0.0, layer_decay=layer_decay):
        scales |= {by_id[id(p)]: float(group["lr_scale"]) for p in group["params"]}
    return scales


def network_preprocessing(name: str) -> dict:
    """Input size, crop and normalisation the network's pretrained weights expect (the registered
    network's own, timm's pretrained config, or :class:`~mushroom.core.preprocessing.Preprocessing`'s)."""
    registered = registered_network(name)
    if registered is not None:
        return _as_defaults(registered.preprocessing)
    _check_timm_name(name)
    cfg = timm.get_pretrained_cfg(name)
    if cfg is None:
        return _as_defaults(Preprocessing())
    return {
        "image_size": int(cfg.input_size[-1]),
        "crop_pct": float(cfg.crop_pct),
        "mean": tuple(cfg.mean),
        "std": tuple(cfg.std),
    }


def _as_defaults(pre: Preprocessing) -> dict:
    return {
        "image_size": pre.image_size,
        "crop_pct": pre.crop_pct,
        "mean": tuple(pre.mean),
        "std": tuple(pre.std),
    }
