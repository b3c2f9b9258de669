"""Trainer throughput and peak memory at a few model sizes, one fresh process per size.

    python bench/train_speed.py                 # the table in README.md ("Train a model")
    python bench/train_speed.py --threads 4 --device cuda

Each size trains for a few steps on random token ids (speed does not depend on the text) with
the library's `train()`, the same loop `minimind train` runs. Tokens/s is the trainer's moving
average over the last steps; peak memory is the process's peak resident set (VmHWM) on CPU, or
torch's peak allocation on CUDA. Numbers depend on the machine and its load: compare rows
measured in one run, not across machines.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's minimind, not another one installed
# (preset, batch size, sequence length, steps)
SIZES = [("tiny", 16, 64, 30), ("char-small", 16, 128, 20), ("small", 16, 128, 10),
         ("minimind2-small", 4, 256, 4)]


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def one(preset_name: str, batch: int, seq: int, steps: int, threads: int, device: str) -> dict:
    import numpy as np
    import torch

    from minimind.config import preset
    from minimind.dataset import TokenData
    from minimind.distributed import Dist, pick_device
    from minimind.model import count_parameters
    from minimind.tokenizer import CharTokenizerAdapter
    from minimind.trainer import TrainConfig, train

    torch.set_num_threads(threads)
    config = preset(preset_name)
    V = config.vocab_size
    tok = CharTokenizerAdapter("".join(chr(0x100 + i) for i in range(V)))  # V distinct ids
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "random.bin"
        ids = np.random.default_rng(0).integers(0, V, 200_000, dtype=np.uint16)
        ids.tofile(path)
        path.with_suffix(".json").write_text(json.dumps({"dtype": "uint16", "tokens": len(ids)}))
        data = TokenData.open(path)
        info = Dist(device=pick_device(device))
        cfg = TrainConfig(steps=steps, batch_size=batch, seq_len=seq, warmup=0, eval_every=0,
                          eval_batches=1, save_every=0)
        result = train(config, cfg, data, Path(tmp) / "b.pt", tok, info=info, progress=False,
                       metrics=False, plot=False)
    cuda = info.device.type == "cuda"
    return {"preset": preset_name, "params": count_parameters(config), "batch": batch,
            "seq_len": seq, "steps": steps, "tokens_per_second": round(result.tokens_per_second),
            "peak_mb": round(torch.cuda.max_memory_allocated() / 2**20 if cuda
                             else peak_rss_mb()),
            "memory": "cuda allocated" if cuda else "process RSS"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--one", nargs=4, metavar=("PRESET", "B", "T", "STEPS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        name, b, t, s = args.one
        print(json.dumps(one(name, int(b), int(t), int(s), args.threads, args.device)))
        return
    print("| preset | parameters | batch x seq | tokens/s | peak memory (MB) |")
    print("| --- | ---: | --- | ---: | ---: |")
    for name, b, t, s in SIZES:
        out = subprocess.run(
            [sys.executable, __file__, "--one", name, str(b), str(t), str(s),
             "--threads", str(args.threads), "--device", args.device],
            cwd=ROOT, capture_output=True, text=True, check=True,
            env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {r['preset']} | {r['params']:,} | {r['batch']} x {r['seq_len']} | "
              f"{r['tokens_per_second']:,} | {r['peak_mb']:,} ({r['memory']}) |", flush=True)


if __name__ == "__main__":
    main()
