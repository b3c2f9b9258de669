"""Lesson 08 exercises: training dynamics. Replace each `raise NotImplementedError` with code.

Check your work with `pytest -m exercise lessons/08_training_dynamics` (seconds). The README
explains what each function must do and why; `pytest --solutions` shows the reference passing.
Every function is pure: return new values, never modify an argument.
"""
import math  # noqa: F401  (you will need it)
from collections.abc import Sequence

import torch  # noqa: F401  (you will need it)
from torch import Tensor

REFERENCE = "minimind.optim"  # where the answers live; peek only when stuck


def lr_at(step: int, total_steps: int, peak_lr: float, warmup: int = 0,
          min_ratio: float = 0.1) -> float:
    """The learning rate at 0-based `step`: linear warmup, then cosine decay to a floor.

    Warmup: steps 0 .. warmup-1 ramp linearly so that step warmup-1 is at peak_lr and step 0
    already moves the weights (it is not 0). Then cosine from peak_lr, at step `warmup`, down to
    min_ratio * peak_lr, reached exactly at step `total_steps` and held after it.
    """
    raise NotImplementedError


def clip_by_global_norm(grads: Sequence[Tensor], max_norm: float) -> tuple[Tensor, ...]:
    """Scale all gradients by one factor so that their global L2 norm is at most max_norm.

    The global norm treats every entry of every tensor as one vector. The factor is
    max_norm / (norm + 1e-6), but never above 1: gradients inside the ball stay as they are.
    Return the scaled gradients as a tuple, in order. ValueError when max_norm <= 0.
    """
    raise NotImplementedError


def adamw_step(
    param: Tensor, grad: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, step: int, lr: float,
    betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
) -> tuple[Tensor, Tensor, Tensor]:
    """One AdamW update, as torch.optim.AdamW does it: return (param, exp_avg, exp_avg_sq).

    Update both moving averages with this gradient, correct their bias (they start at 0;
    `step` counts updates from 1, this one included), take the adaptive step with eps added
    to the root of the second moment, and apply weight decay decoupled from the gradient.
    ValueError when step < 1.
    """
    raise NotImplementedError


def masked_cross_entropy(logits: Tensor, targets: Tensor, ignore_index: int = -100) -> Tensor:
    """Mean cross-entropy of logits (..., V) against class ids targets (...).

    Positions whose target is ignore_index (padding, prompts) count for nothing, neither in the
    sum nor in the number of positions it is averaged over. Stable for large logits.
    ValueError when the shapes do not fit.
    """
    raise NotImplementedError
