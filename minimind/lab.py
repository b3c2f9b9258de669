"""The experiment harness: train variants that differ in one thing, on fixed seeds, and compare.

A claim test reads like the experiment it is:

    runs = compare(base, {"no norm": dict(norm="none"), "pre RMSNorm": {}}, seed=seed,
                   settings=TrainSettings(steps=200, lr=3e-2))
    report.table(runs.table("norm vs no norm"))
    assert runs["pre RMSNorm"].final_loss < runs["no norm"].final_loss - 0.5

Runs are deterministic: one thread, seeded init, seeded batches (same seed, same numbers).
"""
from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from minimind.config import ModelConfig
from minimind.data import Corpus, load_corpus
from minimind.model import MiniMindForCausalLM


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run a block with n intra-op threads: one thread makes float reductions repeatable."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class TrainSettings:
    """How a run trains. A comparison uses one of these for every variant."""

    steps: int = 200
    lr: float = 3e-3
    batch_size: int = 32
    seq_len: int = 64
    warmup: int = 0  # linear warmup steps
    schedule: str = "constant"  # after warmup: "constant", or "cosine" decay to 10% at the end
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = None  # clip the global grad norm; None records it but never clips
    eval_batches: int = 8  # validation batches after training
    num_threads: int = 1

    def with_(self, **changes: Any) -> "TrainSettings":
        return replace(self, **changes)


@dataclass
class Run:
    """What one training run measured."""

    name: str
    losses: list[float]  # training loss per step, up to the first non-finite one
    grad_norms: list[float]  # global gradient norm per step, before clipping
    first_nonfinite_step: int | None  # None when every loss was finite
    val_loss: float  # mean validation loss after training (inf when training blew up)
    seconds: float  # wall time (inflated when other jobs share the CPU)
    cpu_seconds: float  # CPU time of this process: the steadier cost measure
    model: nn.Module | None = field(default=None, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def final_loss(self) -> float:
        """Mean training loss over the last 10% of steps (inf when training hit a non-finite)."""
        if self.first_nonfinite_step is not None or not self.losses:
            return math.inf
        tail = self.losses[-max(len(self.losses) // 10, 1):]
        return sum(tail) / len(tail)

    @property
    def max_loss(self) -> float:
        return max(self.losses) if self.losses else math.inf


def lr_at(step: int, settings: TrainSettings) -> float:
    """Linear warmup from lr/warmup to lr over `warmup` steps, then constant or cosine decay."""
    lr, warmup = settings.lr, settings.warmup
    if step < warmup:
        return lr * (step + 1) / warmup
    if settings.schedule == "cosine":
        progress = (step - warmup) / max(settings.steps - warmup, 1)
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
    return lr


def fit(
    model: nn.Module,
    next_batch: Callable[[int], tuple[Tensor, Tensor]],
    loss_fn: Callable[[nn.Module, Tensor, Tensor], Tensor],
    settings: TrainSettings,
    name: str = "run",
    evaluate: Callable[[nn.Module], float] | None = None,
) -> Run:
    """AdamW on `loss_fn(model, x, y)` for settings.steps steps; stops at a non-finite loss."""
    opt = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, betas=settings.betas,
        weight_decay=settings.weight_decay,
    )
    losses: list[float] = []
    grad_norms: list[float] = []
    bad_step = None
    start, cpu_start = time.perf_counter(), time.process_time()
    with threads(settings.num_threads):
        model.train()
        for step in range(settings.steps):
            for group in opt.param_groups:
                group["lr"] = lr_at(step, settings)
            x, y = next_batch(step)
            loss = loss_fn(model, x, y)
            if not torch.isfinite(loss):
                bad_step = step
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            max_norm = settings.grad_clip if settings.grad_clip is not None else math.inf
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            losses.append(loss.item())
            grad_norms.append(norm.item())
            if not math.isfinite(grad_norms[-1]):
                bad_step = step
                break
            opt.step()
        model.eval()
        val = math.inf
        if bad_step is None and evaluate is not None:
            with torch.no_grad():
                val = evaluate(model)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return Run(name, losses, grad_norms, bad_step, val, wall, cpu, model)


def lm_loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return model(x, y).loss


def train_lm(
    config: ModelConfig, settings: TrainSettings, seed: int = 0, name: str = "run",
    corpus: Corpus | None = None, model_fn: Callable[[ModelConfig], nn.Module] | None = None,
) -> Run:
    """Train MiniMindForCausalLM(config) on a character corpus (Shakespeare by default)."""
    corpus = corpus or load_corpus()
    if config.vocab_size < corpus.vocab_size:
        raise ValueError(f"config.vocab_size={config.vocab_size} is smaller than the corpus "
                         f"vocabulary ({corpus.vocab_size} characters)")
    with threads(settings.num_threads):
        torch.manual_seed(seed)
        model = (model_fn or MiniMindForCausalLM)(config)
    data_gen = torch.Generator().manual_seed(seed)
    B, T = settings.batch_size, settings.seq_len

    def next_batch(step: int) -> tuple[Tensor, Tensor]:
        return corpus.batch("train", B, T, data_gen)

    def evaluate(m: nn.Module) -> float:
        val_gen = torch.Generator().manual_seed(10_000 + seed)
        batches = [corpus.batch("val", B, T, val_gen) for _ in range(settings.eval_batches)]
        return sum(lm_loss(m, x, y).item() for x, y in batches) / len(batches)

    return fit(model, next_batch, lm_loss, settings, name, evaluate)


@dataclass
class Table:
    """A small table of measured numbers, printed in pytest's summary and pasted in READMEs."""

    title: str
    columns: Sequence[str]
    rows: list[Sequence[Any]]
    note: str = ""

    @staticmethod
    def _fmt(value: Any) -> str:
        if isinstance(value, float):
            if math.isnan(value) or math.isinf(value):
                return str(value)
            if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
                return f"{value:.2e}"
            return f"{value:.4g}" if abs(value) >= 100 else f"{value:.3f}"
        return "-" if value is None else str(value)

    def render(self) -> str:
        cells = [list(map(str, self.columns))] + [[self._fmt(v) for v in r] for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = [self.title]
        for k, row in enumerate(cells):
            lines.append("  " + "  ".join(c.rjust(w) for c, w in zip(row, widths)))
            if k == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
        if self.note:
            lines.append(f"  {self.note}")
        return "\n".join(lines)

    def markdown(self) -> str:
        head = "| " + " | ".join(map(str, self.columns)) + " |"
        rule = "|" + "|".join("---" for _ in self.columns) + "|"
        body = ["| " + " | ".join(self._fmt(v) for v in r) + " |" for r in self.rows]
        return "\n".join([f"**{self.title}**", "", head, rule, *body])


@dataclass
class Comparison:
    """Runs of variants that differ in one thing, keyed by variant name."""

    runs: dict[str, Run]
    seed: int

    def __getitem__(self, name: str) -> Run:
        return self.runs[name]

    def table(self, title: str) -> Table:
        rows = [
            [name, r.losses[0] if r.losses else math.nan, r.final_loss, r.val_loss,
             r.first_nonfinite_step, r.max_loss, r.cpu_seconds]
            for name, r in self.runs.items()
        ]
        cols = ["variant", "loss@0", "final loss", "val loss", "first non-finite", "max loss",
                "cpu s"]
        return Table(f"{title} (seed {self.seed})", cols, rows)

    def plot(self, path: str | Path, title: str = "", log: bool = False) -> Path:
        """Training-loss curves of every variant, one PNG."""
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, r in self.runs.items():
            ax.plot(r.losses, label=name)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        if log:
            ax.set_yscale("log")
        ax.set_title(f"{title} (seed {self.seed})")
        ax.legend()
        return save_figure(fig, path)


def default_workers() -> int:
    """Processes for independent runs: MINIMIND_WORKERS, else one per core, at most 2."""
    return int(os.environ.get("MINIMIND_WORKERS", min(2, os.cpu_count() or 1)))


def _train_job(job: tuple[ModelConfig, TrainSettings, int, str, Corpus | None]) -> Run:
    config, settings, seed, name, corpus = job
    return train_lm(config, settings, seed=seed, name=name, corpus=corpus)


def run_parallel(
    jobs: list[Any], worker: Callable[[Any], Any], workers: int | None = None
) -> list[Any]:
    """worker(job) for every job, in forked processes when workers > 1, results in job order.

    Each job is single-threaded and seeded, so where it runs cannot change its numbers; running
    two at once only uses both cores.
    """
    workers = default_workers() if workers is None else workers
    if workers <= 1 or len(jobs) <= 1:
        return [worker(job) for job in jobs]
    ctx = multiprocessing.get_context("fork")  # children inherit the loaded corpus and modules
    with ctx.Pool(min(workers, len(jobs)), initializer=torch.set_num_threads,
                  initargs=(1,)) as pool:
        return pool.map(worker, jobs, chunksize=1)


def compare(
    base: ModelConfig, variants: dict[str, dict[str, Any]], settings: TrainSettings,
    seed: int = 0, variant_settings: dict[str, dict[str, Any]] | None = None,
    corpus: Corpus | None = None, workers: int | None = None,
) -> Comparison:
    """Train base.replace(**changes) for each variant with the same seed, data and settings.

    `variant_settings` changes training settings for named variants (for example warmup), so a
    comparison can vary the recipe instead of the model while everything else stays equal.
    Variants train in parallel processes (see run_parallel); the numbers do not depend on it.
    """
    corpus = corpus or load_corpus()
    jobs = [
        (base.replace(**changes), settings.with_(**(variant_settings or {}).get(name, {})),
         seed, name, corpus)
        for name, changes in variants.items()
    ]
    runs = run_parallel(jobs, _train_job, workers)
    return Comparison({run.name: run for run in runs}, seed)


def pyplot():
    """matplotlib.pyplot with the headless backend, imported only when a figure is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def line_plot(
    path: str | Path, series: dict[str, tuple[Sequence[float], Sequence[float]]], *,
    xlabel: str, ylabel: str, title: str, logx: bool = False, logy: bool = False,
    hline: tuple[float, str] | None = None,
) -> Path:
    """One PNG of labelled (xs, ys) curves; logx uses base 2 (depths, dims, lengths double)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (xs, ys) in series.items():
        ax.plot(list(xs), list(ys), "o-", label=label)
    if hline is not None:
        ax.axhline(hline[0], ls=":", c="gray", label=hline[1])
    if logx:
        ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def save_figure(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path
