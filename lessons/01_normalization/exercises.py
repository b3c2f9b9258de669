"""Lesson 01 exercises: normalization. Replace each `raise NotImplementedError` with your code.

Check your work with `pytest -m exercise lessons/01_normalization` (seconds). The README explains
what each function must do and why; `pytest --solutions` shows the reference passing.
"""
from typing import Callable

import torch  # noqa: F401  (you will need it)
from torch import Tensor, nn

REFERENCE = "minimind.norm"  # where the answers live; peek only when stuck


def rms_norm(x: Tensor, weight: Tensor, eps: float = 1e-5) -> Tensor:
    """Divide x by the root of the mean of its squares over the last dim, then scale by weight.

    y = x / sqrt(mean(x^2) + eps) * weight. Compute in float32 and return x's dtype.
    """
    raise NotImplementedError


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """Subtract the mean, divide by the standard deviation (biased), then scale and shift.

    y = (x - mean) / sqrt(var + eps) * weight + bias, over the last dim.
    """
    raise NotImplementedError


def pre_norm_residual(x: Tensor, sublayer: Callable[[Tensor], Tensor], norm: nn.Module) -> Tensor:
    """Pre-LN: normalise the sublayer's input, and add its output to the untouched x."""
    raise NotImplementedError


def post_norm_residual(x: Tensor, sublayer: Callable[[Tensor], Tensor], norm: nn.Module) -> Tensor:
    """Post-LN: add the sublayer's output to x, then normalise the sum."""
    raise NotImplementedError
