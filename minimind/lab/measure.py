"""Measuring what a computation costs on a CPU: the largest tensor it creates and its peak
allocated memory. Lesson 03 uses these to show why tiled attention needs less memory."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
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


def _nonfinite(value: Any) -> bool:
    """True when value is, or (a tuple or model output) holds first, a tensor with inf or NaN."""
    if isinstance(value, (tuple, list)):
        value = next((v for v in value if isinstance(v, Tensor)), None)
    elif value is not None and not isinstance(value, Tensor):
        value = getattr(value, "logits", None)
    return isinstance(value, Tensor) and value.is_floating_point() and \
        not bool(torch.isfinite(value).all())


def nonfinite_origin(model: nn.Module, loss_fn: Callable[[], Tensor]) -> str | None:
    """Where the first inf or NaN of one training step appears, or None when there is none.

    Runs loss_fn() (the forward pass) and the backward pass, checking in the order they compute:
    the weights ("weight NAME"), every module's output as it finishes ("output NAME", so an
    inner module is named before the block that holds it), the loss ("loss"), then the
    gradients as backward produces them ("grad NAME"). Leaves the gradients in place.
    """
    for name, p in model.named_parameters():
        if _nonfinite(p):
            return f"weight {name}"
    found: list[str] = []

    def watch(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if not found and _nonfinite(output):
                found.append(f"output {name}")
        return hook

    def watch_grad(name: str) -> Callable[[Tensor], None]:
        def hook(grad: Tensor) -> None:
            if not found and _nonfinite(grad):
                found.append(f"grad {name}")
        return hook

    handles = [m.register_forward_hook(watch(n or "(the whole model)"))
               for n, m in model.named_modules()]
    try:
        loss = loss_fn()
        if found:
            return found[0]
        if _nonfinite(loss):
            return "loss"
        handles += [p.register_hook(watch_grad(n)) for n, p in model.named_parameters()
                    if p.requires_grad]
        loss.backward()
    finally:
        for h in handles:
            h.remove()
    return found[0] if found else None
