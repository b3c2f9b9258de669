"""Exercise tests for lesson 02: each passes on a right answer and names the mistake otherwise."""
import math

import pytest
import torch

from minimind.course import check_close
from minimind.rope import (
    apply_rope, ntk_scaled_theta, rope_frequencies, rope_inv_freq, rope_tables, rotate_half,
)

ATOL, RTOL = 1e-6, 1e-5


def _x(seed: int, shape=(2, 6, 3, 8)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 2


def _interleaved_tables(head_dim: int, max_len: int, theta: float) -> tuple[torch.Tensor, ...]:
    """The RoFormer layout: columns 2i and 2i+1 share a frequency."""
    positions = torch.arange(max_len, dtype=torch.float64)
    angles = torch.outer(positions, rope_inv_freq(head_dim, theta))  # (max_len, D/2)
    angles = angles.repeat_interleave(2, dim=-1)  # (max_len, head_dim)
    return angles.cos().float(), angles.sin().float()


def _table_mistakes(head_dim: int, max_len: int, theta: float) -> dict[str, tuple]:
    half_exponent = 1.0 / theta ** (torch.arange(head_dim // 2, dtype=torch.float64) / head_dim)
    cos, sin = rope_frequencies(head_dim, max_len, theta)
    return {
        "interleaved layout (2i, 2i+1); MiniMind repeats the halves": _interleaved_tables(
            head_dim, max_len, theta),
        "exponent i/D instead of 2i/D": rope_tables(half_exponent, max_len),
        "cos and sin swapped": (sin, cos),
        "theta ignored (1e4 hard-coded)": rope_frequencies(head_dim, max_len, 1e4),
        "positions start at 1 instead of 0": tuple(
            t[1:] for t in rope_frequencies(head_dim, max_len + 1, theta)),
    }


def _check_tables(actual, head_dim: int, max_len: int, theta: float, atol: float = ATOL) -> None:
    if not isinstance(actual, tuple) or len(actual) != 2:
        raise AssertionError(f"expected a (cos, sin) tuple, got {type(actual).__name__}")
    expected = rope_frequencies(head_dim, max_len, theta)
    mistakes = _table_mistakes(head_dim, max_len, theta)
    for k, what in enumerate(("cos", "sin")):
        check_close(actual[k], expected[k], atol=atol, rtol=0, what=f"{what} table",
                    mistakes={m: tables[k] for m, tables in mistakes.items()},
                    hint="angle[p, i] = p * theta ** (-2i / head_dim); then cat the half with "
                         "itself along the last dim")


@pytest.mark.exercise("rope_frequencies")
def test_rope_frequencies_match_half_split_reference(impl):
    """cos/sin hold cos(p * theta^(-2i/D)) in column i and again in column i + D/2."""
    _check_tables(impl.rope_frequencies(16, 40, 1e4), 16, 40, 1e4)


@pytest.mark.exercise("rope_frequencies")
def test_rope_frequencies_default_theta_is_minimind_1e6(impl):
    """Without a theta argument the tables use MiniMind's base, 1e6."""
    _check_tables(impl.rope_frequencies(8, 30), 8, 30, 1e6)


@pytest.mark.exercise("rope_frequencies")
def test_rope_frequencies_stay_accurate_at_long_positions(impl):
    """Angles built in float64 keep the tables right to 1e-5 at position 8191."""
    cos, sin = impl.rope_frequencies(8, 8192, 1e4)
    expected = rope_frequencies(8, 8192, 1e4)
    hint = ("float32 angles lose digits past ~1e3 (8191 rad has a float32 spacing of 5e-4); "
            "use torch.arange(max_len, dtype=torch.float64) and float64 frequencies")
    check_close(cos, expected[0], atol=1e-5, rtol=0, what="cos table", hint=hint)
    check_close(sin, expected[1], atol=1e-5, rtol=0, what="sin table", hint=hint)


@pytest.mark.exercise("rope_frequencies")
def test_rope_frequencies_reject_odd_head_dim(impl):
    """An odd head_dim cannot be split into pairs, and the error says which one was given."""
    with pytest.raises(ValueError, match="7"):
        impl.rope_frequencies(7, 10)


def _rotate_mistakes(x: torch.Tensor) -> dict[str, torch.Tensor]:
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return {
        "negation forgotten: (x2, x1)": torch.cat([x2, x1], -1),
        "sign on the wrong half: (x2, -x1), a turn the other way": torch.cat([x2, -x1], -1),
        "interleaved pairs (-x[1::2], x[::2]): the RoFormer layout": torch.stack(
            [-x[..., 1::2], x[..., ::2]], -1).flatten(-2),
        "halves negated in place: (-x1, x2)": torch.cat([-x1, x2], -1),
    }


@pytest.mark.exercise("rotate_half")
def test_rotate_half_maps_halves_x1_x2_to_minus_x2_x1(impl):
    """rotate_half(x) is (-x2, x1) on the two halves of the last dim."""
    x = _x(1)
    check_close(impl.rotate_half(x), rotate_half(x), atol=0, rtol=0,
                mistakes=_rotate_mistakes(x), hint="torch.cat([-x2, x1], dim=-1)")


@pytest.mark.exercise("rotate_half")
def test_rotate_half_twice_negates_and_is_orthogonal_to_x(impl):
    """A 90-degree turn applied twice is a half turn (-x), and x . rotate_half(x) = 0."""
    x = _x(2, (3, 4, 2, 16)).double()
    r = impl.rotate_half(x)
    check_close(impl.rotate_half(r), -x, atol=1e-12, rtol=0, what="rotate_half(rotate_half(x))")
    check_close((x * r).sum(-1), torch.zeros(x.shape[:-1], dtype=x.dtype), atol=1e-9, rtol=0,
                what="x . rotate_half(x)")


def _apply_mistakes(x, cos, sin) -> dict[str, torch.Tensor]:
    T = x.shape[1]
    c, s = cos[:T, None, :], sin[:T, None, :]
    return {
        "rotated by minus the angle (x cos - rotate_half(x) sin)": x * c - rotate_half(x) * s,
        "the last seq rows of the tables used instead of the first": (
            x * cos[-T:, None] + rotate_half(x) * sin[-T:, None]),
        "rotate_half and x swapped": rotate_half(x) * c + x * s,
    }


@pytest.mark.exercise("apply_rope")
def test_apply_rope_rotates_each_position_by_its_table_row(impl):
    """apply_rope is x * cos + rotate_half(x) * sin with row t of the tables at position t."""
    x = _x(3)
    cos, sin = rope_frequencies(8, 20, 1e4)  # tables longer than the sequence: slice them
    check_close(impl.apply_rope(x, cos, sin), apply_rope(x, cos, sin), atol=1e-6, rtol=1e-5,
                mistakes=_apply_mistakes(x, cos, sin),
                hint="cos[:T, None, :] broadcasts (T, D) over batch and heads of (B, T, H, D)")


@pytest.mark.exercise("apply_rope")
def test_apply_rope_with_as_many_heads_as_positions_still_broadcasts_over_heads(impl):
    """With seq == heads the (seq, head_dim) table must still line up with seq, not heads."""
    x = _x(4, (2, 4, 4, 8))
    cos, sin = rope_frequencies(8, 4, 1e4)
    wrong = x * cos[None, None] + rotate_half(x) * sin[None, None]  # (T, D) lined up with H
    check_close(impl.apply_rope(x, cos, sin), apply_rope(x, cos, sin), atol=1e-6, rtol=1e-5,
                mistakes={"table broadcast over heads instead of positions": wrong},
                hint="index the table as cos[:T, None, :] so its T lines up with dim 1 of x")


@pytest.mark.exercise("apply_rope")
def test_apply_rope_at_position_zero_is_the_identity(impl):
    """Row 0 of the tables is cos = 1, sin = 0: the first token is not rotated."""
    x = _x(5, (2, 1, 3, 8))
    cos, sin = rope_frequencies(8, 5, 1e4)
    check_close(impl.apply_rope(x, cos, sin), x, atol=1e-7, rtol=0, what="rotated position 0")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.exercise("apply_rope")
def test_apply_rope_of_half_precision_is_float32_result_rounded(impl, dtype):
    """Half-precision input is rotated in float32 and returned in its own dtype."""
    x = (_x(6) * 50).to(dtype)
    cos, sin = rope_frequencies(8, 6, 1e4)
    expected = apply_rope(x.float(), cos, sin).to(dtype)
    check_close(impl.apply_rope(x, cos, sin), expected, atol=0, rtol=0,
                hint="compute in float32 (x.float()) and cast back with .to(x.dtype)")


@pytest.mark.exercise("apply_rope")
def test_apply_rope_rejects_sequence_longer_than_table_naming_both(impl):
    """A 12-token sequence against a 10-row table is a ValueError that names 12 and 10."""
    cos, sin = rope_frequencies(8, 10, 1e4)
    with pytest.raises(ValueError) as err:
        impl.apply_rope(_x(7, (1, 12, 2, 8)), cos, sin)
    assert "12" in str(err.value) and "10" in str(err.value), f"message: {err.value}"


@pytest.mark.exercise("apply_rope")
def test_apply_rope_rejects_odd_or_mismatched_head_dim(impl):
    """An odd head_dim, or one that differs from the tables', is a ValueError naming it."""
    cos, sin = rope_frequencies(8, 10, 1e4)
    with pytest.raises(ValueError) as err:
        impl.apply_rope(_x(8, (1, 4, 2, 6)), cos, sin)
    assert "6" in str(err.value) and "8" in str(err.value), f"message: {err.value}"
    odd = torch.ones(10, 7)
    with pytest.raises(ValueError, match="7"):
        impl.apply_rope(_x(9, (1, 4, 2, 7)), odd, odd)


def _ntk_mistakes(theta: float, scale: float, D: int) -> dict[str, torch.Tensor]:
    n = D // 2
    return {
        "base multiplied by scale (the slowest pair slows by less than scale)": theta * scale,
        "exponent inverted: scale^((D-2)/D)": theta * scale ** ((D - 2) / D),
        "base divided by scale (frequencies sped up)": theta / scale ** (D / (D - 2)),
        "pair count D/2 used where head_dim D belongs": theta * scale ** (n / (n - 2)),
    }


@pytest.mark.exercise("ntk_scaled_theta")
def test_ntk_scaled_theta_matches_formula(impl):
    """theta' = theta * scale^(D / (D - 2)) for several bases, scales and head dims."""
    for theta, scale, D in [(1e4, 4.0, 64), (1e6, 16.0, 64), (1e4, 2.0, 8), (5e5, 8.0, 128)]:
        got = impl.ntk_scaled_theta(theta, scale, D)
        check_close(torch.tensor(float(got), dtype=torch.float64),
                    torch.tensor(ntk_scaled_theta(theta, scale, D), dtype=torch.float64),
                    atol=0, rtol=1e-9, what=f"ntk_scaled_theta({theta:g}, {scale:g}, {D})",
                    mistakes={m: torch.tensor(v, dtype=torch.float64)
                              for m, v in _ntk_mistakes(theta, scale, D).items()})


@pytest.mark.exercise("ntk_scaled_theta")
def test_ntk_scaled_theta_slows_slowest_pair_by_scale_and_keeps_fastest(impl):
    """With the new base the last pair turns `scale` times slower; the first is unchanged."""
    D, theta, scale = 16, 1e4, 4.0
    before = rope_inv_freq(D, theta)
    after = rope_inv_freq(D, impl.ntk_scaled_theta(theta, scale, D))
    check_close(after[-1] * scale, before[-1], atol=0, rtol=1e-9, what="slowest frequency x scale")
    check_close(after[0], before[0], atol=0, rtol=0, what="fastest frequency")
    assert bool((after <= before).all()), "no pair may turn faster after NTK scaling"


@pytest.mark.exercise("ntk_scaled_theta")
def test_ntk_scaled_theta_rejects_bad_sizes(impl):
    """head_dim <= 2 (no slow pair to scale) or scale <= 0 is a ValueError naming the value."""
    with pytest.raises(ValueError, match="2"):
        impl.ntk_scaled_theta(1e4, 4.0, 2)
    with pytest.raises(ValueError, match="-1"):
        impl.ntk_scaled_theta(1e4, -1.0, 64)
    assert math.isclose(impl.ntk_scaled_theta(1e4, 1.0, 64), 1e4), "scale 1 must keep the base"
