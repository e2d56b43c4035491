"""``python -m mushroom.train cluster=ray``: the same training run, its processes placed by Ray.

Ray starts ``cluster.num_workers`` training processes (on this machine, or across the cluster that
``cluster.address`` or ``RAY_ADDRESS`` names, as ``ray job submit`` sets it); each runs
:func:`mushroom.train.train` with Lightning's DDP as Ray prepares it (``RayDDPStrategy``,
``RayLightningEnvironment``). Rank 0 writes the run directory as in a local run (checkpoints, calibration,
the test report), so ``paths.output_dir`` and the data must be on storage every node sees; Ray keeps its own
records under ``cluster.storage_path``.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from mushroom.errors import MushroomError

log = logging.getLogger(__name__)

#: The trainer settings a Ray worker runs with: one device per process, Ray's DDP and rank bookkeeping.
RAY_TRAINER = {
    "strategy": {"_target_": "ray.train.lightning.RayDDPStrategy"},
    "plugins": [{"_target_": "ray.train.lightning.RayLightningEnvironment"}],
    "devices": "auto",
    "num_nodes": 1,
}


def join_ray(address: str | None, feature: str, *modules: str) -> None:
    """Import Ray's ``modules`` (one line naming the extra when Ray is missing) and join the cluster at
    ``address`` (null: ``RAY_ADDRESS``, or a new instance on this machine) unless this process has."""
    try:
        for name in modules:
            importlib.import_module(name)
        import ray
    except ImportError as error:
        raise MushroomError(
            f"{feature} needs Ray ({error.name} is missing): pip install 'mushroom[ray]'."
        ) from error
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=True)


def portable_config(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain data for another process, which has no Hydra runtime: ``paths`` (where
    ``${hydra:...}`` is read) resolved to their values, every other interpolation kept, so that a trial
    that moves ``paths.output_dir`` moves its checkpoints and logs with it."""
    container = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(container, dict)
    return {str(key): value for key, value in container.items()} | {
        "paths": OmegaConf.to_container(cfg.paths, resolve=True)
    }


def train_on_ray(cfg: DictConfig, train: Callable[[DictConfig], dict[str, float]]) -> dict[str, float]:
    """Train on Ray workers with ``train`` (:func:`mushroom.train.train`, passed in: it is what imports
    this module); the metrics rank 0's call returned."""
    settings = cfg.cluster
    join_ray(settings.address, "cluster=ray", "ray.train.torch")
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    output_dir = Path(cfg.paths.output_dir)
    resolved = portable_config(cfg)
    worker: Any = train_worker  # Ray's annotation says the loop returns None; Train V2 passes on its value
    trainer = TorchTrainer(
        worker,
        train_loop_config={"cfg": resolved, "train": train},
        scaling_config=ScalingConfig(
            num_workers=settings.num_workers,
            use_gpu=settings.use_gpu,
            resources_per_worker={
                "CPU": settings.cpus_per_worker,
                **({"GPU": 1} if settings.use_gpu else {}),
            },
        ),
        run_config=RunConfig(
            name=output_dir.name, storage_path=str(settings.storage_path or output_dir / "ray")
        ),
    )
    log.info("Training on Ray: %d workers; outputs in %s", settings.num_workers, output_dir)
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    metrics = dict(getattr(result, "return_value", None) or {})
    name = cfg.get("optimized_metric")
    if name in metrics:
        log.info("Finished on Ray: %s = %.4f (records in %s)", name, metrics[name], result.path)
    return metrics


def train_worker(config: dict[str, Any]) -> dict[str, float]:
    """One Ray worker: the configured run with Ray's DDP; rank 0 returns the metrics."""
    import ray.train
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from mushroom.runtime import log_to_console

    log_to_console(logging.INFO)
    context = ray.train.get_context()
    # The data is prepared by global rank 0 while the others wait, before Lightning knows the rank.
    rank_zero_only.rank = context.get_world_rank()  # type: ignore[attr-defined]
    cfg = OmegaConf.create(config["cfg"])
    with open_dict(cfg):
        cfg.cluster = None
        for key, value in RAY_TRAINER.items():
            cfg.trainer[key] = value
    metrics = config["train"](cfg)
    return metrics if context.get_world_rank() == 0 else {}
