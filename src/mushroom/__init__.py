"""mushroom: train image models that tell mushroom genera apart."""

from mushroom.errors import MushroomError

__all__ = ["MushroomError"]
__version__ = "0.1.0"
