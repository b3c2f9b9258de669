"""Exercise tests for lesson 04: each passes on a right answer and names the mistake otherwise."""
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from minimind.config import ModelConfig
from minimind.course import check_close
from minimind.course.mistakes import catalogue
from minimind.ffn import FeedForward, intermediate_size, silu, swiglu

ATOL, RTOL = 1e-5, 1e-5


def _grid() -> torch.Tensor:
    """Inputs where the candidate activations differ: both tails and around the dip at -1.28."""
    g = torch.Generator().manual_seed(0)
    return torch.cat([torch.linspace(-8, 8, 161), torch.randn(64, generator=g) * 3])


@pytest.mark.exercise("silu")
def test_silu_is_x_times_sigmoid_of_x(impl):
    """silu(x) equals x * sigmoid(x) elementwise."""
    x = _grid()
    check_close(impl.silu(x), silu(x), atol=ATOL, rtol=RTOL)


@pytest.mark.exercise("silu")
def test_silu_dips_below_zero_with_minimum_near_minus_1_28(impl):
    """Unlike ReLU, SiLU is negative for x < 0, with its minimum -0.2785 at x = -1.2785."""
    x = torch.linspace(-3, 0, 3001)
    y = impl.silu(x)
    check_close(y.min().reshape(1), torch.tensor([-0.27846]), atol=1e-4, rtol=0,
                what="minimum of silu on [-3, 0]")
    check_close(x[y.argmin()].reshape(1), torch.tensor([-1.2785]), atol=2e-3, rtol=0,
                what="where silu is smallest")


@pytest.mark.exercise("silu")
def test_silu_is_finite_at_extreme_inputs(impl):
    """silu(+-1e4) is +-1e4 and 0 (no NaN from exp overflowing), and keeps shape and dtype."""
    x = torch.tensor([[-1e4, -100.0, 0.0], [100.0, 1e4, -0.0]])
    check_close(impl.silu(x), silu(x), atol=1e-6, rtol=1e-6)
    half = _grid().to(torch.bfloat16)
    check_close(impl.silu(half), silu(half), atol=0, rtol=1e-2)


def _ffn_weights(C: int, H: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 5, C, generator=g)
    w_gate = torch.randn(H, C, generator=g) / math.sqrt(C)
    w_up = torch.randn(H, C, generator=g) / math.sqrt(C)
    w_down = torch.randn(C, H, generator=g) / math.sqrt(H)
    return x, w_gate, w_up, w_down


@pytest.mark.exercise("swiglu")
def test_swiglu_is_down_of_silu_gate_times_up(impl):
    """swiglu(x) equals down(silu(x @ w_gate.T) * (x @ w_up.T)) for a non-square FFN."""
    x, wg, wu, wd = _ffn_weights(C=12, H=32, seed=1)
    check_close(impl.swiglu(x, wg, wu, wd), swiglu(x, wg, wu, wd), atol=ATOL, rtol=RTOL)


@pytest.mark.exercise("swiglu")
def test_swiglu_equals_minimind_feedforward_module(impl):
    """Given a MiniMind FeedForward's gate/up/down_proj weights, swiglu is its forward."""
    config = ModelConfig(hidden_size=16, num_attention_heads=4, intermediate_size=48)
    torch.manual_seed(2)
    ffn = FeedForward(config)
    x = torch.randn(3, 7, 16, generator=torch.Generator().manual_seed(3))
    w = (ffn.gate_proj.weight, ffn.up_proj.weight, ffn.down_proj.weight)
    with torch.no_grad():
        check_close(impl.swiglu(x, *w), ffn(x), atol=ATOL, rtol=RTOL)


@pytest.mark.exercise("swiglu")
def test_swiglu_with_zero_gate_weights_outputs_zero(impl):
    """A zero gate closes every unit: silu(0) = 0, so the output is exactly zero."""
    x, wg, wu, wd = _ffn_weights(C=8, H=24, seed=4)
    out = impl.swiglu(x, torch.zeros_like(wg), wu, wd)
    check_close(out, torch.zeros(2, 5, 8), atol=1e-7, rtol=0)


MINIMIND_WIDTHS = {  # hidden_size -> intermediate_size, as MiniMind's configs derive them
    512: 1408, 768: 2048, 640: 1728, 64: 192, 24: 64, 48: 128, 96: 256, 100: 320,
}


def _known_width_mistake(found: object, *args: int) -> str:
    """Every catalogued wrong version of intermediate_size that returns `found` for `args`."""
    lines = ""
    for known in catalogue("04_feedforward").of("intermediate_size"):
        wrong = known.fn(*args)
        if wrong == found and type(wrong) is type(found):
            lines += (f"\n  this matches a known mistake: {known.description}"
                      f"\n  hint: {known.hint}")
    return lines


@pytest.mark.exercise("intermediate_size")
def test_intermediate_size_matches_minimind_widths(impl):
    """intermediate_size gives 1408 for hidden 512, 2048 for 768, and keeps exact multiples."""
    for hidden, expected in MINIMIND_WIDTHS.items():
        found = impl.intermediate_size(hidden)
        assert isinstance(found, int) and not isinstance(found, bool), (
            f"intermediate_size({hidden}) returned {type(found).__name__}; return a Python int"
            + _known_width_mistake(found, hidden))
        assert found == expected, (
            f"intermediate_size({hidden}) = {found}, expected {expected} "
            f"(8/3 * {hidden} = {hidden * 8 / 3:.1f}, rounded up to a multiple of 64)"
            + _known_width_mistake(found, hidden))


@pytest.mark.exercise("intermediate_size")
@given(hidden=st.integers(1, 8192), multiple_of=st.sampled_from([1, 8, 32, 64, 100, 256]))
def test_intermediate_size_is_smallest_multiple_at_least_8_thirds_of_hidden(
        impl, hidden, multiple_of):
    """The width is the smallest multiple of multiple_of that is >= int(8/3 * hidden)."""
    found = impl.intermediate_size(hidden, multiple_of)
    expected = intermediate_size(hidden, multiple_of)
    assert found == expected, (
        f"intermediate_size({hidden}, multiple_of={multiple_of}) = {found}, expected {expected}: "
        f"it must be a multiple of {multiple_of}, >= int(8 * {hidden} / 3) = {8 * hidden // 3}, "
        f"and less than that plus {multiple_of}" + _known_width_mistake(found, hidden, multiple_of))
