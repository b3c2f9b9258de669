"""Command line: `python -m minimind progress | train | generate`.

    python -m minimind progress [--impl FILE]      exercise progress for every lesson (seconds)
    python -m minimind train --out ckpt.pt [--preset char-small] [--steps 500] [--corpus FILE]
    python -m minimind generate ckpt.pt --prompt "ROMEO:" [--tokens 200]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def progress(impl: str | None) -> int:
    """Run only the exercise tests (no experiments) and print the progress table per lesson."""
    from minimind.course.progress import run_progress  # the course, only for this command

    return run_progress(Path.cwd(), impl)


def train(args: argparse.Namespace) -> int:
    from minimind.checkpoint import save_checkpoint
    from minimind.config import preset
    from minimind.data import load_corpus
    from minimind.lab import TrainSettings, train_lm

    corpus = load_corpus(args.corpus)
    config = preset(args.preset, vocab_size=corpus.vocab_size)
    settings = TrainSettings(steps=args.steps, lr=args.lr, batch_size=args.batch_size,
                             seq_len=args.seq_len, warmup=args.warmup, grad_clip=1.0,
                             num_threads=args.threads)
    run = train_lm(config, settings, seed=args.seed, corpus=corpus)
    if run.first_nonfinite_step is not None:
        print(f"training diverged at step {run.first_nonfinite_step}; nothing saved")
        return 1
    save_checkpoint(args.out, run.model, step=args.steps,
                    extra={"chars": corpus.tokenizer.chars, "val_loss": run.val_loss})
    print(f"trained {args.steps} steps in {run.seconds:.1f}s: train loss {run.final_loss:.3f}, "
          f"val loss {run.val_loss:.3f}; saved {args.out}")
    return 0


def generate_text(args: argparse.Namespace) -> int:
    import torch

    from minimind.checkpoint import load_checkpoint
    from minimind.data import CharTokenizer
    from minimind.generate import generate

    model, state = load_checkpoint(args.checkpoint)
    tokenizer = CharTokenizer(state["extra"]["chars"])
    ids = tokenizer.encode(args.prompt)[None, :]  # (1, T)
    out = generate(model, ids, args.tokens, temperature=args.temperature, top_k=args.top_k,
                   generator=torch.Generator().manual_seed(args.seed))
    print(tokenizer.decode(out[0]))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minimind", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("progress", help="exercise progress for every lesson")
    p.add_argument("--impl", help="a module with your implementations (default: exercises.py)")
    t = sub.add_parser("train", help="train a character model and save a checkpoint")
    t.add_argument("--out", required=True)
    t.add_argument("--preset", default="char-small")
    t.add_argument("--corpus", default=None, help="UTF-8 text file (default: Shakespeare)")
    t.add_argument("--steps", type=int, default=500)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--seq-len", type=int, default=128)
    t.add_argument("--warmup", type=int, default=50)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--seed", type=int, default=0)
    g = sub.add_parser("generate", help="sample text from a checkpoint")
    g.add_argument("checkpoint")
    g.add_argument("--prompt", default="\n")
    g.add_argument("--tokens", type=int, default=200)
    g.add_argument("--temperature", type=float, default=0.8)
    g.add_argument("--top-k", type=int, default=None)
    g.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "progress":
        return progress(args.impl)
    if args.command == "train":
        return train(args)
    return generate_text(args)


if __name__ == "__main__":
    sys.exit(main())
