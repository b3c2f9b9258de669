"""Lesson 05 exercises: residual connections. Replace each `raise NotImplementedError` with code.

Check your work with `pytest -m exercise lessons/05_residual` (seconds). The README explains
what each function must do and why; `pytest --solutions` shows the reference passing.
"""
import math  # noqa: F401  (you may need it)
from typing import Callable, Sequence

import torch  # noqa: F401  (you will need it)
from torch import Tensor

REFERENCE = "minimind.model"  # where the answers live; peek only when stuck


def residual_stack(
    x: Tensor, layers: Sequence[Callable[[Tensor], Tensor]], residual: bool = True
) -> Tensor:
    """Apply the layers in order. With residual=True each one is a skip connection around it:
    x = x + layer(x), so x is the running sum (the "residual stream"). With residual=False:
    x = layer(x), a plain deep stack. No layers at all returns x unchanged.

    With residual=True, a layer whose output shape differs from its input's cannot be added to
    the stream: raise ValueError naming the layer's index and both shapes (do not let
    broadcasting hide the mistake).
    """
    raise NotImplementedError


def scaled_init_std(base_std: float, n_layers: int) -> float:
    """The init std for projections that write into the residual stream (GPT-2, MiniMind).

    Each of the n_layers blocks adds two updates to the stream (attention and FFN), so a stream
    fed by 2 * n_layers independent branches of std s has variance ~2 * n_layers * s^2. Return
    the s that keeps that equal to base_std^2. Raise ValueError when n_layers < 1.
    """
    raise NotImplementedError
