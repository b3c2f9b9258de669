"""Training runs for experiments: variants that differ in one thing, on fixed seeds.

A claim test reads like the experiment it is:

    runs = compare(base, {"no norm": dict(norm="none"), "pre RMSNorm": {}}, seed=seed,
                   settings=TrainSettings(steps=200, lr=3e-2))
    claim.table(runs.table("norm vs no norm"))
    claim.check("loss gap", runs["no norm"].final_loss - runs["pre RMSNorm"].final_loss, ">", 0.5)

Runs are deterministic on one machine: one thread, seeded init, seeded batches. Another CPU
computes the last bits of some float operations differently, and training, being chaotic,
carries that into a different trajectory; `perturbation()` stands in for that (see nudge_weights).
"""
from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn

from minimind import optim
from minimind.config import ModelConfig
from minimind.data import Corpus, load_corpus
from minimind.lab.tables import Table
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
    optimizer: str = "adamw"  # or "sgd": SGD with momentum betas[0] (no adaptive step size)
    grad_clip: float | None = None  # clip the global grad norm; None records it but never clips
    eval_batches: int = 8  # validation batches after training
    num_threads: int = 1

    def replace(self, **changes: Any) -> TrainSettings:
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
    """Linear warmup from lr/warmup to lr over `warmup` steps, then constant, or the trainer's
    cosine decay to 10% (minimind.optim.lr_at)."""
    lr, warmup = settings.lr, settings.warmup
    if settings.schedule == "cosine":
        return optim.lr_at(step, settings.steps, lr, warmup)
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr


PERTURB_ENV = "MINIMIND_PERTURB"  # `pytest --perturb` sets it to 1e-6


def perturbation() -> float:
    """Relative size of the nudge every run's initial weights get (0 unless perturbing)."""
    return float(os.environ.get(PERTURB_ENV) or 0.0)


def nudge_weights(model: nn.Module, scale: float | None = None) -> None:
    """Multiply every parameter by (1 + scale * noise), noise ~ N(0, 1) from a fixed generator.

    At 1e-6 (about 8 float32 ulps) this changes nothing a claim is about, yet after a few
    steps of training the trajectory differs as much as another CPU's last-bit differences make
    it differ: the perturbation mode's stand-in for running on another machine. A no-op at 0.
    """
    scale = perturbation() if scale is None else scale
    if scale == 0:
        return
    g = torch.Generator().manual_seed(2**31 - 1)
    with torch.no_grad():
        for p in model.parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64)
            p.copy_((p.double() * (1 + scale * noise)).to(p.dtype))


def randomize_weights(model: nn.Module, seed: int) -> nn.Module:
    """Random weights everywhere, norm gains included (around 1), so that no part of a model is
    a no-op when two implementations are compared on it; returns the model in eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=g))
    return model.eval()


def make_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    """AdamW, or SGD with momentum betas[0] (settings.optimizer), over all of model's weights."""
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=settings.lr, betas=settings.betas,
                                 weight_decay=settings.weight_decay)
    if settings.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.betas[0],
                               weight_decay=settings.weight_decay)
    raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {settings.optimizer!r}")


def fit(
    model: nn.Module,
    next_batch: Callable[[int], tuple[Tensor, Tensor]],
    loss_fn: Callable[[nn.Module, Tensor, Tensor], Tensor],
    settings: TrainSettings,
    name: str = "run",
    evaluate: Callable[[nn.Module], float] | None = None,
) -> Run:
    """AdamW on `loss_fn(model, x, y)` for settings.steps steps; stops at a non-finite loss.

    The initial weights are nudged first when perturbing (see nudge_weights).
    """
    nudge_weights(model)
    opt = make_optimizer(model, settings)
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
        (base.replace(**changes), settings.replace(**(variant_settings or {}).get(name, {})),
         seed, name, corpus)
        for name, changes in variants.items()
    ]
    runs = run_parallel(jobs, _train_job, workers)
    return Comparison({run.name: run for run in runs}, seed)
