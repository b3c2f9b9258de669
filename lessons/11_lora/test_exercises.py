"""Exercise tests for lesson 11: each passes on a right answer and names the mistake otherwise."""
import pytest
import torch
import torch.nn.functional as F

from minimind.course import check_close
from minimind.lora import lora_init, lora_linear, merge_lora


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.exercise("lora_init")
def test_lora_init_draws_a_with_the_generator_and_zeros_b(impl):
    """A = randn(r, in, generator) * std exactly; B = zeros(out, r)."""
    a, b = impl.lora_init(12, 20, 4, std=0.02, generator=_gen(0))
    ref_a, ref_b = lora_init(12, 20, 4, std=0.02, generator=_gen(0))
    check_close(a, ref_a, atol=0, rtol=0, what="A")
    check_close(b, ref_b, atol=0, rtol=0, what="B")


@pytest.mark.exercise("lora_init")
def test_lora_init_makes_the_update_exactly_zero_but_not_frozen(impl):
    """B @ A is exactly 0, and A is not: the gradient of B (through A x) can be nonzero."""
    a, b = impl.lora_init(16, 16, 8, generator=_gen(1))
    assert tuple(a.shape) == (8, 16) and tuple(b.shape) == (16, 8), (
        f"A {tuple(a.shape)} and B {tuple(b.shape)}: expected A (rank, in), B (out, rank)")
    assert torch.count_nonzero(b @ a) == 0, "B @ A is not zero: the model changes at init"
    assert torch.count_nonzero(a) == a.numel(), "A has zeros: B's gradient would vanish"
    assert a.std().item() < 0.1, f"A's std is {a.std().item():.3f}: A should start small"


@pytest.mark.exercise("lora_init")
@pytest.mark.parametrize("rank", [0, -1])
def test_lora_init_refuses_a_rank_below_one(impl, rank):
    """rank < 1 is a ValueError."""
    with pytest.raises(ValueError):
        impl.lora_init(8, 8, rank)


def _layer(seed, out=6, inp=5, rank=3, batch=(2, 4)):
    g = _gen(seed)
    return (torch.randn(*batch, inp, generator=g), torch.randn(out, inp, generator=g),
            torch.randn(rank, inp, generator=g), torch.randn(out, rank, generator=g),
            torch.randn(out, generator=g))


@pytest.mark.exercise("lora_linear")
@pytest.mark.parametrize("alpha", [3.0, 16.0])
def test_lora_linear_adds_the_scaled_low_rank_update(impl, alpha):
    """x W^T + b + (alpha / r) x A^T B^T, with rank 3 so every scale shows."""
    x, w, a, b, bias = _layer(0)
    check_close(impl.lora_linear(x, w, a, b, alpha, bias), lora_linear(x, w, a, b, alpha, bias),
                atol=1e-5, rtol=1e-5)


@pytest.mark.exercise("lora_linear")
def test_lora_linear_with_a_zero_b_is_the_base_layer(impl):
    """B = 0: exactly F.linear(x, W, bias)."""
    x, w, a, b, bias = _layer(1)
    check_close(impl.lora_linear(x, w, a, torch.zeros_like(b), 4.0, bias),
                F.linear(x, w, bias), atol=0, rtol=0)


@pytest.mark.exercise("lora_linear")
def test_lora_linear_without_bias(impl):
    """bias=None: no bias term anywhere."""
    x, w, a, b, _ = _layer(2)
    check_close(impl.lora_linear(x, w, a, b, 6.0), lora_linear(x, w, a, b, 6.0), atol=1e-5,
                rtol=1e-5)


@pytest.mark.exercise("merge_lora")
@pytest.mark.parametrize("alpha", [3.0, 16.0])
def test_merge_lora_is_w_plus_the_scaled_update(impl, alpha):
    """A rectangular layer (out 6, in 5, rank 3): the merged (out, in) weight."""
    _, w, a, b, _ = _layer(3)
    check_close(impl.merge_lora(w, a, b, alpha), merge_lora(w, a, b, alpha), atol=1e-5,
                rtol=1e-5, what="merged weight")


@pytest.mark.exercise("merge_lora")
def test_a_merged_layer_computes_what_the_adapter_computes(impl):
    """x W_merged^T + b == lora_linear(x, W, A, B, alpha, b), square layers, ranks 1-4."""
    for seed in range(12):
        rank, alpha = 1 + seed % 4, (1.0, 8.0, 32.0)[seed % 3]
        x, w, a, b, bias = _layer(seed, out=6, inp=6, rank=rank)
        merged = impl.merge_lora(w, a, b, alpha)
        check_close(F.linear(x, merged, bias), lora_linear(x, w, a, b, alpha, bias),
                    atol=1e-4, rtol=1e-4, what=f"merged layer's output (seed {seed})")
