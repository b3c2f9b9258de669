"""`minimind dpo`, `minimind grpo`, `minimind distill`: post-training from an SFT checkpoint.

Each loads a checkpoint written by `minimind sft` (or `train`), trains in one process, and saves
a checkpoint with the same tokenizer and its stage recorded.
`minimind.cli.build_parser` adds them with `add_posttrain_commands`.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

TASKS_PREFIX = "tasks:"


def _start(args: argparse.Namespace) -> tuple[Any, Any]:
    import torch

    from minimind.cli import UsageError, _load
    from minimind.trainer import check_output

    check_output(Path(args.out), False, args.force)
    torch.set_num_threads(args.threads or torch.get_num_threads())
    torch.manual_seed(args.seed)
    model, tokenizer, _ = _load(args.init)
    if getattr(tokenizer, "kind", "bpe") != "bpe":
        raise UsageError("post-training needs a BPE tokenizer with <|im_start|> and <|im_end|>; "
                         "this checkpoint has a character tokenizer")
    return model, tokenizer


def _save(args: argparse.Namespace, model: Any, tokenizer: Any, stage: str, steps: int,
          summary: dict[str, Any]) -> None:
    from minimind.checkpoint import save_checkpoint

    extra = {"tokenizer": tokenizer.to_state(), "stage": stage, "init": str(args.init),
             "posttrain": summary}
    save_checkpoint(args.out, model, step=steps, extra=extra)


class _Progress:
    """A tqdm bar over the optimizer steps, fed by the trainers' on_step callback."""

    def __init__(self, args: argparse.Namespace, desc: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=args.steps, unit="step", desc=desc, dynamic_ncols=True,
                        disable=args.no_progress)

    def __call__(self, step: int, values: dict[str, float]) -> None:
        self.bar.set_postfix({k: f"{v:.4f}" for k, v in values.items()}, refresh=False)
        self.bar.update(1)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


def _kinds(data: str) -> list[str]:
    return [k for k in data[len(TASKS_PREFIX):].split(",") if k]


def cmd_dpo(args: argparse.Namespace) -> int:
    from minimind.dataset import read_jsonl
    from minimind.dpo import encode_pairs, evaluate_pairs, pair_batch, train_dpo
    from minimind.tasks import make_preferences

    model, tokenizer = _start(args)
    if args.data.startswith(TASKS_PREFIX):
        records = make_preferences(_kinds(args.data), args.examples, args.seed)
        held_out = make_preferences(_kinds(args.data), min(args.examples, 256), args.seed + 1)
        where = "held-out"
    else:
        records = [obj for _, obj in read_jsonl(args.data)]
        n_held = min(len(records) // 10, 256)  # the file's last tenth, never trained on
        where = "held-out" if n_held else "training"
        held_out = records[len(records) - n_held:] if n_held else records[:256]
        records = records[:len(records) - n_held]
    with _Progress(args, "dpo") as progress:
        result = train_dpo(model, tokenizer, records, args.steps, beta=args.beta, lr=args.lr,
                           batch_size=args.batch_size, average=args.average, seed=args.seed,
                           on_step=progress)
    held = pair_batch(encode_pairs(tokenizer, held_out))
    stats = evaluate_pairs(result.policy, result.reference, held, args.beta, args.average)
    first = result.losses[0] if result.losses else float("nan")
    _save(args, result.policy, tokenizer, "dpo", args.steps,
          {"beta": args.beta, "average": args.average, **stats})
    last = result.losses[-1] if result.losses else float("nan")
    print(f"DPO {args.steps} steps: training loss {first:.4f} -> {last:.4f} (ln 2 = 0.6931 "
          f"means nothing moved); on {len(held_out)} {where} pairs: loss {stats['loss']:.4f}, "
          f"reward margin {stats['margin']:.3f}, positive on {stats['accuracy']:.0%}; "
          f"saved {args.out}")
    return 0


def cmd_grpo(args: argparse.Namespace) -> int:
    from minimind.rl import train_grpo
    from minimind.tasks import make_tasks

    model, tokenizer = _start(args)
    kinds = _kinds(args.tasks) if args.tasks.startswith(TASKS_PREFIX) else [args.tasks]
    tasks = make_tasks(kinds, args.examples, args.seed)
    held = make_tasks(kinds, args.eval_examples, args.seed + 1)
    with _Progress(args, "grpo") as progress:
        result = train_grpo(model, tokenizer, tasks, args.steps, prompts_per_step=args.prompts,
                            group_size=args.group_size, lr=args.lr, kl_beta=args.kl_beta,
                            clip=args.clip, temperature=args.temperature,
                            max_new_tokens=args.max_new_tokens, seed=args.seed,
                            eval_tasks=held, eval_every=max(args.steps // 4, 1),
                            on_step=progress)
    start, end = result.accuracy[0][1], result.accuracy[-1][1]
    zero = sum(result.zero_groups) / max(len(result.zero_groups), 1)
    _save(args, result.policy, tokenizer, "grpo", args.steps,
          {"accuracy": result.accuracy, "kl_beta": args.kl_beta})
    print(f"GRPO {args.steps} steps: held-out greedy accuracy {start:.0%} -> {end:.0%}; "
          f"{zero:.0%} of groups had all-equal rewards (no signal); saved {args.out}")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from minimind.cli import UsageError, _load, _sft_records
    from minimind.dataset import encode_chat
    from minimind.distill import train_distill

    student, tokenizer = _start(args)
    teacher, teacher_tok, _ = _load(args.teacher)
    if teacher_tok.to_state() != tokenizer.to_state():
        raise UsageError("the teacher and the student must share a tokenizer (their logits are "
                         "compared token by token)")
    records, _ = _sft_records(args.data, args.examples, args.seed)
    examples = [encode_chat(tokenizer, r["conversations"]) for r in records]
    with _Progress(args, "distill") as progress:
        result = train_distill(student, teacher, examples, args.steps, alpha=args.alpha,
                               temperature=args.temperature, lr=args.lr,
                               batch_size=args.batch_size, seed=args.seed, on_step=progress)
    _save(args, result.student, tokenizer, "distill", args.steps,
          {"alpha": args.alpha, "temperature": args.temperature, "teacher": args.teacher})
    last = result.losses[-1] if result.losses else float("nan")
    print(f"distilled {args.steps} steps (alpha {args.alpha}, T {args.temperature}): final "
          f"loss {last:.3f}; saved {args.out}")
    return 0


def add_posttrain_commands(sub: Callable[..., argparse.ArgumentParser]) -> None:
    """Add dpo, grpo and distill to the `minimind` parser (`sub` makes one subcommand)."""

    def common(p: argparse.ArgumentParser, out: str, steps: int, lr: float) -> None:
        p.add_argument("--init", required=True,
                       help="the checkpoint to start from, usually from `minimind sft` "
                            "(required, no default)")
        p.add_argument("--out", default=out, help=f"checkpoint file to write (default: {out})")
        p.add_argument("--steps", type=int, default=steps, help="optimizer steps")
        p.add_argument("--lr", type=float, default=lr, help="AdamW learning rate")
        p.add_argument("--seed", type=int, default=0, help="seed of the data order and samples")
        p.add_argument("--force", action="store_true", help="replace --out if it exists")
        p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")

    d = sub("dpo", "direct preference optimisation of an SFT checkpoint",
            "Train on {'chosen', 'rejected'} pairs against a frozen copy of --init: "
            "-logsigmoid(beta * ((pi_c - pi_r) - (ref_c - ref_r))), answers scored by their "
            "summed log-probability (--average: per token, as MiniMind2). The loss starts at "
            "ln 2 = 0.693; if it stays there, nothing is moving (raise --lr).")
    common(d, "out/dpo.pt", 100, 1e-5)
    d.add_argument("--data", required=True,
                   help="preference jsonl ({'chosen': [...], 'rejected': [...]}) or "
                        "tasks:KIND[,KIND] to make pairs in-process (required, no default)")
    d.add_argument("--examples", type=int, default=1000, help="pairs to make for tasks:...")
    d.add_argument("--beta", type=float, default=0.1,
                   help="how strongly the policy is held to the reference (MiniMind: 0.1)")
    d.add_argument("--batch-size", type=int, default=16, help="pairs per step")
    d.add_argument("--average", action="store_true",
                   help="average log-probabilities per answer token instead of summing")
    d.set_defaults(func=cmd_dpo)

    g = sub("grpo", "GRPO on tasks with verifiable rewards, from an SFT checkpoint",
            "Sample --group-size answers per prompt, reward each with the task's verifier "
            "(1 right, 0.1 well-formed but wrong, 0 otherwise), standardise rewards within each "
            "group, and take the clipped policy-gradient step with a KL penalty "
            "(exp(d) - d - 1) to a frozen copy of --init. Pick tasks the model sometimes "
            "solves: a group whose answers all score the same teaches nothing.")
    common(g, "out/grpo.pt", 50, 1e-5)
    g.add_argument("--tasks", default="addition",
                   help="task kind(s): addition, reverse, count, countdown, speaker, play, "
                        "continue, or tasks:KIND,KIND")
    g.add_argument("--examples", type=int, default=1000, help="training prompts to draw from")
    g.add_argument("--eval-examples", type=int, default=100,
                   help="held-out prompts for greedy accuracy")
    g.add_argument("--prompts", type=int, default=8, help="prompts per step")
    g.add_argument("--group-size", type=int, default=8, help="answers sampled per prompt")
    g.add_argument("--kl-beta", type=float, default=0.02,
                   help="weight of the KL penalty to the reference (MiniMind: 0.02)")
    g.add_argument("--clip", type=float, default=0.2, help="PPO clip range of the ratio")
    g.add_argument("--temperature", type=float, default=0.8, help="sampling temperature")
    g.add_argument("--max-new-tokens", type=int, default=16, help="longest answer sampled")
    g.set_defaults(func=cmd_grpo)

    s = sub("distill", "train a student checkpoint on a teacher's soft targets",
            "On the assistant tokens of SFT data: alpha * CE(labels) + (1 - alpha) * T^2 * "
            "KL(teacher_T || student_T) (MiniMind: alpha 0.5, T 1.5). --init is the student; "
            "both checkpoints must share a tokenizer.")
    common(s, "out/distill.pt", 200, 1e-4)
    s.add_argument("--teacher", required=True, help="the teacher checkpoint (required, no default)")
    s.add_argument("--data", required=True,
                   help="SFT jsonl, or tasks:KIND[,KIND] to make conversations "
                        "(required, no default)")
    s.add_argument("--examples", type=int, default=2000, help="conversations for tasks:...")
    s.add_argument("--alpha", type=float, default=0.5, help="weight of the hard-label loss")
    s.add_argument("--temperature", type=float, default=1.5, help="softening temperature T")
    s.add_argument("--batch-size", type=int, default=16, help="conversations per step")
    s.set_defaults(func=cmd_distill)


if __name__ == "__main__":  # pragma: no cover - `minimind dpo ...` is the entry point
    from minimind.cli import main

    sys.exit(main())
