"""Lesson 04 exercises: the feed-forward network. Replace each `raise NotImplementedError`.

Check your work with `pytest -m exercise lessons/04_feedforward` (seconds). The README explains
what each function must do and why; `pytest --solutions` shows the reference passing.
"""
import torch  # noqa: F401  (you will need it)
from torch import Tensor

REFERENCE = "minimind.ffn"  # where the answers live; peek only when stuck


def silu(x: Tensor) -> Tensor:
    """SiLU ("swish"): x * sigmoid(x), elementwise, same shape and dtype as x.

    Use torch.sigmoid rather than exp(x) / (1 + exp(x)): the latter is inf / inf = NaN for
    large x.
    """
    raise NotImplementedError


def swiglu(x: Tensor, w_gate: Tensor, w_up: Tensor, w_down: Tensor) -> Tensor:
    """The SwiGLU FFN: down(silu(gate(x)) * up(x)), without biases.

    Weights are stored as nn.Linear stores them, (out_features, in_features): w_gate and w_up are
    (H, C), w_down is (C, H), so gate(x) is x @ w_gate.T. x is (..., C); return (..., C).
    Only the gate goes through silu; the up projection stays linear.
    """
    raise NotImplementedError


def intermediate_size(hidden_size: int, multiple_of: int = 64) -> int:
    """MiniMind's FFN width: int(hidden_size * 8 / 3), rounded UP to a multiple of multiple_of.

    intermediate_size(512) == 1408 (8/3 * 512 = 1365.3 -> 1408). A width already a multiple
    stays as it is. Return a Python int.
    """
    raise NotImplementedError
