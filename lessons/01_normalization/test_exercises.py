"""Exercise tests for lesson 01: each passes on a right answer and names the mistake otherwise."""
import pytest
import torch
from torch import nn

from minimind.course import check_close
from minimind.norm import RMSNorm, rms_norm

ATOL, RTOL = 1e-5, 1e-5


def _inputs(seed: int = 0, shape=(2, 5, 16)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 3 + 0.5
    x[0, 0] *= 1e-3  # a row whose mean square is near eps: where eps placement shows
    weight = torch.rand(shape[-1], generator=g) + 0.5
    bias = torch.randn(shape[-1], generator=g)
    return x, weight, bias


@pytest.mark.exercise("rms_norm")
def test_rms_norm_matches_reference(impl):
    """rms_norm equals x / sqrt(mean(x^2) + eps) * weight over the last dim."""
    x, w, _ = _inputs()
    check_close(impl.rms_norm(x, w), rms_norm(x, w), atol=ATOL, rtol=RTOL)


@pytest.mark.exercise("rms_norm")
def test_rms_norm_uses_its_eps_argument(impl):
    """A large eps shrinks the output exactly as sqrt(mean(x^2) + eps) says."""
    x, w, _ = _inputs(1)
    check_close(impl.rms_norm(x, w, eps=0.5), rms_norm(x, w, eps=0.5), atol=ATOL, rtol=RTOL)


@pytest.mark.exercise("rms_norm")
def test_rms_norm_of_zero_vector_is_zero_not_nan(impl):
    """eps keeps 0 / sqrt(0) from producing NaN: a zero row stays zero."""
    x = torch.zeros(3, 8)
    check_close(impl.rms_norm(x, torch.ones(8)), torch.zeros(3, 8), atol=0, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.exercise("rms_norm")
def test_rms_norm_of_half_precision_is_float32_result_rounded(impl, dtype):
    """Half-precision input is normalised in float32 and returned in its own dtype."""
    x, w, _ = _inputs(2)
    x = (x * 100).to(dtype)  # squares up to ~1e6 overflow float16 (max 65504)
    expected = rms_norm(x.float(), w).to(dtype)
    check_close(impl.rms_norm(x, w), expected, atol=0, rtol=1e-2)


@pytest.mark.exercise("layer_norm")
def test_layer_norm_matches_reference(impl):
    """layer_norm equals (x - mean) / sqrt(biased var + eps) * weight + bias over the last dim."""
    x, w, b = _inputs(3)
    eps = 1e-5
    expected = nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)
    check_close(impl.layer_norm(x, w, b, eps), expected, atol=ATOL, rtol=RTOL)


@pytest.mark.exercise("layer_norm")
def test_layer_norm_output_has_zero_mean_unit_variance(impl):
    """With unit weight and zero bias, every row comes out with mean 0 and variance ~1."""
    x, _, _ = _inputs(4)
    x = x[1:]  # rows of ordinary scale, where eps is negligible
    y = impl.layer_norm(x, torch.ones(16), torch.zeros(16))
    check_close(y.mean(-1), torch.zeros(x.shape[:-1]), atol=1e-5, rtol=0, what="row means")
    check_close(y.var(-1, unbiased=False), torch.ones(x.shape[:-1]), atol=1e-3, rtol=0,
                what="row variances")


def _residual_setup(seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 8, generator=g) * 2
    sublayer = nn.Linear(8, 8)
    norm = RMSNorm(8)
    with torch.no_grad():
        for p in (*sublayer.parameters(), norm.weight):
            p.copy_(torch.randn(p.shape, generator=g))
    return x, sublayer, norm


@pytest.mark.exercise("pre_norm_residual")
def test_pre_norm_residual_adds_sublayer_of_normed_input_to_raw_input(impl):
    """Pre-LN computes x + sublayer(norm(x)): the skip path carries x untouched."""
    x, f, norm = _residual_setup(5)
    with torch.no_grad():
        check_close(impl.pre_norm_residual(x, f, norm), x + f(norm(x)), atol=ATOL, rtol=RTOL)


@pytest.mark.exercise("post_norm_residual")
def test_post_norm_residual_normalises_the_sum(impl):
    """Post-LN computes norm(x + sublayer(x)): the norm sits on the residual path itself."""
    x, f, norm = _residual_setup(6)
    with torch.no_grad():
        check_close(impl.post_norm_residual(x, f, norm), norm(x + f(x)), atol=ATOL, rtol=RTOL)
