"""Lesson 01 benchmarks: RMSNorm against LayerNorm, hand-written and built in.

`pytest lessons/01_normalization --benchmark-only` times them (one group, one thread); a plain run
executes each once as a test. No test asserts a time: read the table.
"""
import pytest
import torch
from torch import nn

from minimind.lab import threads
from minimind.norm import layer_norm, rms_norm

SHAPE = (64, 256, 512)  # (batch, seq, hidden)


@pytest.fixture(scope="module")
def activations():
    g = torch.Generator().manual_seed(0)
    return torch.randn(SHAPE, generator=g), torch.rand(SHAPE[-1], generator=g) + 0.5


def _bench(benchmark, fn, *args):
    with threads(1):
        out = benchmark(fn, *args)
    assert out.shape == SHAPE and torch.isfinite(out).all()


@pytest.mark.benchmark(group="norm forward, (64, 256, 512), 1 thread")
def test_bench_hand_written_rms_norm(benchmark, activations):
    """Hand-written RMSNorm: one reduction (mean of squares), no centering, no bias."""
    x, w = activations
    _bench(benchmark, rms_norm, x, w)


@pytest.mark.benchmark(group="norm forward, (64, 256, 512), 1 thread")
def test_bench_hand_written_layer_norm(benchmark, activations):
    """Hand-written LayerNorm: two reductions (mean, then variance) plus a bias."""
    x, w = activations
    _bench(benchmark, layer_norm, x, w, torch.zeros_like(w))


@pytest.mark.benchmark(group="norm forward, (64, 256, 512), 1 thread")
def test_bench_torch_rms_norm(benchmark, activations):
    """torch.nn.functional.rms_norm, PyTorch's built-in."""
    x, w = activations
    _bench(benchmark, nn.functional.rms_norm, x, (SHAPE[-1],), w, 1e-5)


@pytest.mark.benchmark(group="norm forward, (64, 256, 512), 1 thread")
def test_bench_torch_layer_norm(benchmark, activations):
    """torch.nn.functional.layer_norm, which has a fused CPU kernel."""
    x, w = activations
    _bench(benchmark, nn.functional.layer_norm, x, (SHAPE[-1],), w, torch.zeros_like(w), 1e-5)
