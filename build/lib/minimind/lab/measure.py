"""Measuring what a computation costs on a CPU: the largest tensor it creates and its peak
allocated memory. Lesson 03 uses these to show why tiled attention needs less memory."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode


class _LargestOutput(TorchDispatchMode):
    """Records the bytes of the largest tensor any ATen op returns while active."""

    def __init__(self) -> None:
        super().__init__()
        self.largest, self.op = 0, ""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # PyTorch otherwise wraps __torch_dispatch__ for torch.compile, importing torch._dynamo
        # on first use (seconds of start-up for a measurement that never compiles anything).
        # A private hook of torch 2.13, the pinned version: recheck it on an upgrade.
        return False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, Tensor) and t.numel() * t.element_size() > self.largest:
                self.largest, self.op = t.numel() * t.element_size(), str(func)
        return out


def largest_intermediate(fn: Callable[[], Any]) -> tuple[int, str]:
    """(bytes, op name) of the largest tensor created while running fn(), inputs excluded.

    Exact and deterministic: every ATen op's outputs are inspected as they are produced. A fused
    kernel (PyTorch's SDPA) counts as one op, so only its outputs are seen, not its scratch space;
    `peak_allocated` sees that.
    """
    with torch.no_grad(), _LargestOutput() as mode:
        fn()
    return mode.largest, mode.op


def peak_allocated(fn: Callable[[], Any]) -> int:
    """Peak bytes allocated above the starting point while fn() runs (CPU), via torch.profiler.

    The profiler records every allocation and free of the CPU allocator (fused kernels' scratch
    buffers included); the running sum of those events, in time order, peaks at the answer.
    """
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        live += e.nbytes()
        peak = max(peak, live)
    return peak
