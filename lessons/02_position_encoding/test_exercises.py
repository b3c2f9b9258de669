"""Exercise tests for lesson 02: each passes on a right answer and names the mistake otherwise."""
import math

import pytest
import torch

from minimind.course import check_close
from minimind.rope import apply_rope, ntk_scaled_theta, rope_frequencies, rope_inv_freq, rotate_half

ATOL, RTOL = 1e-6, 1e-5


def _x(seed: int, shape=(2, 6, 3, 8)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 2


def _rejects(call, what: str, naming: tuple[str, ...]) -> None:
    """call() raises ValueError, and the message names each string of `naming`."""
    try:
        call()
    except ValueError as err:
        missing = [n for n in naming if n not in str(err)]
        assert not missing, f"{what}: the ValueError should name {missing}; it says: {err}"
        return
    raise AssertionError(f"{what} returned instead of raising ValueError")


def _check_tables(actual, head_dim: int, max_len: int, theta: float, atol: float = ATOL) -> None:
    if not isinstance(actual, tuple) or len(actual) != 2:
        raise AssertionError(f"expected a (cos, sin) tuple, got {type(actual).__name__}")
    expected = rope_frequencies(head_dim, max_len, theta)
    for k, what in enumerate(("cos", "sin")):
        check_close(actual[k], expected[k], atol=atol, rtol=0, what=f"{what} table")


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
    # 8191 rad has a float32 spacing of 5e-4: float32 angles miss the 1e-5 bound here.
    check_close(cos, expected[0], atol=1e-5, rtol=0, what="cos table")
    check_close(sin, expected[1], atol=1e-5, rtol=0, what="sin table")


@pytest.mark.exercise("rope_frequencies")
def test_rope_frequencies_reject_odd_head_dim(impl):
    """An odd head_dim cannot be split into pairs, and the error says which one was given."""
    _rejects(lambda: impl.rope_frequencies(7, 10), "rope_frequencies(7, 10)", ("7",))


@pytest.mark.exercise("rotate_half")
def test_rotate_half_maps_halves_x1_x2_to_minus_x2_x1(impl):
    """rotate_half(x) is (-x2, x1) on the two halves of the last dim."""
    x = _x(1)
    check_close(impl.rotate_half(x), rotate_half(x), atol=0, rtol=0)


@pytest.mark.exercise("rotate_half")
def test_rotate_half_twice_negates_and_is_orthogonal_to_x(impl):
    """A 90-degree turn applied twice is a half turn (-x), and x . rotate_half(x) = 0."""
    x = _x(2, (3, 4, 2, 16)).double()
    r = impl.rotate_half(x)
    check_close(impl.rotate_half(r), -x, atol=1e-12, rtol=0, what="rotate_half(rotate_half(x))")
    check_close((x * r).sum(-1), torch.zeros(x.shape[:-1], dtype=x.dtype), atol=1e-9, rtol=0,
                what="x . rotate_half(x)")


@pytest.mark.exercise("apply_rope")
def test_apply_rope_rotates_each_position_by_its_table_row(impl):
    """apply_rope is x * cos + rotate_half(x) * sin with row t of the tables at position t."""
    x = _x(3)
    cos, sin = rope_frequencies(8, 20, 1e4)  # tables longer than the sequence: slice them
    check_close(impl.apply_rope(x, cos, sin), apply_rope(x, cos, sin), atol=1e-6, rtol=1e-5)


@pytest.mark.exercise("apply_rope")
def test_apply_rope_with_as_many_heads_as_positions_still_broadcasts_over_heads(impl):
    """With seq == heads the (seq, head_dim) table must still line up with seq, not heads."""
    x = _x(4, (2, 4, 4, 8))
    cos, sin = rope_frequencies(8, 4, 1e4)
    check_close(impl.apply_rope(x, cos, sin), apply_rope(x, cos, sin), atol=1e-6, rtol=1e-5)


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
    check_close(impl.apply_rope(x, cos, sin), expected, atol=0, rtol=0)


@pytest.mark.exercise("apply_rope")
def test_apply_rope_rejects_sequence_longer_than_table_naming_both(impl):
    """A 12-token sequence against a 10-row table is a ValueError that names 12 and 10."""
    cos, sin = rope_frequencies(8, 10, 1e4)
    _rejects(lambda: impl.apply_rope(_x(7, (1, 12, 2, 8)), cos, sin),
             "apply_rope of 12 positions with 10-row tables", ("12", "10"))


@pytest.mark.exercise("apply_rope")
def test_apply_rope_rejects_odd_or_mismatched_head_dim(impl):
    """An odd head_dim, or one that differs from the tables', is a ValueError naming it."""
    cos, sin = rope_frequencies(8, 10, 1e4)
    _rejects(lambda: impl.apply_rope(_x(8, (1, 4, 2, 6)), cos, sin),
             "apply_rope of head_dim 6 with 8-column tables", ("6", "8"))
    odd = torch.ones(10, 7)
    _rejects(lambda: impl.apply_rope(_x(9, (1, 4, 2, 7)), odd, odd),
             "apply_rope of head_dim 7", ("7",))


@pytest.mark.exercise("ntk_scaled_theta")
def test_ntk_scaled_theta_matches_formula(impl):
    """theta' = theta * scale^(D / (D - 2)) for several bases, scales and head dims."""
    for theta, scale, D in [(1e4, 4.0, 64), (1e6, 16.0, 64), (1e4, 2.0, 8), (5e5, 8.0, 128)]:
        check_close(impl.ntk_scaled_theta(theta, scale, D), ntk_scaled_theta(theta, scale, D),
                    atol=0, rtol=1e-9, what=f"base for ({theta:g}, {scale:g}, {D})")


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
    _rejects(lambda: impl.ntk_scaled_theta(1e4, 4.0, 2), "ntk_scaled_theta(1e4, 4.0, 2)", ("2",))
    _rejects(lambda: impl.ntk_scaled_theta(1e4, -1.0, 64), "ntk_scaled_theta(1e4, -1.0, 64)",
             ("-1",))
    assert math.isclose(impl.ntk_scaled_theta(1e4, 1.0, 64), 1e4), "scale 1 must keep the base"
