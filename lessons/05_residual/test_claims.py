"""Claims of lesson 05: measured on fixed seeds; `python -m minimind.course.calibrate` checks
their margins over seeds 0..19, plain and perturbed.

Two models. A character MLP (the last 4 characters in, the next one out) whose hidden part is a
stack of tanh layers run by `residual_stack`, with PyTorch's default init and no norm: the
textbook setting for vanishing gradients. And the MiniMind transformer (Pre-RMSNorm) with
`config.residual` on or off, which changes nothing else.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minimind.config import ModelConfig, preset
from minimind.data import load_corpus
from minimind.lab import (
    LineFigure,
    Run,
    Table,
    TrainSettings,
    compare,
    fit,
    loss_curves,
    run_parallel,
    threads,
)
from minimind.model import MiniMindForCausalLM, residual_stack

# --- the character MLP --------------------------------------------------------------------------

CONTEXT, EMBED, WIDTH = 4, 16, 64  # 4 characters of context, 16-dim embeddings, 64-wide stack
MLP_DEPTHS = (4, 8, 16, 32)


class _CharMLP(nn.Module):
    """Embed the last CONTEXT characters, then `depth` tanh layers, then logits for the next."""

    def __init__(self, vocab_size: int, depth: int, residual: bool):
        super().__init__()
        self.residual = residual
        self.embed = nn.Embedding(vocab_size, EMBED)
        self.inp = nn.Linear(CONTEXT * EMBED, WIDTH)
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.Tanh()) for _ in range(depth)
        )
        self.head = nn.Linear(WIDTH, vocab_size)

    def forward(self, ctx: Tensor) -> Tensor:
        B, K = ctx.shape
        h = torch.tanh(self.inp(self.embed(ctx).reshape(B, K * EMBED)))  # (B, K*EMBED) -> (B, W)
        return self.head(residual_stack(h, self.layers, self.residual))


def _char_windows(generator: torch.Generator, batch_size: int) -> tuple[Tensor, Tensor]:
    """(B, CONTEXT) context characters and the (B,) character that follows each."""
    data = load_corpus().train
    starts = torch.randint(len(data) - CONTEXT - 1, (batch_size,), generator=generator)
    windows = data[starts[:, None] + torch.arange(CONTEXT + 1)]  # (B, CONTEXT + 1)
    return windows[:, :CONTEXT], windows[:, CONTEXT]


def _char_mlp(depth: int, residual: bool, seed: int) -> _CharMLP:
    torch.manual_seed(seed)
    return _CharMLP(load_corpus().vocab_size, depth, residual)


def _first_over_last_grad(model: _CharMLP, ctx: Tensor, target: Tensor) -> float:
    """|grad| of the first stack layer's weight over that of the last, on one batch."""
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(ctx), target).backward()
    first, last = model.layers[0][0].weight.grad, model.layers[-1][0].weight.grad
    return (first.norm() / last.norm()).item()


MLP_SETTINGS = TrainSettings(steps=200, lr=3e-3)


def _mlp_loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(model(x), y)


def _train_char_mlp(job: tuple[int, bool, int]) -> Run:
    """One (depth, residual, seed) run; lab.fit nudges the initial weights under --perturb."""
    depth, residual, seed = job
    model = _char_mlp(depth, residual, seed)
    gen = torch.Generator().manual_seed(seed)
    return fit(model, lambda step: _char_windows(gen, 64), _mlp_loss, MLP_SETTINGS,
               name=f"{depth} layers")


@pytest.mark.claim
def test_without_residuals_the_first_layer_gets_orders_of_magnitude_less_gradient(
    seed, claim
):
    """Without skips the first layer's gradient shrinks geometrically with depth; with them ~1x."""
    ctx, target = _char_windows(torch.Generator().manual_seed(1000 + seed), 256)
    ratios: dict[bool, list[float]] = {False: [], True: []}
    with threads(1):
        for depth in MLP_DEPTHS:
            for residual in (False, True):
                model = _char_mlp(depth, residual, seed)
                ratios[residual].append(_first_over_last_grad(model, ctx, target))
    rows = [[d, plain, res] for d, plain, res in zip(MLP_DEPTHS, ratios[False], ratios[True])]
    claim.table(Table(
        f"tanh MLP at init: |grad first layer| / |grad last layer| (seed {seed})",
        ["depth", "no residual", "residual"], rows,
        note="default nn.Linear init, no norm; gradients of the stack's first and last weight",
    ))
    claim.figure("gradient-ratio-vs-depth", LineFigure(
        {"no residual": (MLP_DEPTHS, ratios[False]), "residual": (MLP_DEPTHS, ratios[True])},
        xlabel="depth (tanh layers)", ylabel="|grad first| / |grad last|",
        logx=True, logy=True, hline=(1.0, "ratio 1"),
        title=f"gradient reaching the first layer, at init (seed {seed})"))
    plain, res = ratios[False], ratios[True]
    # The opposite outcome, a ratio that does not depend on depth, measures a fall of ~1 per
    # doubling and a depth-32 ratio near the depth-4 one: it fails the first two kinds of check.
    for d, a, b in zip(MLP_DEPTHS[1:], plain[1:], plain):
        claim.check(f"no residual: ratio at depth {d} / at depth {d // 2}", a / b, "<", 0.5)
    claim.check("no residual: ratio at depth 32", plain[-1], "<", 1e-5)
    claim.check("residual: smallest ratio over depths", min(res), ">", 0.3)
    claim.check("residual: largest ratio over depths", max(res), "<", 5)


# --- the transformer ---------------------------------------------------------------------------

SHALLOW, DEEP = 1, 8
LM_SETTINGS = TrainSettings(steps=250, lr=3e-3, batch_size=16, seq_len=32)
DEEP_GAP = 1.5  # the deep no-residual model's final loss minus the deep residual one's


def _lm_config(depth: int, residual: bool) -> ModelConfig:
    """MiniMind (Pre-RMSNorm, hidden 32) with `depth` blocks, with or without skips."""
    return preset("char-small", vocab_size=load_corpus().vocab_size, hidden_size=32,
                  num_hidden_layers=depth, residual=residual)


def _lm_name(depth: int, residual: bool) -> str:
    return f"{depth} block{'s' if depth > 1 else ''}, {'residual' if residual else 'no residual'}"


@pytest.fixture(scope="module")
def mlp_runs(seed: int) -> dict[tuple[int, bool], Run]:
    """The tanh MLP at 2 and 16 layers, with and without skips, trained for the same steps."""
    jobs = [(depth, residual, seed) for depth in (2, 16) for residual in (False, True)]
    return {(d, r): run for (d, r, _), run in zip(jobs, run_parallel(jobs, _train_char_mlp))}


@pytest.fixture(scope="module")
def lm_runs(seed: int) -> dict[tuple[int, bool], Run]:
    """The transformer at SHALLOW and DEEP blocks, with and without skips (claims 2 and 3)."""
    keys = [(d, r) for d in (SHALLOW, DEEP) for r in (False, True)]
    runs = compare(_lm_config(SHALLOW, True),
                   {_lm_name(d, r): dict(num_hidden_layers=d, residual=r) for d, r in keys},
                   LM_SETTINGS, seed=seed)
    return {(d, r): runs[_lm_name(d, r)] for d, r in keys}


def _block_grad_norms(model: nn.Module, seed: int) -> list[float]:
    """Gradient norm of each block's parameters on one validation batch."""
    corpus = load_corpus()
    x, y = corpus.batch("val", 16, 32, torch.Generator().manual_seed(2000 + seed))
    model.zero_grad(set_to_none=True)
    with threads(1):
        model(x, y).loss.backward()
    norms = []
    for block in model.model.layers:
        # float64: squaring a float32 gradient of 1e-20 would underflow to 0 by itself
        grads = [p.grad.double().norm() ** 2 for p in block.parameters() if p.grad is not None]
        norms.append(math.sqrt(sum(g.item() for g in grads)))
    model.zero_grad(set_to_none=True)
    return norms


def _init_stream_rms(depth: int, residual: bool, seed: int) -> list[float]:
    """RMS of the output of each block of a freshly initialised model, on one batch."""
    corpus = load_corpus()
    torch.manual_seed(seed)
    model = MiniMindForCausalLM(_lm_config(depth, residual))
    x, _ = corpus.batch("val", 16, 32, torch.Generator().manual_seed(2000 + seed))
    with torch.no_grad(), threads(1):
        hidden = model(x, output_hidden_states=True).hidden_states
    return [h.double().pow(2).mean().sqrt().item() for h in hidden]  # float64: no underflow


@pytest.mark.claim
@pytest.mark.slow
def test_depth_is_what_makes_residuals_necessary(seed, claim, mlp_runs, lm_runs):
    """Deep stacks without residuals train far worse than with them; shallow ones much less so."""
    mlp, lm = mlp_runs, lm_runs
    uniform = math.log(load_corpus().vocab_size)
    rows = []
    for name, runs in (("tanh MLP", mlp), ("transformer", lm)):
        for depth in sorted({d for d, _ in runs}):
            plain, res = runs[(depth, False)], runs[(depth, True)]
            rows.append([name, depth, plain.final_loss, res.final_loss,
                         plain.final_loss - res.final_loss])
    claim.table(Table(
        f"final training loss after the same steps, with and without residuals (seed {seed})",
        ["model", "depth", "no residual", "residual", "gap"], rows,
        note=f"uniform guess = ln {load_corpus().vocab_size} = {uniform:.3f}; "
             f"MLP {MLP_SETTINGS.steps} steps, transformer {LM_SETTINGS.steps} steps",
    ))
    grads = {r: _block_grad_norms(lm[(DEEP, r)].model, seed) for r in (False, True)}
    at_init = {r: _init_stream_rms(DEEP, r, seed) for r in (False, True)}
    claim.table(Table(
        f"{DEEP}-block transformer at init: rms of each block's output (seed {seed})",
        ["block", "no residual", "residual"],
        [[i, at_init[False][i], at_init[True][i]] for i in range(DEEP)],
        note="0.000 is an exact zero: the forward signal underflowed float32",
    ))
    claim.table(Table(
        f"{DEEP}-block transformer after training: gradient norm per block (seed {seed})",
        ["residual", "block 0", f"block {DEEP - 1}"],
        [[str(r), grads[r][0], grads[r][-1]] for r in (False, True)],
    ))
    claim.figure("deep-transformer-loss", loss_curves(
        {_lm_name(DEEP, r): lm[(DEEP, r)] for r in (True, False)},
        f"{DEEP}-block transformer (seed {seed})"))

    def gap(runs, depth):
        return runs[(depth, False)].final_loss - runs[(depth, True)].final_loss

    # The MLP: depth alone decides. No effect of depth would measure the same gap at 2 and 16.
    claim.check("16-layer MLP: no-residual minus residual final loss", gap(mlp, 16), ">", 0.4)
    claim.check("2-layer MLP: no-residual minus residual final loss", gap(mlp, 2), "<", 0.1)
    claim.check("2-layer MLP: no-residual minus residual final loss (lower bound)",
                gap(mlp, 2), ">", -0.1)
    # The transformer: the deep one without skips does not learn at all; the shallow one does.
    claim.check(f"{DEEP} blocks, no residual: uniform minus final loss",
                uniform - lm[(DEEP, False)].final_loss, "<", 0.05)
    claim.check(f"{DEEP} blocks at init: last block's output rms, no residual / residual",
                at_init[False][-1] / at_init[True][-1], "<", 1e-20)
    claim.check(f"{DEEP} blocks trained: block-0 gradient norm, no residual / residual",
                grads[False][0] / grads[True][0], "<", 1e-6)
    # With and without skips measured against each other: a deep model that trained as well
    # without them (no difference) measures a gap of 0.
    claim.check(f"{DEEP} blocks: no-residual minus residual final loss", gap(lm, DEEP), ">",
                DEEP_GAP)
    claim.check(f"{SHALLOW} block, no residual: uniform minus final loss",
                uniform - lm[(SHALLOW, False)].final_loss, ">", 1.0)
    claim.check(f"{SHALLOW}-block gap / {DEEP}-block gap", gap(lm, SHALLOW) / gap(lm, DEEP), "<",
                0.5)


@pytest.mark.claim
@pytest.mark.slow
def test_residual_stream_grows_with_depth_while_each_block_adds_a_bounded_update(
    seed, claim, lm_runs
):
    """In a trained Pre-LN model the stream's norm grows with depth; each update stays small."""
    model = lm_runs[(DEEP, True)].model
    corpus = load_corpus()
    x, _ = corpus.batch("val", 16, 32, torch.Generator().manual_seed(3000 + seed))
    with torch.no_grad(), threads(1):
        out = model(x, output_hidden_states=True)
        stream = [model.model.embed_tokens(x), *out.hidden_states]  # before block 0, after each

    def rms(h: Tensor) -> float:  # root mean square over channels, averaged over tokens
        return h.pow(2).mean(-1).sqrt().mean().item()

    norms = [rms(h) for h in stream]
    updates = [rms(b - a) for a, b in zip(stream, stream[1:])]
    relative = [u / n for u, n in zip(updates, norms)]
    rows = [[i, norms[i + 1], updates[i], relative[i]] for i in range(DEEP)]
    claim.table(Table(
        f"trained {DEEP}-block Pre-LN model: residual stream per block (seed {seed})",
        ["block", "stream rms after", "update rms", "update / stream before"], rows,
        note=f"stream rms before block 0 (the embedding): {norms[0]:.3f}",
    ))
    claim.figure("residual-stream", LineFigure(
        {"stream rms": (range(DEEP + 1), norms),
         "rms of the block's update": (range(1, DEEP + 1), updates)},
        xlabel="blocks applied (0 = the embedding)", ylabel="root mean square",
        title=f"residual stream of a trained {DEEP}-block Pre-LN model (seed {seed})"))
    half = DEEP // 2
    # Growth over each half of the stack, so one flat block in the middle is not a failure. A
    # stream of constant size measures 1 for every growth factor below. How much the stream
    # grows, and how that splits between the halves, varies a lot by seed (see the README), so
    # each half is only required to grow, and the whole stack by a third.
    claim.check("stream rms after the last block / after block 0", norms[-1] / norms[1], ">", 1.3)
    claim.check("stream rms after block 3 / after block 0", norms[half] / norms[1], ">", 1.0)
    claim.check("stream rms after the last block / after block 3", norms[-1] / norms[half], ">",
                1.0)
    claim.check("largest update / stream before it, blocks 4-7", max(relative[half:]), "<", 0.5)
