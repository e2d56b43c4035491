"""Serve an exported model over HTTP with ONNX Runtime (no PyTorch needed).

    python -m mushroom.serve model_path=model.onnx [host=0.0.0.0] [port=8000]

Then open http://HOST:PORT/ on a phone, or ``curl -F file=@photo.jpg http://HOST:PORT/predict``.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from mushroom.runtime import exit_on_user_error
from mushroom.serving.app import ServeSettings, create_app

log = logging.getLogger(__name__)


def settings_from_config(cfg: DictConfig) -> ServeSettings:
    return ServeSettings(
        model_path=str(cfg.model_path),
        top_k=int(cfg.top_k),
        max_upload_mb=float(cfg.max_upload_mb),
        max_megapixels=float(cfg.max_megapixels),
        abstain_threshold=cfg.abstain_threshold,
        stats_path=cfg.stats_path,
        threads=cfg.threads,
        concurrent_inferences=int(cfg.concurrent_inferences),
    )


@hydra.main(version_base="1.3", config_path="configs", config_name="serve")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    import uvicorn

    app = create_app(settings_from_config(cfg))
    log.info("Open http://%s:%d/ (web page) or POST a photo to /predict", cfg.host, cfg.port)
    uvicorn.run(app, host=cfg.host, port=int(cfg.port), log_level=cfg.log_level, log_config=None)


if __name__ == "__main__":
    main()
