"""Benchmarks: naive, tiled, PyTorch's fused attention and yours, against a plain matmul.

`pytest lessons/03_attention --benchmark-only` times every kernel (one group per sequence length)
and prints each one's GFLOP/s as a fraction of the matmul's; add `--plots DIR` for time and
memory against sequence length. In a plain run each benchmark executes once, as a test that the
kernel runs; no test asserts a wall time.
"""
from __future__ import annotations

import time
from typing import Callable

import pytest
import torch
import torch.nn.functional as F

from minimind.attention import scaled_dot_product_attention, tiled_attention
from minimind.course import check_close
from minimind.lab import threads
from minimind.lab.measure import peak_allocated

B, H, D = 1, 8, 64  # batch, heads, head dim: one layer of a small model
SEQ_LENS = [256, 1024, 4096]
BLOCK = 256  # keys per tile of the tiled kernel
MATMUL_N = 2048
KERNELS = ["naive", "tiled", "fused SDPA", "yours (naive)", "yours (tiled)"]


def _kernel(name: str, impl) -> Callable:
    return {
        "naive": scaled_dot_product_attention,
        "tiled": lambda q, k, v: tiled_attention(q, k, v, BLOCK),
        "fused SDPA": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        "yours (naive)": lambda q, k, v: impl.scaled_dot_product_attention(q, k, v),
        "yours (tiled)": lambda q, k, v: impl.tiled_attention(q, k, v, BLOCK),
    }[name]


def _causal_attention_flops(seq: int) -> float:
    """Useful FLOPs: q.k and p.v, 2 * d each, for the seq(seq+1)/2 allowed (query, key) pairs."""
    return 4 * B * H * D * seq * (seq + 1) / 2


def _time(benchmark, fn: Callable, rounds: int) -> tuple[float, bool]:
    """Fastest of `rounds` timed calls; a single call when benchmarks are disabled."""
    with threads(1):  # one thread: timings on a shared machine are comparable within a run
        start = time.perf_counter()
        benchmark.pedantic(fn, rounds=rounds, warmup_rounds=1, iterations=1)
        elapsed = time.perf_counter() - start
    if benchmark.enabled:
        return benchmark.stats.stats.min, True
    return elapsed, False


def _wants_memory(request, benchmark) -> bool:
    return benchmark.enabled or request.config.getoption("--plots") is not None


@pytest.mark.benchmark(group="matmul")
def test_matmul_rate_is_the_yardstick_for_attention_kernels(benchmark, bench_results):
    """A 2048^3 float32 matmul on one thread measures the GFLOP/s this machine can reach."""
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(MATMUL_N, MATMUL_N, generator=g) for _ in range(2))
    seconds, timed = _time(benchmark, lambda: a @ b, rounds=5)
    bench_results.add("matmul", MATMUL_N, seconds, 2 * MATMUL_N**3, None, timed)


@pytest.mark.parametrize("seq, kernel", [
    pytest.param(T, name, id=f"{name}-{T}",
                 marks=pytest.mark.benchmark(group=f"attention seq={T}"))
    for T in SEQ_LENS for name in KERNELS
])
def test_attention_kernels_are_timed_in_one_group_per_seq_len(
    benchmark, bench_results, impl, request, seq, kernel
):
    """Causal attention over (1, 8, seq, 64) float32: naive, tiled, fused SDPA, and yours."""
    fn = _kernel(kernel, impl)
    if kernel.startswith("yours"):  # not started -> reported as such; wrong -> not worth timing
        g = torch.Generator().manual_seed(1)
        q, k, v = (torch.randn(1, 2, 40, 16, generator=g) for _ in range(3))
        try:  # a stub raises NotStarted, which the plugin reports as "not started"
            check_close(fn(q, k, v), scaled_dot_product_attention(q, k, v), atol=1e-5, rtol=1e-5)
        except AssertionError:
            pytest.skip(f"{kernel} gives wrong answers: run `pytest -m exercise` and fix it first")
    g = torch.Generator().manual_seed(seq)
    q, k, v = (torch.randn(B, H, seq, D, generator=g) for _ in range(3))
    seconds, timed = _time(benchmark, lambda: fn(q, k, v), rounds=3 if seq >= 4096 else 5)
    peak = None
    if _wants_memory(request, benchmark):
        with threads(1):
            peak = peak_allocated(lambda: fn(q, k, v))
    bench_results.add(kernel, seq, seconds, _causal_attention_flops(seq), peak, timed)
    benchmark.extra_info.update(seq=seq, gflops=_causal_attention_flops(seq) / seconds / 1e9,
                                peak_mib=peak / 2**20 if peak is not None else None)


@pytest.mark.benchmark(group="gpu memory")
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fused_attention_on_a_gpu_never_allocates_the_score_matrix(benchmark):
    """On a GPU, naive attention allocates the seq^2 scores; fused SDPA stays far below that."""
    T, device = 4096, "cuda"
    g = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(B, H, T, D, device=device, generator=g) for _ in range(3))
    peaks = {}
    for name, fn in {"naive": scaled_dot_product_attention, "tiled": _kernel("tiled", None),
                     "fused SDPA": _kernel("fused SDPA", None)}.items():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        with torch.no_grad():
            out = fn(q, k, v)
        torch.cuda.synchronize()
        peaks[name] = torch.cuda.max_memory_allocated() - start
        del out
    benchmark.extra_info.update({f"{n} peak MiB": p / 2**20 for n, p in peaks.items()})
    benchmark.pedantic(lambda: _kernel("fused SDPA", None)(q, k, v), rounds=3, iterations=1)
    scores = B * H * T * T * 4
    assert peaks["naive"] >= scores, peaks
    assert peaks["fused SDPA"] < scores / 10, peaks
    assert peaks["tiled"] < scores / 2, peaks
