"""The answer core (``mushroom.core``) and the service import and answer without PyTorch, as in the API
image."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Modules the API image does not install (requirements_api.txt): importing any of them is refused.
TRAINING_ONLY = ("torch", "torchvision", "lightning", "timm", "albumentations", "torchmetrics")

CHECK = textwrap.dedent(
    f"""
    import importlib, pkgutil, sys

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {TRAINING_ONLY!r}:
                raise ImportError(f"{{name}} is not installed in the API image")
            return None

    sys.meta_path.insert(0, Refuse())
    import mushroom.core, mushroom.serving
    modules = ["mushroom.schemas", "mushroom.serve", "mushroom.drift"]
    for package in (mushroom.core, mushroom.serving):
        modules += [f"{{package.__name__}}.{{m.name}}" for m in pkgutil.iter_modules(package.__path__)]
    for name in modules:
        importlib.import_module(name)

    import numpy as np
    from mushroom.core.answer import answer
    from mushroom.serving.app import create_app
    from mushroom.schemas import ServeSettings
    reply = answer(np.array([0.1, 0.9]), ["Amanita", "Boletus"], 2, abstain_threshold=0.5)
    assert reply["prediction"] == "Boletus", reply
    assert callable(create_app) and ServeSettings(model_path="m.onnx").top_k == 3
    print(len(modules), "modules")
    """
)


def test_the_core_and_the_service_need_no_pytorch() -> None:
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[0]) >= 15  # every module of both packages was imported
