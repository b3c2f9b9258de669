"""Exercise tests for lesson 05: each passes on a right answer and names the mistake otherwise."""
import math

import pytest
import torch
from torch import nn

from minimind.course import check_close
from minimind.model import residual_stack, scaled_init_std

ATOL, RTOL = 1e-6, 1e-5


def _stack(seed: int, depth: int = 3, width: int = 8) -> tuple[torch.Tensor, list[nn.Module]]:
    """An input and `depth` different tanh layers: order and skip placement both show."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 5, width, generator=g)
    layers = []
    for _ in range(depth):
        linear = nn.Linear(width, width)
        with torch.no_grad():
            linear.weight.copy_(torch.randn(width, width, generator=g) / math.sqrt(width))
            linear.bias.copy_(torch.randn(width, generator=g) * 0.5)
        layers.append(nn.Sequential(linear, nn.Tanh()))
    return x, layers


def _compose(x: torch.Tensor, layers) -> torch.Tensor:
    for f in layers:
        x = f(x)
    return x


@pytest.mark.exercise("residual_stack")
def test_residual_stack_adds_each_layer_to_the_running_stream(impl):
    """With residual=True every layer reads the running sum and adds its output to it."""
    x, layers = _stack(0)
    with torch.no_grad():
        check_close(impl.residual_stack(x, layers, residual=True),
                    residual_stack(x, layers, residual=True), atol=ATOL, rtol=RTOL)


@pytest.mark.exercise("residual_stack")
def test_residual_stack_without_residual_is_plain_composition(impl):
    """With residual=False the stack is f_L(...f_2(f_1(x))): no skip connection anywhere."""
    x, layers = _stack(1)
    with torch.no_grad():
        check_close(impl.residual_stack(x, layers, residual=False), _compose(x, layers),
                    atol=ATOL, rtol=RTOL)


@pytest.mark.exercise("residual_stack")
def test_residual_stack_default_is_residual(impl):
    """residual defaults to True: residual_stack(x, layers) is the residual stack."""
    x, layers = _stack(2)
    with torch.no_grad():
        check_close(impl.residual_stack(x, layers), residual_stack(x, layers, residual=True),
                    atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.exercise("residual_stack")
def test_residual_stack_of_no_layers_is_the_identity(impl, residual):
    """An empty stack returns its input unchanged, with or without residuals."""
    x, _ = _stack(3)
    check_close(impl.residual_stack(x, [], residual=residual), x, atol=0, rtol=0)


@pytest.mark.exercise("residual_stack")
def test_residual_stack_gradient_passes_through_the_skip_path_untouched(impl):
    """With residual=True and layers that output zeros, d(sum out)/dx is exactly 1 everywhere."""
    x, _ = _stack(4)
    x = x.clone().requires_grad_(True)
    dead = [lambda h: h * 0.0 for _ in range(16)]  # a branch that has learned nothing yet
    impl.residual_stack(x, dead, residual=True).sum().backward()
    assert x.grad is not None, "no gradient reached x: is the stream detached somewhere?"
    # the skip path is the identity, so it carries the gradient of the sum (all ones) unchanged
    check_close(x.grad, torch.ones_like(x), atol=0, rtol=0, what="gradient at the input")


@pytest.mark.exercise("residual_stack")
def test_residual_stack_rejects_a_layer_that_changes_the_shape(impl):
    """A layer whose output cannot be added to the stream raises ValueError naming the shapes."""
    x, layers = _stack(5)

    def squash(h):
        return h.mean(-1, keepdim=True)  # (2, 5, 1): would broadcast silently

    with pytest.raises(ValueError, match=r"\(2, 5, 1\)"):
        impl.residual_stack(x, [layers[0], squash], residual=True)


@pytest.mark.exercise("scaled_init_std")
@pytest.mark.parametrize("base_std, n_layers", [(0.02, 8), (0.02, 16), (1.0, 1), (0.5, 3)])
def test_scaled_init_std_is_base_over_root_two_layers(impl, base_std, n_layers):
    """scaled_init_std(base, L) = base / sqrt(2 L): MiniMind2-Small (0.02, 8) gives 0.005."""
    check_close(impl.scaled_init_std(base_std, n_layers), scaled_init_std(base_std, n_layers),
                atol=0, rtol=1e-9, what="std")


@pytest.mark.exercise("scaled_init_std")
def test_scaled_init_std_keeps_the_stream_variance_independent_of_depth(impl):
    """2L branches with the scaled std add up to the variance of one branch at base std."""
    base = 0.02
    for n_layers in (1, 2, 8, 16, 64):
        s = impl.scaled_init_std(base, n_layers)
        total = 2 * n_layers * s ** 2
        assert total == pytest.approx(base ** 2, rel=1e-9), (
            f"with {n_layers} layers, 2L * std^2 = {total:.3g}, expected base^2 = {base**2:.3g}:"
            " the stream's variance at init would depend on depth")


@pytest.mark.exercise("scaled_init_std")
@pytest.mark.parametrize("n_layers", [0, -2])
def test_scaled_init_std_rejects_fewer_than_one_layer(impl, n_layers):
    """n_layers < 1 is not a model: raise ValueError instead of dividing by zero or NaN."""
    with pytest.raises(ValueError, match="n_layers"):
        impl.scaled_init_std(0.02, n_layers)
