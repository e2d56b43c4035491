"""Networks (any timm model, or our small CNN) and the LightningModule that trains them."""

from mushroom.models.classifier import MushroomClassifier
from mushroom.models.networks import create_network, network_preprocessing

__all__ = ["MushroomClassifier", "create_network", "network_preprocessing"]
