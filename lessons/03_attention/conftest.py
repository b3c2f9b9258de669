"""Lesson 03's benchmark summary: each kernel's GFLOP/s as a fraction of a plain matmul's.

test_benchmarks.py records what it timed into `bench_results`; at the end of the run this prints
one table (when benchmarks were enabled: `--benchmark-only` or `--benchmark-enable`) and, with
`--plots DIR`, draws time and peak memory against sequence length
(DIR/03_attention/attention-benchmarks.png).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from minimind.lab import LineFigure, Panels, Table

MiB = 2**20
LESSON = Path(__file__).parent.name


@dataclass
class BenchResult:
    kernel: str
    seq: int
    seconds: float  # fastest round when benchmarking, the single call otherwise
    flops: float  # useful floating-point operations of one call
    peak_bytes: int | None  # peak allocated above the start (torch.profiler), when measured
    timed: bool  # True when pytest-benchmark timed several rounds


class BenchResults(list):
    """Where benchmarks leave their numbers for the summary table and the figure."""

    def add(self, *args: Any) -> None:
        self.append(BenchResult(*args))


_RESULTS = pytest.StashKey[BenchResults]()


@pytest.fixture
def bench_results(request: pytest.FixtureRequest) -> BenchResults:
    """Collects BenchResult(kernel, seq, seconds, flops, peak_bytes, timed) for the summary."""
    return request.config.stash.setdefault(_RESULTS, BenchResults())


def summary_table(results: list[BenchResult]) -> Table:
    matmul = [r for r in results if r.kernel == "matmul"]
    peak_rate = max((r.flops / r.seconds for r in matmul), default=None)
    rows = []
    for r in sorted(results, key=lambda r: (r.seq, r.kernel != "matmul", r.seconds)):
        rate = r.flops / r.seconds / 1e9
        rows.append([r.kernel, r.seq, r.seconds * 1e3, rate,
                     rate * 1e9 / peak_rate if peak_rate else None,
                     r.peak_bytes / MiB if r.peak_bytes is not None else None])
    timed = all(r.timed for r in results)
    return Table(
        "attention kernels vs a plain matmul, 1 thread, float32"
        + ("" if timed else " (single untimed-harness call: noisy)"),
        ["kernel", "seq (matmul: n)", "ms", "GFLOP/s", "of matmul rate", "peak MiB"], rows,
        note="useful FLOPs: matmul 2n^3; causal attention 4 * heads * d * seq(seq+1)/2",
    )


def figure(results: list[BenchResult]) -> Panels:
    """Time and peak memory against sequence length, one curve per kernel."""
    kernels = sorted({r.kernel for r in results if r.kernel != "matmul"})
    times, memory = {}, {}
    for name in kernels:
        rs = sorted((r for r in results if r.kernel == name), key=lambda r: r.seq)
        times[name] = ([r.seq for r in rs], [r.seconds * 1e3 for r in rs])
        mem = [r for r in rs if r.peak_bytes is not None]
        if mem:
            memory[name] = ([r.seq for r in mem], [r.peak_bytes / MiB for r in mem])
    return Panels([
        LineFigure(times, xlabel="sequence length", ylabel="time per call (ms)",
                   title="causal attention, 8 heads x 64, 1 thread", logx=True, logy=True),
        LineFigure(memory, xlabel="sequence length", ylabel="peak allocated (MiB)",
                   title="memory above the inputs", logx=True, logy=True),
    ])


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    results = config.stash.get(_RESULTS, [])
    if not results:
        return
    plots = config.getoption("--plots")
    if not (any(r.timed for r in results) or plots):
        return  # a plain test run: the benchmarks only checked that each kernel runs
    tr = terminalreporter
    tr.section("03_attention benchmarks")
    for line in summary_table(results).render().splitlines():
        tr.write_line(f"  {line}")
    if plots:
        path = figure(results).draw(Path(plots).resolve() / LESSON / "attention-benchmarks.png")
        tr.write_line(f"  figure: {path}")
