"""Datasets, splits, transforms and the LightningDataModule.

The DataModule and folder index load on first use (PEP 562), so that torch-free parts of the
package, such as the ONNX service, can import :mod:`mushroom.core.images` without PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mushroom.data.datamodule import MushroomDataModule
    from mushroom.data.folder import ImageFolderIndex
    from mushroom.data.prepare import index_folder

__all__ = ["ImageFolderIndex", "MushroomDataModule", "index_folder"]
_HOMES = {
    "MushroomDataModule": "mushroom.data.datamodule",
    "ImageFolderIndex": "mushroom.data.folder",
    "index_folder": "mushroom.data.prepare",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'mushroom.data' has no attribute {name!r}")
