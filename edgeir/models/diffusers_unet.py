"""A diffusers ``UNet2DModel`` as an edgeir network: it takes ``concat(x_t, condition)`` on its channels.
Checkpoints keep the bare UNet's keys, so diffusers' own weight files load unchanged."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _bare_keys(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    inner = f"{prefix}unet."
    for key in [k for k in state_dict if k.startswith(inner)]:
        state_dict[prefix + key[len(inner):]] = state_dict.pop(key)


def _unet_keys(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    for key in [k for k in state_dict if k.startswith(prefix)]:
        state_dict[f"{prefix}unet.{key[len(prefix):]}"] = state_dict.pop(key)


class DiffusersUNet(nn.Module):
    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet
        # Our checkpoints store the bare UNet's keys so diffusers' own weight files load unchanged. Hooks rename
        # them wherever this module sits (in a Denoiser, in recovery's EMA copy), which overriding state_dict()
        # and load_state_dict() would not: a parent loads its children without calling theirs.
        self._register_state_dict_hook(_bare_keys)
        self._register_load_state_dict_pre_hook(_unet_keys, with_module=True)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DiffusersUNet:
        try:
            from diffusers import UNet2DModel
        except ImportError:
            raise ImportError("diffusers is not installed (pip install 'edgeir[diffusers]')") from None
        return cls(UNet2DModel.from_config(config))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.unet(torch.cat([x_t, cond], dim=1), t).sample
