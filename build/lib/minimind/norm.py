"""Normalization: RMSNorm and LayerNorm, and the two places a block can put them.

The functions are the reference answers to lesson 01; the modules wrap them with learned weights
and are what the model uses. Both normalise over the last dimension in float32 and return the
input's dtype, because a mean of squares in float16 overflows past |x| ~ 256.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from minimind.config import ModelConfig


def rms_norm(x: Tensor, weight: Tensor, eps: float = 1e-5) -> Tensor:
    """x / sqrt(mean(x^2) + eps) * weight over the last dim, computed in float32."""
    x32 = x.float()
    normed = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + eps)
    return (normed * weight.float()).to(x.dtype)


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """(x - mean) / sqrt(var + eps) * weight + bias over the last dim (biased var), in float32."""
    x32 = x.float()
    centred = x32 - x32.mean(dim=-1, keepdim=True)
    var = centred.pow(2).mean(dim=-1, keepdim=True)
    normed = centred * torch.rsqrt(var + eps)
    return (normed * weight.float() + bias.float()).to(x.dtype)


def pre_norm_residual(x: Tensor, sublayer: Callable[[Tensor], Tensor], norm: nn.Module) -> Tensor:
    """Pre-LN (GPT-2, Llama, MiniMind): x + sublayer(norm(x)); the skip path is never normed."""
    return x + sublayer(norm(x))


def post_norm_residual(x: Tensor, sublayer: Callable[[Tensor], Tensor], norm: nn.Module) -> Tensor:
    """Post-LN (the original Transformer): norm(x + sublayer(x)); the skip path passes a norm."""
    return norm(x + sublayer(x))


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return rms_norm(x, self.weight, self.eps)


class LayerNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        return layer_norm(x, self.weight, self.bias, self.eps)


def make_norm(config: ModelConfig, dim: int | None = None) -> nn.Module:
    """The norm the config asks for; "none" is an identity so module names stay the same."""
    dim = config.hidden_size if dim is None else dim
    if config.norm == "rms":
        return RMSNorm(dim, config.rms_norm_eps)
    if config.norm == "layer":
        return LayerNorm(dim, config.rms_norm_eps)
    return nn.Identity()
