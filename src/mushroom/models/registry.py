"""Networks that are not timm's, by name: ``@register_network("my_net")`` on a function that builds one.

timm finds its models the same way (``@register_model``). A network registers itself when its module is
imported: the package's own (``small_cnn``) on import of :mod:`mushroom.models`, a user's through the
``mushroom.networks`` entry-point group of their package (``pyproject.toml``:
``[project.entry-points."mushroom.networks"] my_net = "my_package.networks"``), which is imported the
first time a name is not found. Any other name goes to timm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata

from torch import nn

from mushroom.core.preprocessing import Preprocessing

#: A network builder: ``build(num_classes, drop_rate=..., cnn_channels=..., pretrained=..., image_size=...)``;
#: it takes the keyword arguments it uses and ignores the rest (``**_``).
Builder = Callable[..., nn.Module]

#: The entry-point group through which an installed package adds networks.
ENTRY_POINTS = "mushroom.networks"


@dataclass(frozen=True)
class Network:
    build: Builder
    #: Input size, crop and normalisation the network expects (when the config leaves them null).
    preprocessing: Preprocessing = field(default_factory=Preprocessing)


_NETWORKS: dict[str, Network] = {}
_plugins_loaded = False


def register_network(name: str, preprocessing: Preprocessing | None = None) -> Callable[[Builder], Builder]:
    """Register the decorated builder as network ``name`` (``model.name=<name>``)."""

    def register(build: Builder) -> Builder:
        _NETWORKS[name] = Network(build, preprocessing or Preprocessing())
        return build

    return register


def registered_network(name: str) -> Network | None:
    """The network registered as ``name``, after importing the installed plugins once; None for timm's."""
    global _plugins_loaded
    if name not in _NETWORKS and not _plugins_loaded:
        _plugins_loaded = True
        for entry_point in metadata.entry_points(group=ENTRY_POINTS):
            entry_point.load()
    return _NETWORKS.get(name)


def registered_names() -> list[str]:
    return sorted(_NETWORKS)
