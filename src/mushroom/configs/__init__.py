"""Hydra configs shipped inside the package, so installed copies find them from any directory."""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent
