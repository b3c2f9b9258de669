"""The `minimind` command: tokenizer, train, generate, eval, export, and the course's progress.

    minimind tokenizer --data FILE --vocab-size 6400 --out DIR    train a byte-level BPE
    minimind train                                 a small model on Shakespeare -> out/minimind.pt
    minimind train --out CKPT --data FILE --tokenizer DIR --preset minimind2-small --steps N
    minimind train --out CKPT --resume            continue a stopped run where it stopped
    minimind sft --init CKPT --data sft.jsonl --out SFT    supervised fine-tuning (ChatML)
    minimind sft --init CKPT --data sft.jsonl --lora 8     ... LoRA adapters only
    minimind dpo | grpo | distill --init SFT ...   preferences, verifiable rewards, a teacher
    minimind tasks addition,reverse --n 2000 --out sft.jsonl    chat tasks with exact answers
    torchrun --nproc_per_node N -m minimind train ...    data-parallel over N processes
    minimind generate [CKPT] --prompt TEXT --tokens N    sample (KV cache)
    minimind eval CKPT --data FILE                 perplexity and bits per character
    minimind export CKPT DIR                       a Hugging Face Llama folder with the tokenizer
    minimind serve CKPT [--host H] [--port P]      an OpenAI-compatible API and a chat page
    minimind progress                              the course's exercise progress
    minimind quiz 01 [--answers "b;17;..."]        a lesson's quiz, each answer checked
    minimind site build | serve                    the course website (build/site/)

Errors print one line, `error: ...`, and exit with status 2; --debug shows the traceback.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_CKPT = "out/minimind.pt"
DEFAULT_TOKENIZER_DIR = "out/tokenizer"
SHAKESPEARE = "shakespeare"  # minimind.dataset.SHAKESPEARE, without importing torch for --help

# `minimind train`'s recipe defaults (the small model trains on two CPU cores in minutes).
TRAIN_DEFAULTS: dict[str, Any] = {
    "steps": 600, "batch_size": 16, "seq_len": 128, "grad_accum": 1, "lr": 2e-3,
    "min_lr_ratio": 0.1, "warmup": 50, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.95,
    "grad_clip": 1.0, "eval_every": 100, "eval_batches": 20, "save_every": 200, "seed": 1337,
}
# Settings a resumed run may change: they decide when to evaluate and save, not the weights.
CHANGEABLE_ON_RESUME = ("steps", "eval_every", "eval_batches", "save_every")


class UsageError(Exception):
    """A request that cannot be carried out as given; printed as `error: ...`."""


class HelpFormatter(argparse.HelpFormatter):
    """Appends each option's default (when it has one and the help does not already say it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("%(default)" not in text and "(default" not in text
                and action.default is not None and action.default is not False
                and action.default is not argparse.SUPPRESS and action.option_strings):
            text += " (default: %(default)s)"
        return text


class TopHelpFormatter(HelpFormatter, argparse.RawDescriptionHelpFormatter):
    """The top-level help keeps the module docstring's layout (a table of commands)."""


# --- tokenizer ---------------------------------------------------------------------------------

def cmd_tokenizer(args: argparse.Namespace) -> int:
    from minimind.dataset import training_texts
    from minimind.tokenizer import chars_per_token, train_bpe

    start = time.perf_counter()
    tok = train_bpe(training_texts(args.data, args.max_chars), args.vocab_size)
    seconds = time.perf_counter() - start
    tok.save(args.out)
    sample = "".join(training_texts(args.data, 1 << 20))
    print(f"trained a {tok.vocab_size}-token byte-level BPE on {args.data} in {seconds:.1f}s: "
          f"{chars_per_token(tok, sample):.2f} characters per token; saved {args.out}")
    return 0


# --- train -------------------------------------------------------------------------------------

def _on_main_first(info: Any, make: Any) -> Any:
    """Rank 0 makes a cached artefact (tokenizer, token file) first; the others then read it."""
    from minimind.distributed import barrier

    result = make() if info.is_main else None
    barrier(info)
    return result if info.is_main else make()


def _auto_tokenizer(data: str, vocab_size: int, progress: bool) -> Any:
    """A BPE tokenizer trained on `data`, cached so the next run (or rank) reuses it."""
    import hashlib

    from minimind.dataset import cache_dir, source_identity, training_texts
    from minimind.tokenizer import load_tokenizer, train_bpe

    key = hashlib.sha256(f"{source_identity(data)}\0{vocab_size}".encode()).hexdigest()[:16]
    folder = cache_dir() / "tokenizers" / key
    if (folder / "tokenizer.json").is_file():
        return load_tokenizer(folder)
    if progress:
        print(f"training a {vocab_size}-token BPE tokenizer on {data} ...", file=sys.stderr)
    tok = train_bpe(training_texts(data), vocab_size)
    tok.save(folder)
    return tok


def _char_tokenizer(data: str) -> Any:
    from minimind.dataset import documents
    from minimind.tokenizer import CharTokenizerAdapter

    chars: set[str] = set()
    for text, _ in documents(data):
        chars.update(text)
    return CharTokenizerAdapter("".join(chars))


def _model_config(args: argparse.Namespace, vocab_size: int) -> Any:
    from minimind.config import ModelConfig, preset

    if args.config:
        path = Path(args.config)
        try:
            fields = json.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise UsageError(f"--config {path}: {err}") from None
        if not isinstance(fields, dict):
            raise UsageError(f"--config {path} must hold a JSON object of ModelConfig fields")
        fields.setdefault("vocab_size", vocab_size)
        if fields["vocab_size"] != vocab_size:
            raise UsageError(f"--config {path} says vocab_size {fields['vocab_size']}, the "
                             f"tokenizer has {vocab_size}")
        return ModelConfig.from_dict(fields)
    return preset(args.preset, vocab_size=vocab_size)


def _recipe(args: argparse.Namespace, resumed: Any,
            defaults: dict[str, Any] | None = None) -> Any:
    """The TrainConfig: command-line values over the checkpoint's (on --resume) or defaults."""
    from minimind.trainer import TrainConfig

    given = {k: getattr(args, k) for k in TRAIN_DEFAULTS if getattr(args, k) is not None}
    if resumed is None:
        return TrainConfig(**{**(defaults or TRAIN_DEFAULTS), **given})
    old = resumed.train.to_dict()
    changed = [f"--{k.replace('_', '-')} {v} (the run used {old[k]})" for k, v in given.items()
               if k not in CHANGEABLE_ON_RESUME and v != old[k]]
    if changed:
        raise UsageError("a resumed run keeps its recipe; cannot change " + ", ".join(changed))
    return TrainConfig(**{**old, **given})


def _default_threads(info: Any) -> int:
    """All cores for one process; an even share for each of the processes on this machine."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, (os.cpu_count() or 1) // local)


def cmd_train(args: argparse.Namespace) -> int:
    if args.steps is not None and args.steps == 0:
        print("--steps 0: nothing to train, nothing saved")
        return 0
    import torch

    from minimind.dataset import TokenData, cached_token_file
    from minimind.distributed import setup, teardown
    from minimind.tokenizer import load_tokenizer, tokenizer_from_state
    from minimind.trainer import check_output, read_resume_state, train

    out = Path(args.out)
    check_output(out, args.resume, args.force)  # before any work
    info = setup(args.device)
    try:
        torch.set_num_threads(args.threads or _default_threads(info))
        resumed = read_resume_state(out) if args.resume else None
        cfg = _recipe(args, resumed)
        cfg.validate()  # --seq-len 0 is a usage error, not "training diverged"
        show = not args.no_progress and info.is_main
        if resumed is not None:
            tokenizer = tokenizer_from_state(resumed.state["extra"]["tokenizer"])
            if args.tokenizer:
                raise UsageError("--resume uses the checkpoint's tokenizer; drop --tokenizer")
        elif args.tokenizer == "char":
            tokenizer = _char_tokenizer(args.data)
        elif args.tokenizer:
            tokenizer = load_tokenizer(args.tokenizer)
        else:
            tokenizer = _on_main_first(
                info, lambda: _auto_tokenizer(args.data, args.vocab_size, show))
        cache = Path(args.cache_dir) if args.cache_dir else None
        tokens = _on_main_first(
            info, lambda: cached_token_file(args.data, tokenizer, cache, progress=show))
        data = TokenData.open(tokens)
        config = resumed.config if resumed else _model_config(args, tokenizer.vocab_size)
        if info.is_main:
            from minimind.model import count_parameters

            print(f"{count_parameters(config):,} parameters, {len(data.tokens):,} tokens "
                  f"({tokenizer.kind} tokenizer, {tokenizer.vocab_size} ids), "
                  f"{info.world_size} process(es) on {info.device}", file=sys.stderr)
        metrics: Any = Path(args.metrics) if args.metrics else True
        result = train(config, cfg, data, out, tokenizer, resume=resumed, force=args.force,
                       info=info, progress=show, metrics=metrics)
    finally:
        teardown(info)
    if not info.is_main:
        return 0
    val = f"{result.val_loss:.3f}" if result.val_loss is not None else "-"
    if result.interrupted:
        print(f"stopped at step {result.step} of {cfg.steps}; saved {out}; continue with "
              f"`minimind train --out {out} --resume`")
        return 130
    print(f"trained to step {result.step} in {result.seconds:.1f}s "
          f"({result.tokens_per_second:,.0f} tokens/s): train loss {result.train_loss:.3f}, "
          f"val loss {val}; saved {out}")
    return 0


# --- sft / tasks ---------------------------------------------------------------------------------

# `minimind sft`'s recipe: a short run at a lower rate from pretrained weights.
SFT_DEFAULTS: dict[str, Any] = {
    **TRAIN_DEFAULTS, "steps": 300, "lr": 5e-4, "warmup": 10, "seq_len": 256,
    "eval_every": 50, "save_every": 100,
}
TASKS_PREFIX = "tasks:"  # --data tasks:addition,reverse makes the data in-process


def _sft_records(data: str, examples: int, seed: int) -> tuple[list[dict], str]:
    """SFT records from a jsonl file, or made in-process from `tasks:KIND[,KIND...]`."""
    from minimind.dataset import read_jsonl
    from minimind.tasks import make_tasks

    if data.startswith(TASKS_PREFIX):
        kinds = [k for k in data[len(TASKS_PREFIX):].split(",") if k]
        return [t.to_sft() for t in make_tasks(kinds, examples, seed)], data
    return [obj for _, obj in read_jsonl(data)], Path(data).stem


def cmd_sft(args: argparse.Namespace) -> int:
    import torch

    from minimind.distributed import setup, teardown
    from minimind.sft import SFTData
    from minimind.tokenizer import tokenizer_from_state
    from minimind.trainer import check_output, read_resume_state, train

    out = Path(args.out)
    check_output(out, args.resume, args.force)
    if args.resume and args.init:
        raise UsageError("--resume continues --out with its own weights; drop --init")
    if not args.resume and not args.init:
        raise UsageError("--init CKPT is required: the pretrained checkpoint to fine-tune")
    if args.lora < 0:
        raise UsageError(f"--lora is a rank >= 1 (or 0 for full fine-tuning), got {args.lora}")
    if args.resume and args.lora:
        raise UsageError("--resume continues with the checkpoint's own LoRA setting; drop --lora")
    lora = ({"rank": args.lora, "alpha": float(args.lora_alpha or args.lora)}
            if args.lora else None)
    info = setup(args.device)
    try:
        torch.set_num_threads(args.threads or _default_threads(info))
        resumed = read_resume_state(out) if args.resume else None
        cfg = _recipe(args, resumed, SFT_DEFAULTS)
        cfg.validate()
        init = None
        if resumed is not None:
            config = resumed.config
            tokenizer = tokenizer_from_state(resumed.state["extra"]["tokenizer"])
        else:
            base, tokenizer, _ = _load(args.init)
            config, init = base.config, base.state_dict()
        if tokenizer.kind != "bpe":
            raise UsageError("SFT needs a BPE tokenizer with <|im_start|> and <|im_end|>; this "
                             "checkpoint has a character tokenizer (pretrain with a BPE one)")
        records, name = _sft_records(args.data, args.examples, cfg.seed)
        data = SFTData.from_records(records, tokenizer, name)
        show = not args.no_progress and info.is_main
        if info.is_main:
            print(f"{len(data.examples):,} conversations ({data.n_val} for validation), "
                  f"{info.world_size} process(es) on {info.device}", file=sys.stderr)
        metrics: Any = Path(args.metrics) if args.metrics else True
        result = train(config, cfg, data, out, tokenizer, resume=resumed, force=args.force,
                       info=info, progress=show, metrics=metrics, init=init, stage="sft",
                       lora=lora)
        adapter = None
        lora_run = lora or (resumed is not None and resumed.state["extra"].get("lora"))
        if lora_run and info.is_main and not result.interrupted and result.step > 0:
            adapter = _write_adapter(out)
    finally:
        teardown(info)
    if not info.is_main:
        return 0
    if result.interrupted:
        print(f"stopped at step {result.step} of {cfg.steps}; saved {out}; continue with "
              f"`minimind sft --out {out} --data {args.data} --resume`")
        return 130
    val = f"{result.val_loss:.3f}" if result.val_loss is not None else "-"
    print(f"fine-tuned to step {result.step} in {result.seconds:.1f}s: train loss "
          f"{result.train_loss:.3f}, val loss {val} (assistant tokens only); saved {out}"
          + (f" and the adapter alone as {adapter}" if adapter else ""))
    return 0


def _write_adapter(out: Path) -> Path | None:
    """For a LoRA run, the adapter alone (A and B, rank, alpha) beside the checkpoint."""
    from minimind.checkpoint import config_of, read_checkpoint
    from minimind.lora import apply_lora, save_adapter
    from minimind.model import MiniMindForCausalLM

    state = read_checkpoint(out)
    spec = state["extra"].get("lora")
    if not spec:
        return None
    model = MiniMindForCausalLM(config_of(state, out))
    apply_lora(model, int(spec["rank"]), float(spec["alpha"]))
    model.load_state_dict(state["model"])
    return save_adapter(model, out.with_suffix(".lora.pt"),
                        extra={"step": state["step"], "stage": "sft"})


def cmd_tasks(args: argparse.Namespace) -> int:
    from minimind.checkpoint import atomic_write
    from minimind.tasks import make_preferences, make_tasks

    kinds = [k for k in args.kinds.split(",") if k]
    if args.preferences:
        records = make_preferences(kinds, args.n, args.seed)
    else:
        records = [t.to_sft() for t in make_tasks(kinds, args.n, args.seed)]
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    atomic_write(args.out, lambda p: Path(p).write_text(body, "utf-8"))
    kind = "preference pairs" if args.preferences else "conversations"
    print(f"wrote {len(records)} {kind} ({', '.join(kinds)}, seed {args.seed}) to {args.out}")
    return 0


# --- generate / eval / export ------------------------------------------------------------------

def _load(path: str) -> tuple[Any, Any, dict]:
    from minimind.checkpoint import CheckpointError, load_checkpoint
    from minimind.tokenizer import CharTokenizerAdapter, tokenizer_from_state

    model, state = load_checkpoint(path)
    extra = state.get("extra") or {}
    if "tokenizer" in extra:
        tokenizer = tokenizer_from_state(extra["tokenizer"])
    elif "chars" in extra:  # checkpoints of the first `python -m minimind train`
        tokenizer = CharTokenizerAdapter(extra["chars"])
    else:
        raise CheckpointError(f"checkpoint {path} holds no tokenizer")
    return model.eval(), tokenizer, state


def cmd_generate(args: argparse.Namespace) -> int:
    import torch

    from minimind.generate import check_request, check_sampling, stream

    greedy = args.temperature == 0  # the usual spelling of argmax decoding
    check_sampling(args.temperature, args.top_k, args.top_p, args.repetition_penalty, greedy)
    if not args.prompt:
        raise UsageError("--prompt is empty; give at least one character")
    model, tokenizer, _ = _load(args.checkpoint)
    ids = torch.tensor([tokenizer.encode(args.prompt)])  # (1, T)
    check_request(model, ids, args.tokens)
    gen = torch.Generator().manual_seed(args.seed)
    new: list[int] = []
    printed = 0
    sys.stdout.write(args.prompt)
    for token, _ in stream(model, ids, args.tokens, args.temperature, args.top_k, greedy,
                           generator=gen, top_p=args.top_p,
                           repetition_penalty=args.repetition_penalty):
        new.append(int(token))
        text = tokenizer.decode(new)
        if not text.endswith("\ufffd"):  # a multi-byte character still arriving
            sys.stdout.write(text[printed:])
            sys.stdout.flush()
            printed = len(text)
    text = tokenizer.decode(new)
    sys.stdout.write(text[printed:] + "\n")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    from minimind.data import VAL_FRACTION, read_text_file, shakespeare_text

    model, tokenizer, _ = _load(args.checkpoint)
    if args.data == SHAKESPEARE:
        text = shakespeare_text()
        text = text[len(text) - int(len(text) * VAL_FRACTION):]  # the validation split
    else:
        text = read_text_file(args.data)
    if args.max_chars:
        text = text[:args.max_chars]
    ids = torch.tensor(tokenizer.encode(text))
    T = min(args.seq_len, model.config.max_position_embeddings)
    if len(ids) < 2:
        raise UsageError(f"{args.data} holds {len(ids)} token(s); need at least 2 to evaluate")
    starts = list(range(0, len(ids) - 1, T))
    nll, n = 0.0, 0
    with torch.no_grad():
        for i in tqdm(range(0, len(starts), args.batch_size), desc="eval", unit="batch",
                      disable=args.no_progress):
            for s in starts[i:i + args.batch_size]:
                x, y = ids[s:s + T][None], ids[s + 1:s + T + 1][None]  # (1, T)
                x = x[:, :y.shape[1]]
                logits = model(x).logits
                nll += F.cross_entropy(logits[0], y[0], reduction="sum").item()
                n += y.shape[1]
    chars = len(text) - len(tokenizer.decode(ids[:1].tolist()))  # the first is not predicted
    print(json.dumps({"data": str(args.data), "tokens": n, "characters": chars,
                      "loss": nll / n, "perplexity": math.exp(nll / n),
                      "bits_per_character": nll / math.log(2) / max(chars, 1)}))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from minimind.hf import export_with_tokenizer

    model, tokenizer, _ = _load(args.checkpoint)
    if tokenizer.kind != "bpe":
        print("warning: a character tokenizer has no Hugging Face form; exported the weights "
              "only", file=sys.stderr)
        tokenizer = None
    folder = export_with_tokenizer(model, args.out_dir, tokenizer)
    print(f"exported {args.checkpoint} to {folder}: LlamaForCausalLM.from_pretrained and "
          "AutoTokenizer.from_pretrained read it")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from minimind.serve import ChatEngine, bind, is_loopback, server, url_of

    if not args.host:
        raise UsageError("--host is empty; give an address such as 127.0.0.1")
    sock = bind(args.host, args.port)  # before loading: a busy port fails in a blink
    try:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        model, tokenizer, _ = _load(args.checkpoint)
        name = args.name or Path(args.checkpoint).stem
        engine = ChatEngine(model, tokenizer, model_id=name, max_active=args.max_active,
                            max_waiting=args.max_waiting, default_max_tokens=args.max_tokens)
        url = url_of(sock)
        if not is_loopback(args.host):
            print(f"warning: {args.host} is reachable from other machines and the server has "
                  "no authentication", file=sys.stderr)
        print(f"serving {args.checkpoint} as model '{name}' (context {engine.context}): "
              f"chat page {url}/ , API {url}/v1 ; Ctrl-C stops", file=sys.stderr)
        server(engine, log_level=args.log_level).run(sockets=[sock])
    finally:
        sock.close()
    return 0


# --- progress (the course) ---------------------------------------------------------------------

def progress(impl: str | None) -> int:
    """The course's exercise progress (imported here only: the library never needs it)."""
    from minimind.course.progress import course_root, run_progress

    return run_progress(course_root(), impl)


def cmd_progress(args: argparse.Namespace) -> int:
    return progress(args.impl)


def cmd_quiz(args: argparse.Namespace) -> int:
    from minimind.course.quiz import ask

    return ask(args.lesson, args.answers)


def cmd_site(args: argparse.Namespace) -> int:
    from minimind.course.site import run

    return run(args)


# --- the parser --------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of one line")

    def sub(name: str, helptext: str, description: str = "") -> argparse.ArgumentParser:
        return subs.add_parser(name, help=helptext, description=description or helptext,
                               parents=[common], formatter_class=HelpFormatter)

    parser = argparse.ArgumentParser(prog="minimind", description=__doc__, parents=[common],
                                     formatter_class=TopHelpFormatter)
    subs = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub("tokenizer", "train a byte-level BPE tokenizer and save it as a folder",
            "Train a byte-level BPE (Hugging Face tokenizers) with MiniMind's special tokens "
            "<|endoftext|>=0, <|im_start|>=1, <|im_end|>=2 and its ChatML template; "
            "AutoTokenizer.from_pretrained(OUT) loads the folder.")
    p.add_argument("--data", default=SHAKESPEARE,
                   help="UTF-8 text or jsonl ({'text'}, {'conversations'}, {'chosen'/'rejected'})"
                        "; 'shakespeare' is the built-in corpus")
    p.add_argument("--vocab-size", type=int, default=6400, help="tokens in the vocabulary")
    p.add_argument("--max-chars", type=int, default=10 << 20,
                   help="train on at most this many characters from the start of the data")
    p.add_argument("--out", default=DEFAULT_TOKENIZER_DIR, help="folder to write")
    p.set_defaults(func=cmd_tokenizer)

    t = sub("train", "pretrain a model and save a resumable checkpoint",
            "Pretrain MiniMindForCausalLM: AdamW, warmup then cosine decay to 10%, clipping, "
            "accumulation, bf16 on CUDA; a progress bar, metrics (CKPT.metrics.jsonl) and a loss "
            "curve (CKPT.loss.png); checkpoints every --save-every steps and on Ctrl-C / "
            "SIGTERM. Run under `torchrun --nproc_per_node N` for data parallelism; "
            "--batch-size is per process.")
    t.add_argument("--out", default=DEFAULT_CKPT, help="checkpoint file to write")
    t.add_argument("--data", "--corpus", default=SHAKESPEARE,
                   help="UTF-8 text file or pretraining jsonl ({'text': ...} per line); "
                        "'shakespeare' is the built-in corpus")
    t.add_argument("--tokenizer", default=None,
                   help="a folder from `minimind tokenizer`, or 'char' for one token per "
                        "character (default: train a BPE of --vocab-size on --data, cached)")
    t.add_argument("--vocab-size", type=int, default=2048,
                   help="vocabulary of the tokenizer trained when --tokenizer is not given")
    t.add_argument("--preset", default="small",
                   help="model shape: small, char-small, tiny, minimind2-small, minimind2, "
                        "minimind2-moe (vocab_size comes from the tokenizer)")
    t.add_argument("--config", default=None,
                   help="a JSON file of ModelConfig fields, instead of --preset (default: none)")
    helps = {
        "steps": "optimizer steps in the whole run (0: train nothing, save nothing)",
        "batch_size": "sequences per process per micro-step",
        "seq_len": "tokens per sequence", "grad_accum": "micro-steps per optimizer step",
        "lr": "peak learning rate", "min_lr_ratio": "cosine decays to this fraction of --lr",
        "warmup": "linear warmup steps", "weight_decay": "AdamW weight decay (not on norms)",
        "beta1": "AdamW beta1", "beta2": "AdamW beta2",
        "grad_clip": "max global gradient norm (0: no clipping)",
        "eval_every": "steps between validation losses (0: only at the end)",
        "eval_batches": "batches per validation loss",
        "save_every": "steps between checkpoints (0: only at the end)",
        "seed": "seed of the init, the data order and dropout",
    }

    def add_run_options(p: argparse.ArgumentParser, defaults: dict[str, Any]) -> None:
        recipe = p.add_argument_group("recipe (stored in the checkpoint; --resume keeps it)")
        for name, default in defaults.items():
            recipe.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=None,
                                help=f"{helps[name]} (default: {default})")
        p.add_argument("--resume", action="store_true",
                       help="continue the run saved in --out from its step, with its recipe")
        p.add_argument("--force", action="store_true",
                       help="train a fresh model even though --out exists (replacing it)")
        p.add_argument("--device", default="auto",
                       help="auto (CUDA if available), cpu, cuda, cuda:N")
        p.add_argument("--threads", type=int, default=0,
                       help="CPU threads per process (0: the cores divided among the processes)")
        p.add_argument("--metrics", default=None,
                       help="metrics file, JSONL or .csv (default: CKPT.metrics.jsonl)")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")

    add_run_options(t, TRAIN_DEFAULTS)
    t.add_argument("--cache-dir", default=None,
                   help="where token files go (default: $MINIMIND_CACHE or ~/.cache/minimind)")
    t.set_defaults(func=cmd_train)

    s = sub("sft", "supervised fine-tuning of a pretrained checkpoint on chat data",
            "Fine-tune a checkpoint on MiniMind's SFT jsonl ({'conversations': [{'role', "
            "'content'}, ...]}, rendered in ChatML): only assistant turns and their closing "
            "<|im_end|> are learned. The same trainer as `minimind train` (schedule, "
            "checkpoints, --resume, torchrun); the tokenizer and model shape come from --init.")
    s.add_argument("--init", default=None,
                   help="the pretrained checkpoint to start from (required unless --resume; "
                        "default: none)")
    s.add_argument("--out", default="out/sft.pt", help="checkpoint file to write")
    s.add_argument("--data", required=True,
                   help="SFT jsonl, or tasks:KIND[,KIND] to make conversations in-process "
                        "(kinds: speaker, play, continue, addition, reverse, count, countdown;"
                        " required, no default)")
    s.add_argument("--examples", type=int, default=2000,
                   help="conversations to make for --data tasks:...")
    s.add_argument("--lora", type=int, default=0, metavar="RANK",
                   help="train LoRA adapters of this rank on the square matrices (MiniMind: 8) "
                        "with the model frozen; 0 fine-tunes every weight. The checkpoint "
                        "loads merged everywhere; OUT.lora.pt holds the adapter alone. LoRA "
                        "usually wants a larger --lr than full fine-tuning")
    s.add_argument("--lora-alpha", type=float, default=None,
                   help="LoRA scale numerator, update = alpha / rank * B A (default: the rank, "
                        "scale 1, as MiniMind)")
    add_run_options(s, SFT_DEFAULTS)
    s.set_defaults(func=cmd_sft)

    k = sub("tasks", "write chat tasks (or preference pairs) with exact answers as jsonl",
            "Make SFT conversations or DPO preference pairs in-process, deterministic from "
            "--seed: from the plays (speaker, play, continue) or procedural (addition, "
            "reverse, count, countdown).")
    k.add_argument("kinds", help="comma-separated task kinds, e.g. addition,reverse")
    k.add_argument("--n", type=int, default=1000, help="records to write")
    k.add_argument("--seed", type=int, default=0, help="seed of the tasks")
    k.add_argument("--preferences", action="store_true",
                   help="write {'chosen', 'rejected'} pairs (a wrong answer rejected)")
    k.add_argument("--out", required=True, help="jsonl file to write (required, no default)")
    k.set_defaults(func=cmd_tasks)

    # post-training after SFT (lessons 12, 13): dpo, grpo, distill
    from minimind.posttrain_cli import add_posttrain_commands
    add_posttrain_commands(sub)

    g = sub("generate", "sample text from a checkpoint (KV cache)")
    g.add_argument("checkpoint", nargs="?", default=DEFAULT_CKPT, help="checkpoint file "
                   f"(default: {DEFAULT_CKPT})")
    g.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    g.add_argument("--tokens", type=int, default=200, help="new tokens to generate")
    g.add_argument("--temperature", type=float, default=0.8,
                   help="softmax temperature; 0 picks the most likely token every time")
    g.add_argument("--top-k", type=int, default=None,
                   help="sample among the k most likely tokens only (default: all)")
    g.add_argument("--top-p", type=float, default=None,
                   help="sample among the fewest tokens whose probability reaches p "
                        "(default: all)")
    g.add_argument("--repetition-penalty", type=float, default=1.0,
                   help="> 1 makes tokens already in the text less likely")
    g.add_argument("--seed", type=int, default=0, help="sampling seed")
    g.set_defaults(func=cmd_generate)

    e = sub("eval", "perplexity and bits per character of a checkpoint on a text file")
    e.add_argument("checkpoint", help="checkpoint file")
    e.add_argument("--data", default=SHAKESPEARE,
                   help="UTF-8 text file; 'shakespeare' is the validation split (last 10%%) "
                        "of the built-in corpus")
    e.add_argument("--seq-len", type=int, default=256,
                   help="tokens per window (capped at the model's context)")
    e.add_argument("--batch-size", type=int, default=8, help="windows per progress-bar step")
    e.add_argument("--max-chars", type=int, default=0,
                   help="evaluate only the first N characters (0: all)")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    e.set_defaults(func=cmd_eval)

    x = sub("export", "write a Hugging Face Llama folder (weights, config, tokenizer)")
    x.add_argument("checkpoint", help="checkpoint file")
    x.add_argument("out_dir", metavar="DIR", help="folder to write")
    x.set_defaults(func=cmd_export)

    s = sub("serve", "an OpenAI-compatible chat API and a chat page for a checkpoint",
            "Serve a checkpoint (with a BPE tokenizer) over HTTP: POST /v1/chat/completions "
            "(OpenAI's shapes, messages in ChatML, temperature/top_p/max_tokens/stream as "
            "server-sent events), GET /v1/models, GET /health, and a chat page at /. Replies "
            "use the KV cache. At most --max-active replies are generated at once, one token "
            "each in turn; --max-waiting more wait in line; past that the answer is 503. A "
            "prompt that leaves no room for the reply loses its oldest non-system messages; "
            "if that is not enough the request is refused (400).")
    s.add_argument("checkpoint", help="checkpoint file (from `minimind train`)")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 exposes the unauthenticated server to "
                        "the network")
    s.add_argument("--port", type=int, default=8000, help="port (0: any free one)")
    s.add_argument("--name", default=None,
                   help="model id in /v1/models and responses (default: the checkpoint's "
                        "file name without its extension)")
    s.add_argument("--max-active", type=int, default=8,
                   help="replies generated at once, interleaved token by token")
    s.add_argument("--max-waiting", type=int, default=32,
                   help="requests that may wait in line beyond those; more get 503")
    s.add_argument("--max-tokens", type=int, default=256,
                   help="reply length when a request gives no max_tokens (capped at what the "
                        "context leaves)")
    s.add_argument("--threads", type=int, default=0,
                   help="CPU threads for the model (0: PyTorch's default, all cores)")
    s.add_argument("--log-level", default="info",
                   choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn's log level (info logs every request)")
    s.set_defaults(func=cmd_serve)

    r = sub("progress", "the course: exercise progress for every lesson")
    r.add_argument("--impl", help="a module with your implementations (default: exercises.py)")
    r.set_defaults(func=cmd_progress)

    q = sub("quiz", "the course: a lesson's quiz, each answer checked and explained",
            "Ask a lesson's quiz (lessons/NN_topic/quiz.toml) in the terminal; exit status 0 "
            "when every answer is right, 1 otherwise.")
    q.add_argument("lesson", help="the lesson: 01, 1 or 01_normalization")
    q.add_argument("--answers", default=None,
                   help="answer without prompts: the answers in order, separated by ';' "
                        "(default: ask)")
    q.set_defaults(func=cmd_quiz)

    w = sub("site", "the course: build the website (MkDocs Material) or serve it locally",
            "Generate the course site from the repository into build/site-src and build it "
            "with `mkdocs build --strict` into build/site, offline.")
    w.add_argument("action", choices=("build", "serve"),
                   help="build: write build/site/; serve: build, then serve it locally")
    w.add_argument("--outcomes", default=None, metavar="FILE",
                   help="claim tables from this `pytest --outcomes-json` report instead of the "
                        "READMEs' calibration blocks (default: the READMEs')")
    w.add_argument("--port", type=int, default=8000, help="port for serve")
    w.set_defaults(func=cmd_site)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for every error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2, already printed)
        return int(exit_.code or 0)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            raise
        known = _is_user_error(err)
        message = str(err) if known else f"{type(err).__name__}: {err} (--debug shows where)"
        print(f"error: {message.splitlines()[0] if message else type(err).__name__}",
              file=sys.stderr)
        return 2


def _is_user_error(err: Exception) -> bool:
    names = {"UsageError", "DataError", "ConfigError", "CheckpointError", "ExportError",
             "TokenizerError", "TrainError", "ServeError", "TaskError", "ValueError",
             "FileNotFoundError", "PermissionError", "IsADirectoryError", "QuizError",
             "SiteError"}
    return any(cls.__name__ in names for cls in type(err).__mro__)
