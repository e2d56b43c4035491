"""Datasets, splits, transforms and the LightningDataModule."""

from mushroom.data.datamodule import MushroomDataModule
from mushroom.data.folder import ImageFolderIndex, scan_image_folder

__all__ = ["ImageFolderIndex", "MushroomDataModule", "scan_image_folder"]
