"""Data parallelism: two processes (gloo, CPU) end with the weights of one at the same batch."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from minimind.checkpoint import read_checkpoint
from minimind.cli import main
from minimind.distributed import Dist, local_slice

from .helpers import small_corpus

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ["--tokenizer", "char", "--preset", "tiny", "--steps", "4", "--seq-len", "16",
          "--grad-accum", "2", "--eval-every", "2", "--eval-batches", "2", "--lr", "1e-3",
          "--warmup", "1", "--threads", "1", "--no-progress"]


def test_each_rank_takes_its_own_rows_of_the_global_batch():
    """Rank 1 of 2 gets rows 2..3 of a 4-row batch; the slices tile the batch."""
    batch = torch.arange(4)
    parts = [local_slice(batch, Dist(rank=r, world_size=2)) for r in range(2)]
    assert torch.equal(torch.cat(parts), batch) and parts[1].tolist() == [2, 3]


def test_two_processes_end_with_the_weights_of_one_at_the_same_global_batch(tmp_path):
    """torchrun --nproc_per_node 2 at batch 2 each == 1 process at batch 4, within 1e-6."""
    src, _, _ = small_corpus(tmp_path)
    common = ["train", "--data", str(src), "--cache-dir", str(tmp_path / "cache"), *RECIPE]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "minimind", *common, "--out", str(tmp_path / "ddp.pt"), "--batch-size", "2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert main([*common, "--out", str(tmp_path / "one.pt"), "--batch-size", "4"]) == 0
    two, one = read_checkpoint(tmp_path / "ddp.pt"), read_checkpoint(tmp_path / "one.pt")
    assert two["step"] == one["step"] == 4
    for name, tensor in one["model"].items():
        torch.testing.assert_close(two["model"][name], tensor, rtol=0, atol=1e-6)
    torch.testing.assert_close(two["extra"]["val_loss"], one["extra"]["val_loss"],
                               rtol=0, atol=1e-5)
