"""MixStyle: each training photo's low-level feature statistics blended with another photo's.

A CNN's early feature maps carry a photo's "style" in their per-channel mean and standard deviation: light,
colour cast, camera and background texture, what tells one photographer's photos from another's. MixStyle
(Zhou et al., "Domain Generalization with MixStyle", ICLR 2021) normalises a feature map by its own statistics
and gives it a blend of its own and a random batch partner's, so the layers above learn the content under
styles that no single source has. It runs in training only, adds no weights and almost no compute, and works
in frozen layers too: it changes what they output, not what they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


class MixStyle(nn.Module):
    """With probability ``prob`` per batch (training only): ``x`` normalised per photo and channel, then
    scaled and shifted by ``lam * own + (1 - lam) * partner's`` statistics, ``lam ~ Beta(alpha, alpha)`` per
    photo, partners a random permutation of the batch. The statistics carry no gradient (as in the paper).
    No defaults here: they live in :mod:`mushroom.schemas` (``model.mixstyle_prob``, ``mixstyle_alpha``)."""

    def __init__(self, prob: float, alpha: float, eps: float = 1e-6) -> None:
        super().__init__()
        self.prob, self.alpha, self.eps = prob, alpha, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or len(x) < 2 or float(torch.rand(())) >= self.prob:
            return x
        mean = x.mean(dim=(2, 3), keepdim=True).detach()
        std = (x.var(dim=(2, 3), keepdim=True) + self.eps).sqrt().detach()
        normalised = (x - mean) / std
        lam = torch.distributions.Beta(self.alpha, self.alpha).sample((len(x), 1, 1, 1)).to(x)
        partner = torch.randperm(len(x), device=x.device)
        mixed_mean = lam * mean + (1 - lam) * mean[partner]
        mixed_std = lam * std + (1 - lam) * std[partner]
        return normalised * mixed_std + mixed_mean

    def attach(self, modules: Sequence[nn.Module]) -> list[RemovableHandle]:
        """Apply to the outputs of ``modules`` (e.g. a network's early stages), by forward hooks: the
        network's weights, state dict and export stay as they are."""
        return [module.register_forward_hook(self._mix_output) for module in modules]

    def _mix_output(self, module: nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor:
        return self(output)

    def extra_repr(self) -> str:
        return f"prob={self.prob}, alpha={self.alpha}"
