"""Lesson 11 exercises: LoRA. Replace each `raise NotImplementedError` with code.

Check your work with `pytest -m exercise lessons/11_lora` (seconds). The README explains what
each function must do and why; `pytest --solutions` shows the reference passing.
"""
import torch  # noqa: F401  (you will need it)
import torch.nn.functional as F  # noqa: F401  (you may need it)
from torch import Tensor

REFERENCE = "minimind.lora"  # where the answers live; peek only when stuck
LORA_STD = 0.02  # MiniMind's init std of A


class LoRAError(ValueError):
    """A LoRA request that cannot be met."""


def lora_init(in_features: int, out_features: int, rank: int, std: float = LORA_STD,
              generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """The adapter's two matrices at initialization: (A, B).

    A has shape (rank, in_features), drawn from N(0, std^2) with `generator`
    (torch.randn(..., generator=generator) * std); B has shape (out_features, rank) and is all
    zeros. Raise a ValueError (LoRAError is one) when rank is not an int >= 1.
    """
    raise NotImplementedError


def lora_linear(x: Tensor, weight: Tensor, lora_A: Tensor, lora_B: Tensor, alpha: float,
                bias: Tensor | None = None) -> Tensor:
    """A frozen linear layer plus its low-rank update.

    x: (..., in). weight: (out, in), bias: (out,) or None: the base layer, x W^T + bias.
    lora_A: (r, in), lora_B: (out, r). Return x W^T (+ bias) + (alpha / r) * x A^T B^T, where r
    is the rank, lora_A.shape[0].
    """
    raise NotImplementedError


def merge_lora(weight: Tensor, lora_A: Tensor, lora_B: Tensor, alpha: float) -> Tensor:
    """The (out, in) weight of one plain linear layer that computes what lora_linear computes
    (without the bias, which does not change): W plus the scaled low-rank update."""
    raise NotImplementedError
