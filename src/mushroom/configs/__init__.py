"""Hydra configs shipped inside the package, so installed copies find them from any directory."""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent

import mushroom.schemas  # noqa: E402, F401  (the option files start from the schemas it registers)
