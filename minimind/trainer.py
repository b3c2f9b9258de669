"""Pretraining and supervised fine-tuning: AdamW with warmup and cosine decay, accumulation,
clipping, evaluation, metrics, resumable checkpoints, and data parallelism under torchrun.

A checkpoint holds everything the next step depends on: weights, optimizer moments, the step
(the schedule is a function of it), the global and CUDA RNG states and the data generator
(the data position). So a run stopped at step k and resumed takes exactly the steps an
uninterrupted run would have taken.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from minimind.checkpoint import (
    CheckpointError,
    atomic_write,
    config_of,
    read_checkpoint,
    save_checkpoint,
    temp_files_of,
)
from minimind.config import ModelConfig, config_diff
from minimind.distributed import Dist, any_across, barrier, local_slice, mean_across
from minimind.model import MiniMindForCausalLM
from minimind.optim import lr_at, make_optimizer
from minimind.tokenizer import Tokenizer

EVAL_SEED = 10_000  # validation windows come from their own generator: same windows every eval


class TrainData(Protocol):
    """Where batches come from: token windows (TokenData) or conversations (sft.SFTData)."""

    def check(self, seq_len: int) -> None: ...
    def draw(self, split: str, count: int, seq_len: int,
             generator: torch.Generator) -> torch.Tensor: ...
    def batch(self, split: str, idx: torch.Tensor,
              seq_len: int) -> tuple[torch.Tensor, torch.Tensor]: ...


class TrainError(RuntimeError):
    """A run that cannot start as asked, or that diverged; the message says which and why."""


@dataclass
class TrainConfig:
    """The recipe: everything that decides which weights a run ends with."""

    steps: int = 2000  # optimizer steps in the whole run (the schedule's length)
    batch_size: int = 16  # sequences per process per micro-step
    seq_len: int = 256  # tokens per sequence
    grad_accum: int = 1  # micro-steps whose gradients add up to one optimizer step
    lr: float = 1e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # the cosine ends at this fraction of the peak (MiniMind: 0.1)
    warmup: int = 100  # linear warmup steps
    weight_decay: float = 0.1  # AdamW decay of matrices and embeddings
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    eval_every: int = 250  # steps between validation losses (and at the end); 0: only the end
    eval_batches: int = 20  # validation batches per evaluation
    save_every: int = 500  # steps between checkpoints (and at the end); 0: only the end
    seed: int = 1337  # model init, data order and dropout

    def validate(self) -> None:
        """Raise TrainError naming the first setting out of range."""
        positive = ("batch_size", "seq_len", "grad_accum", "eval_batches")
        non_negative = ("steps", "warmup", "eval_every", "save_every", "seed")
        for name in positive + non_negative:
            value = getattr(self, name)
            low = 1 if name in positive else 0
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise TrainError(f"--{name.replace('_', '-')} must be an int >= {low}, "
                                 f"got {value!r}")
        for name, low, high in (("lr", 0, 10), ("min_lr_ratio", 0, 1), ("weight_decay", 0, 10),
                                ("beta1", 0, 1), ("beta2", 0, 1), ("grad_clip", 0, math.inf)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value)
                    and low <= value <= high) or (name == "lr" and value == 0):
                raise TrainError(f"--{name.replace('_', '-')} must be a finite number in "
                                 f"[{low}, {high}]{' and > 0' if name == 'lr' else ''}, "
                                 f"got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class TrainResult:
    step: int  # the step the run ended at
    train_loss: float  # mean training loss of the last logged steps
    val_loss: float | None  # the last validation loss
    interrupted: bool  # stopped early by SIGINT / SIGTERM (a checkpoint was written)
    seconds: float
    tokens_per_second: float
    checkpoint: Path | None


def check_output(out: Path, resume: bool, force: bool) -> None:
    """Refuse to start a fresh run over an existing checkpoint, or to resume a missing one."""
    if resume and force:
        raise TrainError("--resume continues the checkpoint and --force replaces it; pick one")
    if resume and not out.is_file():
        raise TrainError(f"--resume: no checkpoint at {out}")
    if not resume and not force and out.exists():
        raise TrainError(f"{out} exists; --resume to continue it, --force to train a new "
                         "model over it")
    if out.exists() and out.is_dir():
        raise TrainError(f"--out {out} is a folder; give a checkpoint file path")


def metrics_path_for(out: Path) -> Path:
    return out.with_name(out.stem + ".metrics.jsonl")


def plot_path_for(out: Path) -> Path:
    return out.with_name(out.stem + ".loss.png")


# --- signals -----------------------------------------------------------------------------------

class StopFlag:
    """Set by SIGINT / SIGTERM: the run stops after the current step and saves a checkpoint.

    A second signal is not deferred: it raises KeyboardInterrupt at once.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None

    def handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum


@contextlib.contextmanager
def stop_on_signals(flag: StopFlag) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return
    previous = {s: signal.signal(s, flag.handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


# --- state -------------------------------------------------------------------------------------

def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class Resumed:
    """What a checkpoint restores into a run."""

    config: ModelConfig
    train: TrainConfig
    step: int
    state: dict[str, Any]


def read_resume_state(out: Path, model_config: ModelConfig | None = None) -> Resumed:
    """The checkpoint to continue, checked against the model config asked for (if any)."""
    state = read_checkpoint(out)
    config = config_of(state, out)
    if model_config is not None and (diff := config_diff(config, model_config)):
        raise CheckpointError(f"checkpoint {out} has another config (checkpoint != asked): "
                              + ", ".join(diff))
    extra = state.get("extra") or {}
    if "train" not in extra or "data_generator" not in extra:
        raise CheckpointError(f"checkpoint {out} holds no training state to resume (it was "
                              "saved without one)")
    return Resumed(config, TrainConfig.from_dict(extra["train"]), int(state["step"]), state)


# --- the loop ----------------------------------------------------------------------------------

def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (weights and optimizer stay fp32); plain fp32 on CPU."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(model: nn.Module, data: TrainData, cfg: TrainConfig, info: Dist) -> float:
    """Mean validation loss over the same `eval_batches` windows every time."""
    model.eval()
    gen = torch.Generator().manual_seed(EVAL_SEED + cfg.seed)
    total = torch.zeros((), device=info.device)
    for _ in range(cfg.eval_batches):
        starts = data.draw("val", cfg.batch_size * info.world_size, cfg.seq_len, gen)
        x, y = data.batch("val", local_slice(starts, info), cfg.seq_len)
        with autocast_for(info.device):
            total += model(x.to(info.device), y.to(info.device)).loss.float()
    model.train()
    return float(mean_across(total / cfg.eval_batches, info))


class MetricsLog:
    """One JSON object per line (or CSV when the path ends in .csv); rank 0 only."""

    def __init__(self, path: Path | None, keep_until: int | None):
        self.path = path
        self.records: list[dict[str, Any]] = []
        if path is None:
            return
        if keep_until is not None and path.is_file():  # a resumed run continues the log
            self.records = [r for r in _read_metrics(path) if r["step"] <= keep_until]
        self._rewrite()

    def _rewrite(self) -> None:
        assert self.path is not None
        lines = [self._format(r) for r in self.records]
        header = self._header()
        text = "".join(line + "\n" for line in ([header] if header else []) + lines)
        atomic_write(self.path, lambda p: Path(p).write_text(text, "utf-8"))

    def _header(self) -> str:
        return ",".join(CSV_COLUMNS) if self.path and self.path.suffix == ".csv" else ""

    def _format(self, record: dict[str, Any]) -> str:
        if self.path and self.path.suffix == ".csv":
            return ",".join("" if record.get(c) is None else str(record[c]) for c in CSV_COLUMNS)
        return json.dumps(record)

    def add(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(self._format(record) + "\n")


CSV_COLUMNS = ("step", "loss", "val_loss", "lr", "grad_norm", "tokens_per_second", "seconds")


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".csv":
        rows = path.read_text("utf-8").splitlines()[1:]
        out = []
        for row in rows:
            values = dict(zip(CSV_COLUMNS, row.split(",")))
            out.append({k: float(v) if k != "step" else int(v) for k, v in values.items() if v})
        return out
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def plot_losses(records: list[dict[str, Any]], path: Path, title: str) -> Path | None:
    """Training and validation loss against step, as a PNG; None when there is nothing to plot."""
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if r.get("val_loss") is not None]
    if not train:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(*zip(*train), lw=0.8, alpha=0.8, label="train")
    if val:
        ax.plot(*zip(*val), "o-", label="validation")
    ax.set(xlabel="step", ylabel="loss (nats/token)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=100, bbox_inches="tight"))
    plt.close(fig)
    return path


def train(
    model_config: ModelConfig, cfg: TrainConfig, data: TrainData, out: str | Path,
    tokenizer: Tokenizer, *, resume: Resumed | None = None, force: bool = False,
    info: Dist | None = None, progress: bool = True, metrics: Path | None | bool = True,
    plot: bool = True, on_step: Callable[[int, float], None] | None = None,
    init: dict[str, Any] | None = None, stage: str = "pretrain",
    lora: dict[str, Any] | None = None,
) -> TrainResult:
    """Train (or continue) a MiniMindForCausalLM on `data` and save it to `out`.

    `data` is token windows (TokenData: pretraining) or padded conversations whose labels are
    -100 outside the assistant spans (minimind.sft.SFTData: fine-tuning). `init` is a state
    dict to start from (the pretrained weights, for SFT); `stage` is recorded in the
    checkpoint. `resume` comes from `read_resume_state(out)`. `metrics=True` logs to
    CKPT.metrics.jsonl, a path logs there, False logs nowhere. `on_step(step, loss)` is called
    after every step. `lora` ({"rank", "alpha"}) freezes the model and trains LoRA adapters on
    its square matrices (MiniMind's rule); checkpoints then hold the frozen weights plus the
    adapters, and `load_checkpoint` merges them. A resumed run takes the checkpoint's spec.
    """
    out = Path(out)
    info = info or Dist()
    check_output(out, resume is not None, force)
    cfg.validate()
    if cfg.steps == 0:
        return TrainResult(0, math.nan, None, False, 0.0, 0.0, None)  # nothing trained or saved
    if model_config.vocab_size < tokenizer.vocab_size:
        raise TrainError(f"the model's vocab_size {model_config.vocab_size} is smaller than the "
                         f"tokenizer's {tokenizer.vocab_size}")
    if cfg.seq_len > model_config.max_position_embeddings:
        raise TrainError(f"--seq-len {cfg.seq_len} exceeds the model's max_position_embeddings "
                         f"{model_config.max_position_embeddings}")
    data.check(cfg.seq_len)  # now, not after hours of training
    start_step = resume.step if resume else 0
    if start_step >= cfg.steps:
        raise TrainError(f"{out} is already at step {start_step}; ask for --steps above it")

    torch.manual_seed(cfg.seed)
    model = MiniMindForCausalLM(model_config).to(info.device)
    if init is not None and not resume:
        model.load_state_dict(init)
    if resume:
        lora = resume.state["extra"].get("lora")
    if lora:
        from minimind.lora import apply_lora

        lora = {"rank": int(lora["rank"]), "alpha": float(lora["alpha"])}
        apply_lora(model, lora["rank"], lora["alpha"], seed=cfg.seed)
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2))
    data_gen = torch.Generator().manual_seed(cfg.seed)
    if resume:
        model.load_state_dict(resume.state["model"])
        optimizer.load_state_dict(resume.state["optimizer"])
        data_gen.set_state(resume.state["extra"]["data_generator"])
        set_rng_state(resume.state["extra"]["rng"])
    if info.is_main:
        for stale in temp_files_of(out):  # only a SIGKILL mid-save leaves these
            stale.unlink(missing_ok=True)
    # Every forward (and so every backward's gradient all-reduce) goes through the wrapper.
    ddp = None
    if info.enabled:
        ddp = nn.parallel.DistributedDataParallel(
            model, device_ids=[info.device.index] if info.device.type == "cuda" else None,
            find_unused_parameters=model_config.use_moe,  # unrouted experts get no gradient
            broadcast_buffers=False,  # the only buffers are RoPE tables, derived from the config
        )
    forward = ddp or model

    log = None
    if info.is_main and metrics is not False:
        log = MetricsLog(metrics_path_for(out) if metrics is True else Path(metrics),
                         keep_until=start_step if resume else None)

    def save(step: int, losses: dict[str, float]) -> Path | None:
        path = None
        if info.is_main:
            extra = {"tokenizer": tokenizer.to_state(), "train": cfg.to_dict(), "stage": stage,
                     "rng": rng_state(), "data_generator": data_gen.get_state(), **losses}
            if lora:
                extra["lora"] = lora
            if tokenizer.kind == "char":
                extra["chars"] = tokenizer.to_state()["chars"]  # what older readers look for
            path = save_checkpoint(out, model, step=step, optimizer=optimizer, extra=extra)
        barrier(info)  # no rank runs ahead (or exits) while rank 0 writes
        return path

    B, T, A, W = cfg.batch_size, cfg.seq_len, cfg.grad_accum, info.world_size
    tokens_per_step = B * T * A * W
    stop = StopFlag()
    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, initial=start_step, unit="step", dynamic_ncols=True,
               disable=not (progress and info.is_main), desc="train")
    step, loss_value, val_loss, tps = start_step, math.nan, None, 0.0
    recent: list[float] = []
    checkpoint = None
    t_start = time.perf_counter()
    model.train()
    with stop_on_signals(stop), bar:
        while step < cfg.steps:
            t0 = time.perf_counter()
            lr = lr_at(step, cfg.steps, cfg.lr, cfg.warmup, cfg.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss_sum = torch.zeros((), device=info.device)
            for micro in range(A):
                starts = data.draw("train", B * W, T, data_gen)  # same on every rank
                x, y = data.batch("train", local_slice(starts, info), T)
                x, y = x.to(info.device), y.to(info.device)
                # Gradients are all-reduced once per optimizer step, on the last micro-step.
                sync = ddp is None or micro == A - 1
                with (contextlib.nullcontext() if sync else ddp.no_sync()):
                    with autocast_for(info.device):
                        loss = forward(x, y).loss / A
                    loss.backward()
                loss_sum += loss.detach()
            loss_value = float(mean_across(loss_sum, info))
            if not math.isfinite(loss_value):
                raise TrainError(f"training diverged at step {step + 1}: loss {loss_value}; "
                                 f"nothing saved (try a lower --lr than {cfg.lr})")
            max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            dt = time.perf_counter() - t0
            tps = tokens_per_step / dt if tps == 0 else 0.9 * tps + 0.1 * tokens_per_step / dt
            recent = (recent + [loss_value])[-20:]
            record: dict[str, Any] = {"step": step, "loss": round(loss_value, 5), "lr": lr,
                                      "grad_norm": round(grad_norm, 4),
                                      "tokens_per_second": round(tps, 1),
                                      "seconds": round(time.perf_counter() - t_start, 3)}
            last = step == cfg.steps
            if last or (cfg.eval_every and step % cfg.eval_every == 0):
                val_loss = evaluate(forward, data, cfg, info)
                record["val_loss"] = round(val_loss, 5)
                bar.write(f"step {step}: train loss {sum(recent) / len(recent):.4f}, "
                          f"val loss {val_loss:.4f}")
            if log:
                log.add(record)
            bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}", tok_s=f"{tps:,.0f}",
                            refresh=False)
            bar.update(1)
            if on_step:
                on_step(step, loss_value)
            stopping = any_across(bool(stop), info)
            if last or stopping or (cfg.save_every and step % cfg.save_every == 0):
                checkpoint = save(step, {"train_loss": loss_value, "val_loss": val_loss})
            if stopping:
                bar.write(f"stopped by signal at step {step}; saved {out} (--resume continues)")
                break
    seconds = time.perf_counter() - t_start
    if log and plot:
        plot_losses(log.records, plot_path_for(out), f"{out.name}: {step} steps")
    train_loss = sum(recent) / len(recent) if recent else math.nan
    return TrainResult(step, train_loss, val_loss, bool(stop), seconds, tps, checkpoint)
