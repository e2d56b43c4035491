"""Serve an exported model over HTTP with ONNX Runtime (no PyTorch needed).

    python -m mushroom.serve model_path=model.onnx [host=0.0.0.0] [port=8000]

Then open http://HOST:PORT/ on a phone, or ``curl -F file=@photo.jpg http://HOST:PORT/predict``.
"""

from __future__ import annotations

import dataclasses
import logging

import hydra
from omegaconf import DictConfig, OmegaConf

from mushroom.runtime import checked_command_line, exit_on_user_error
from mushroom.schemas import ServeSettings, from_mapping
from mushroom.serving.app import create_app
from mushroom.serving.protocol import http_protocol

log = logging.getLogger(__name__)


def settings_from_config(cfg: DictConfig) -> ServeSettings:
    """The service's settings: the config composed on :class:`ServeSettings` (``schema/serve``)."""
    values = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(values, dict)
    names = {field.name for field in dataclasses.fields(ServeSettings)}
    return from_mapping(
        ServeSettings, {name: value for name, value in values.items() if name in names}, "serve"
    )


def raise_open_file_limit(needed: int) -> int:
    """Let the process hold ``needed`` open files (sockets) where the hard limit allows: the usual soft
    limit of 1,024 is below ``server.max_connections``, and past it new clients are not even accepted."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        soft = wanted
    return soft


@checked_command_line("serve")
@hydra.main(version_base="1.3", config_path="configs", config_name="serve")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    import uvicorn

    app = create_app(settings_from_config(cfg))
    log.info("Open http://%s:%d/ (web page) or POST a photo to /predict", cfg.host, cfg.port)
    server = cfg.server
    raise_open_file_limit(int(server.max_connections) + 64)  # the connections, plus files and the model
    protocol = http_protocol(
        int(server.max_header_kb * 1024), server.head_timeout_s, server.max_requests, server.max_connections
    )
    uvicorn.run(
        app,
        host=cfg.host,
        port=int(cfg.port),
        log_level=cfg.log_level,
        log_config=None,
        http=protocol,
        h11_max_incomplete_event_size=int(server.max_header_kb * 1024),
        # httptools (the shipped protocol) applies the limits itself; h11 only has uvicorn's connection count.
        limit_concurrency=server.max_connections if protocol == "h11" else None,
        timeout_keep_alive=int(server.keep_alive_s),
        timeout_graceful_shutdown=int(server.shutdown_s),
    )


if __name__ == "__main__":
    main()
