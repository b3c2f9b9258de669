"""Lesson 02 exercises: rotary position embedding. Replace each `raise NotImplementedError`.

Check your work with `pytest -m exercise lessons/02_position_encoding` (seconds). The README
explains what each function must do and why; `pytest --solutions` shows the reference passing.
"""
import torch  # noqa: F401  (you will need it)
from torch import Tensor

REFERENCE = "minimind.rope"  # where the answers live; peek only when stuck


def rope_frequencies(head_dim: int, max_len: int, theta: float = 1e6) -> tuple[Tensor, Tensor]:
    """The (cos, sin) tables, each of shape (max_len, head_dim), in MiniMind's half-split layout.

    Pair i (i = 0 .. head_dim/2 - 1) turns at the angular frequency theta^(-2i/head_dim) radians
    per position, so the angle at position p is p * theta^(-2i/head_dim). Column i and column
    i + head_dim/2 belong to the same pair: the second half of each row repeats the first.
    Compute the angles in float64 (float32 loses ~1e-3 rad by position 10^4) and return the
    tables as float32. An odd head_dim has no pairs: raise ValueError naming it.
    """
    raise NotImplementedError


def rotate_half(x: Tensor) -> Tensor:
    """Turn every pair by 90 degrees: split the last dim into halves (x1, x2), return (-x2, x1)."""
    raise NotImplementedError


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate x of shape (batch, seq, heads, head_dim) by the first `seq` rows of the tables.

    y = x * cos + rotate_half(x) * sin, with the (seq, head_dim) tables broadcast over batch and
    heads. Compute in float32 and return x's dtype. Raise ValueError, naming both sizes, when
    the sequence is longer than the tables or the head_dim is odd or differs from the tables'.
    """
    raise NotImplementedError


def ntk_scaled_theta(theta: float, scale: float, head_dim: int) -> float:
    """NTK-aware scaling: the base whose slowest pair turns `scale` times slower than before.

    The fastest pair (exponent 0) keeps its frequency whatever the base; choose the new base
    so that the slowest pair (exponent (head_dim - 2) / head_dim) is divided by exactly
    `scale`. Raise ValueError for head_dim <= 2 or scale <= 0.
    """
    raise NotImplementedError
