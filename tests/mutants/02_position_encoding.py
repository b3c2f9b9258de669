"""Plausible wrong answers to lesson 02; tests/test_mutants.py proves each one is caught."""
import torch

from minimind.course import mutant
from minimind.rope import rotate_half


def _checked_inv_freq(head_dim, theta, exponent_step=2, dtype=torch.float64):
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head_dim, got {head_dim}")
    i = torch.arange(0, head_dim // 2, dtype=dtype)
    return 1.0 / theta ** (exponent_step * i / head_dim)


def _half_split(angles):
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().float(), angles.sin().float()


@mutant("rope_frequencies", "interleaved layout (RoFormer's pairs 2i, 2i+1)")
def freqs_interleaved(head_dim, max_len, theta=1e6):
    angles = torch.outer(torch.arange(max_len, dtype=torch.float64),
                         _checked_inv_freq(head_dim, theta))
    angles = angles.repeat_interleave(2, dim=-1)
    return angles.cos().float(), angles.sin().float()


@mutant("rope_frequencies", "exponent i/D instead of 2i/D")
def freqs_exponent_i_over_d(head_dim, max_len, theta=1e6):
    inv = _checked_inv_freq(head_dim, theta, exponent_step=1)
    return _half_split(torch.outer(torch.arange(max_len, dtype=torch.float64), inv))


@mutant("rope_frequencies", "angles computed in float32")
def freqs_float32_angles(head_dim, max_len, theta=1e6):
    inv = _checked_inv_freq(head_dim, theta, dtype=torch.float32)
    return _half_split(torch.outer(torch.arange(max_len, dtype=torch.float32), inv))


@mutant("rope_frequencies", "theta argument ignored (1e4 hard-coded)")
def freqs_theta_hard_coded(head_dim, max_len, theta=1e6):
    inv = _checked_inv_freq(head_dim, 1e4)
    return _half_split(torch.outer(torch.arange(max_len, dtype=torch.float64), inv))


@mutant("rope_frequencies", "cos and sin returned in the wrong order")
def freqs_swapped(head_dim, max_len, theta=1e6):
    inv = _checked_inv_freq(head_dim, theta)
    cos, sin = _half_split(torch.outer(torch.arange(max_len, dtype=torch.float64), inv))
    return sin, cos


@mutant("rope_frequencies", "positions counted from 1")
def freqs_from_one(head_dim, max_len, theta=1e6):
    inv = _checked_inv_freq(head_dim, theta)
    return _half_split(torch.outer(torch.arange(1, max_len + 1, dtype=torch.float64), inv))


@mutant("rope_frequencies", "odd head_dim silently accepted")
def freqs_no_check(head_dim, max_len, theta=1e6):
    inv = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    return _half_split(torch.outer(torch.arange(max_len, dtype=torch.float64), inv))


@mutant("rotate_half", "negation forgotten")
def rotate_no_negation(x):
    h = x.shape[-1] // 2
    return torch.cat([x[..., h:], x[..., :h]], dim=-1)


@mutant("rotate_half", "turns the other way: (x2, -x1)")
def rotate_other_way(x):
    h = x.shape[-1] // 2
    return torch.cat([x[..., h:], -x[..., :h]], dim=-1)


@mutant("rotate_half", "interleaved pairs")
def rotate_interleaved(x):
    return torch.stack([-x[..., 1::2], x[..., ::2]], dim=-1).flatten(-2)


@mutant("rotate_half", "first half negated in place")
def rotate_negate_first(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., :h], x[..., h:]], dim=-1)


def _validate(x, cos):
    B, T, H, D = x.shape
    if cos.shape[1] != D or D % 2:
        raise ValueError(f"head_dim {D} vs table {cos.shape[1]}")
    if cos.shape[0] < T:
        raise ValueError(f"sequence {T} longer than table {cos.shape[0]}")
    return T


@mutant("apply_rope", "rotated by minus the angle")
def apply_minus_angle(x, cos, sin):
    T = _validate(x, cos)
    x32 = x.float()
    return (x32 * cos[:T, None] - rotate_half(x32) * sin[:T, None]).to(x.dtype)


@mutant("apply_rope", "arithmetic in the input's dtype")
def apply_half_arithmetic(x, cos, sin):
    T = _validate(x, cos)
    c, s = cos[:T, None].to(x.dtype), sin[:T, None].to(x.dtype)
    return x * c + rotate_half(x) * s


@mutant("apply_rope", "returns float32 for a half-precision input")
def apply_forgets_cast_back(x, cos, sin):
    T = _validate(x, cos)
    x32 = x.float()
    return x32 * cos[:T, None] + rotate_half(x32) * sin[:T, None]


@mutant("apply_rope", "tables broadcast over heads instead of positions")
def apply_broadcast_over_heads(x, cos, sin):
    T = _validate(x, cos)
    x32 = x.float()
    return (x32 * cos[:T] + rotate_half(x32) * sin[:T]).to(x.dtype)


@mutant("apply_rope", "no size checks (a short table fails deep inside broadcasting)")
def apply_unchecked(x, cos, sin):
    T = x.shape[1]
    x32 = x.float()
    return (x32 * cos[:T, None] + rotate_half(x32) * sin[:T, None]).to(x.dtype)


@mutant("apply_rope", "the last seq rows of the tables")
def apply_last_rows(x, cos, sin):
    T = _validate(x, cos)
    x32 = x.float()
    return (x32 * cos[-T:, None] + rotate_half(x32) * sin[-T:, None]).to(x.dtype)


def _check_ntk(scale, head_dim):
    if head_dim <= 2 or scale <= 0:
        raise ValueError(f"bad head_dim {head_dim} or scale {scale}")


@mutant("ntk_scaled_theta", "base multiplied by scale")
def ntk_times_scale(theta, scale, head_dim):
    _check_ntk(scale, head_dim)
    return theta * scale


@mutant("ntk_scaled_theta", "exponent inverted")
def ntk_inverted_exponent(theta, scale, head_dim):
    _check_ntk(scale, head_dim)
    return theta * scale ** ((head_dim - 2) / head_dim)


@mutant("ntk_scaled_theta", "base divided by scale")
def ntk_divided(theta, scale, head_dim):
    _check_ntk(scale, head_dim)
    return theta / scale ** (head_dim / (head_dim - 2))


@mutant("ntk_scaled_theta", "pair count used for head_dim")
def ntk_pairs_for_dims(theta, scale, head_dim):
    _check_ntk(scale, head_dim)
    n = head_dim // 2
    return theta * scale ** (n / (n - 2))


@mutant("ntk_scaled_theta", "no input checks")
def ntk_unchecked(theta, scale, head_dim):
    return theta * abs(scale) ** (head_dim / max(head_dim - 2, 1))
