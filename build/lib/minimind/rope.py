"""Rotary position embedding (RoPE), in MiniMind's half-split layout, and its long-context scaling.

Dimension i of the first half and dimension i + D/2 of the second half form one 2-D pair that
is rotated by angle position * inv_freq[i]. The RoFormer paper pairs adjacent dimensions
(2i, 2i+1) instead; the two layouts are the same rotation up to a permutation of dimensions
(lesson 02 proves it). Tables are built in float64 and cast, because float32 angles drift at
large positions (position * inv_freq loses digits past ~1e4).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from minimind.config import ModelConfig


def rope_inv_freq(head_dim: int, theta: float = 1e6) -> Tensor:
    """The head_dim/2 angular frequencies theta^(-2i/D), in float64."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head_dim, got {head_dim}")
    return 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)


def ntk_scaled_theta(theta: float, scale: float, head_dim: int) -> float:
    """NTK-aware scaling: a larger base that slows the slowest pair by `scale`, the fastest not.

    theta' = theta * scale^(D / (D - 2)) makes the last pair (exponent (D-2)/D) turn exactly
    `scale` times slower while the first pair (exponent 0) is untouched.
    """
    if head_dim <= 2:
        raise ValueError(f"NTK scaling needs head_dim > 2, got {head_dim}")
    if scale <= 0:
        raise ValueError(f"NTK scale must be > 0, got {scale}")
    return theta * scale ** (head_dim / (head_dim - 2))


def yarn_inv_freq(
    head_dim: int, theta: float, factor: float, original_max_len: int,
    beta_fast: float = 32.0, beta_slow: float = 1.0,
) -> Tensor:
    """YaRN ("NTK-by-parts") frequencies, as MiniMind computes them.

    A pair that turns more than `beta_fast` times within the original context keeps its
    frequency (it already saw every relative angle); one that turns fewer than `beta_slow` times
    is divided by `factor` (position interpolation); a linear ramp blends the pairs in between.
    """
    inv_freq = rope_inv_freq(head_dim, theta)

    def pair_index(turns: float) -> float:  # the pair i that completes `turns` turns
        turns_ratio = original_max_len / (turns * 2 * math.pi)
        return head_dim * math.log(turns_ratio) / (2 * math.log(theta))

    low = max(math.floor(pair_index(beta_fast)), 0)
    high = min(math.ceil(pair_index(beta_slow)), head_dim // 2 - 1)
    ramp = ((torch.arange(head_dim // 2, dtype=torch.float64) - low) / max(high - low, 1e-3))
    ramp = ramp.clamp(0, 1)
    return inv_freq * (1 - ramp + ramp / factor)


def rope_tables(
    inv_freq: Tensor, max_len: int, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """cos and sin tables (max_len, head_dim), half-split; angles in float64, cast to dtype."""
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    angles = torch.outer(torch.arange(max_len, dtype=torch.float64), inv_freq.double())
    angles = torch.cat([angles, angles], dim=-1)  # (max_len, head_dim): halves repeat
    return angles.cos().to(dtype), angles.sin().to(dtype)


def rope_frequencies(head_dim: int, max_len: int, theta: float = 1e6) -> tuple[Tensor, Tensor]:
    """(cos, sin), each (max_len, head_dim), in MiniMind's half-split layout."""
    return rope_tables(rope_inv_freq(head_dim, theta), max_len)


def rope_frequencies_for(config: ModelConfig, max_len: int | None = None) -> tuple[Tensor, Tensor]:
    """The tables a model with this config uses, including its long-context scaling."""
    max_len = config.max_position_embeddings if max_len is None else max_len
    D, theta = config.head_dim, config.rope_theta
    if config.rope_scaling == "ntk":
        inv_freq = rope_inv_freq(D, ntk_scaled_theta(theta, config.rope_scaling_factor, D))
    elif config.rope_scaling == "yarn":
        inv_freq = yarn_inv_freq(
            D, theta, config.rope_scaling_factor, config.original_max_position_embeddings,
            config.yarn_beta_fast, config.yarn_beta_slow,
        )
    else:
        inv_freq = rope_inv_freq(D, theta)
    return rope_tables(inv_freq, max_len)


def rotate_half(x: Tensor) -> Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last dim: a 90-degree turn of every pair."""
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate x of shape (batch, seq, heads, head_dim) by the first `seq` rows of the tables.

    Computes in float32 (float64 stays float64) and returns x's dtype: a bfloat16 rotation
    would round every coordinate to 8 bits of mantissa.
    """
    if x.dim() != 4:
        raise ValueError(f"apply_rope expects x of shape (batch, seq, heads, head_dim), got "
                         f"{tuple(x.shape)}")
    B, T, H, D = x.shape
    if cos.shape != sin.shape or cos.dim() != 2:
        raise ValueError(f"cos and sin must both be (seq, head_dim), got {tuple(cos.shape)} "
                         f"and {tuple(sin.shape)}")
    if cos.shape[1] != D:
        raise ValueError(f"x has head_dim {D} but the RoPE tables have {cos.shape[1]} columns")
    if D % 2:
        raise ValueError(f"RoPE rotates pairs of dimensions, so head_dim must be even; x "
                         f"{tuple(x.shape)} and the tables {tuple(cos.shape)} have head_dim {D}")
    if cos.shape[0] < T:
        raise ValueError(f"sequence length {T} is longer than the RoPE table "
                         f"({cos.shape[0]} positions); build the table with max_len >= {T}")
    dtype = torch.promote_types(x.dtype, torch.float32)
    cos = cos[:T, None, :].to(dtype)  # (T, 1, D): broadcast over batch and heads
    sin = sin[:T, None, :].to(dtype)
    xf = x.to(dtype)
    return (xf * cos + rotate_half(xf) * sin).to(x.dtype)
