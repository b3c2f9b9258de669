"""Data parallelism across processes: one process per device, started by torchrun.

    torchrun --nproc_per_node 4 -m minimind train ...                       # one machine
    torchrun --nnodes 2 --node_rank R --rdzv_endpoint HOST:29500 \\
             --nproc_per_node 8 -m minimind train ...                       # two machines

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them this is one process and nothing
here does any communication. NCCL on CUDA devices, gloo on CPUs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

CPU = torch.device("cpu")


@dataclass(frozen=True)
class Dist:
    """Where this process stands among the training processes."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = CPU

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, metrics and the progress bar."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' is this process's GPU when CUDA is available, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda, but PyTorch sees no CUDA device")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device


def setup(device_name: str = "auto") -> Dist:
    """Join the process group torchrun set up (if any) and pick this process's device."""
    if not launched_by_torchrun():
        return Dist(device=pick_device(device_name))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local_rank)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, local_rank, world, device)


def teardown(info: Dist) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def mean_across(value: torch.Tensor, info: Dist) -> torch.Tensor:
    """The mean of a tensor over all processes (itself when there is one)."""
    if info.enabled:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.AVG if value.is_cuda else dist.ReduceOp.SUM)
        if not value.is_cuda:  # gloo has no AVG
            value /= info.world_size
    return value


def any_across(flag: bool, info: Dist) -> bool:
    """True on every process when it is true on any: all stop at the same step."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier(info: Dist) -> None:
    if info.enabled:
        dist.barrier()


def local_slice(global_batch: torch.Tensor, info: Dist) -> torch.Tensor:
    """This rank's share of a batch every rank drew identically: rows rank*B .. rank*B + B."""
    B = len(global_batch) // info.world_size
    return global_batch[info.rank * B:(info.rank + 1) * B]
