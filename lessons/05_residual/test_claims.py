"""Claims of lesson 05: measured on fixed seeds, printed in pytest's summary, true for seeds 0..4.

Two models. A character MLP (the last 4 characters in, the next one out) whose hidden part is a
stack of tanh layers run by `residual_stack`, with PyTorch's default init and no norm: the
textbook setting for vanishing gradients. And the MiniMind transformer (Pre-RMSNorm) with
`config.residual` on or off, which changes nothing else.
"""
from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minimind import lab
from minimind.config import preset
from minimind.data import load_corpus
from minimind.model import MiniMindForCausalLM, residual_stack

# --- the character MLP --------------------------------------------------------------------------

CONTEXT, EMBED, WIDTH = 4, 16, 64  # 4 characters of context, 16-dim embeddings, 64-wide stack
MLP_DEPTHS = (4, 8, 16, 32)


class CharMLP(nn.Module):
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


def char_windows(generator: torch.Generator, batch_size: int) -> tuple[Tensor, Tensor]:
    """(B, CONTEXT) context characters and the (B,) character that follows each."""
    data = load_corpus().train
    starts = torch.randint(len(data) - CONTEXT - 1, (batch_size,), generator=generator)
    windows = data[starts[:, None] + torch.arange(CONTEXT + 1)]  # (B, CONTEXT + 1)
    return windows[:, :CONTEXT], windows[:, CONTEXT]


def char_mlp(depth: int, residual: bool, seed: int) -> CharMLP:
    torch.manual_seed(seed)
    return CharMLP(load_corpus().vocab_size, depth, residual)


def first_over_last_grad(model: CharMLP, ctx: Tensor, target: Tensor) -> float:
    """|grad| of the first stack layer's weight over that of the last, on one batch."""
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(ctx), target).backward()
    first, last = model.layers[0][0].weight.grad, model.layers[-1][0].weight.grad
    return (first.norm() / last.norm()).item()


def train_char_mlp(depth: int, residual: bool, seed: int) -> lab.Run:
    model = char_mlp(depth, residual, seed)
    gen = torch.Generator().manual_seed(seed)
    return lab.fit(model, lambda step: char_windows(gen, 64),
                   lambda m, x, y: F.cross_entropy(m(x), y),
                   lab.TrainSettings(steps=200, lr=3e-3), name=f"{depth} layers")


@pytest.mark.claim
def test_without_residuals_the_first_layer_gets_orders_of_magnitude_less_gradient(
    seed, report
):
    """Without skips the first layer's gradient shrinks geometrically with depth; with them ~1x."""
    ctx, target = char_windows(torch.Generator().manual_seed(1000 + seed), 256)
    ratios: dict[bool, list[float]] = {False: [], True: []}
    with lab.threads(1):
        for depth in MLP_DEPTHS:
            for residual in (False, True):
                model = char_mlp(depth, residual, seed)
                ratios[residual].append(first_over_last_grad(model, ctx, target))
    rows = [[d, plain, res] for d, plain, res in zip(MLP_DEPTHS, ratios[False], ratios[True])]
    report.table(lab.Table(
        f"tanh MLP at init: |grad first layer| / |grad last layer| (seed {seed})",
        ["depth", "no residual", "residual"], rows,
        note="default nn.Linear init, no norm; gradients of the stack's first and last weight",
    ))

    def draw(path):
        lab.line_plot(
            path, {"no residual": (MLP_DEPTHS, ratios[False]),
                   "residual": (MLP_DEPTHS, ratios[True])},
            xlabel="depth (tanh layers)", ylabel="|grad first| / |grad last|",
            logx=True, logy=True, hline=(1.0, "ratio 1"),
            title=f"gradient reaching the first layer, at init (seed {seed})")

    report.figure("05-gradient-ratio-vs-depth", draw)
    plain, res = ratios[False], ratios[True]
    assert all(a > b for a, b in zip(plain, plain[1:])), f"not shrinking with depth: {plain}"
    assert plain[-1] < 1e-5, f"at depth 32 the ratio is {plain[-1]:.2e}, not < 1e-5"
    assert all(0.3 < r < 5 for r in res), f"with residuals the ratio left [0.3, 5]: {res}"


# --- the transformer ---------------------------------------------------------------------------

SHALLOW, DEEP = 1, 8
LM_SETTINGS = lab.TrainSettings(steps=150, lr=3e-3, batch_size=16, seq_len=32)


@functools.lru_cache(maxsize=8)
def train_transformer(depth: int, residual: bool, seed: int) -> lab.Run:
    """MiniMind (Pre-RMSNorm, hidden 32) with `depth` blocks; cached: claims 2 and 3 share it."""
    corpus = load_corpus()
    config = preset("char-small", vocab_size=corpus.vocab_size, hidden_size=32,
                    num_hidden_layers=depth, residual=residual)
    return lab.train_lm(config, LM_SETTINGS, seed=seed, name=f"{depth} blocks", corpus=corpus)


def block_grad_norms(model: nn.Module, seed: int) -> list[float]:
    """Gradient norm of each block's parameters on one validation batch."""
    corpus = load_corpus()
    x, y = corpus.batch("val", 16, 32, torch.Generator().manual_seed(2000 + seed))
    model.zero_grad(set_to_none=True)
    with lab.threads(1):
        model(x, y).loss.backward()
    norms = []
    for block in model.model.layers:
        # float64: squaring a float32 gradient of 1e-20 would underflow to 0 by itself
        grads = [p.grad.double().norm() ** 2 for p in block.parameters() if p.grad is not None]
        norms.append(math.sqrt(sum(g.item() for g in grads)))
    model.zero_grad(set_to_none=True)
    return norms


def init_stream_rms(depth: int, residual: bool, seed: int) -> list[float]:
    """RMS of the output of each block of a freshly initialised model, on one batch."""
    corpus = load_corpus()
    config = preset("char-small", vocab_size=corpus.vocab_size, hidden_size=32,
                    num_hidden_layers=depth, residual=residual)
    torch.manual_seed(seed)
    model = MiniMindForCausalLM(config)
    x, _ = corpus.batch("val", 16, 32, torch.Generator().manual_seed(2000 + seed))
    with torch.no_grad(), lab.threads(1):
        hidden = model(x, output_hidden_states=True).hidden_states
    return [h.double().pow(2).mean().sqrt().item() for h in hidden]  # float64: no underflow


@pytest.mark.claim
@pytest.mark.slow
def test_depth_is_what_makes_residuals_necessary(seed, report):
    """Deep stacks without residuals train far worse than with them; shallow ones much less so."""
    mlp = {(d, r): train_char_mlp(d, r, seed) for d in (2, 16) for r in (False, True)}
    lm = {(d, r): train_transformer(d, r, seed) for d in (SHALLOW, DEEP) for r in (False, True)}
    uniform = math.log(load_corpus().vocab_size)
    rows = []
    for name, runs in (("tanh MLP", mlp), ("transformer", lm)):
        for depth in sorted({d for d, _ in runs}):
            plain, res = runs[(depth, False)], runs[(depth, True)]
            rows.append([name, depth, plain.final_loss, res.final_loss,
                         plain.final_loss - res.final_loss])
    report.table(lab.Table(
        f"final training loss after the same steps, with and without residuals (seed {seed})",
        ["model", "depth", "no residual", "residual", "gap"], rows,
        note=f"uniform guess = ln {load_corpus().vocab_size} = {uniform:.3f}; "
             f"MLP 200 steps, transformer {LM_SETTINGS.steps} steps",
    ))
    grads = {r: block_grad_norms(lm[(DEEP, r)].model, seed) for r in (False, True)}
    at_init = {r: init_stream_rms(DEEP, r, seed) for r in (False, True)}
    report.table(lab.Table(
        f"{DEEP}-block transformer at init: rms of each block's output (seed {seed})",
        ["block", "no residual", "residual"],
        [[i, at_init[False][i], at_init[True][i]] for i in range(DEEP)],
        note="0.000 is an exact zero: the forward signal underflowed float32",
    ))
    report.table(lab.Table(
        f"{DEEP}-block transformer after training: gradient norm per block (seed {seed})",
        ["residual", "block 0", f"block {DEEP - 1}"],
        [[str(r), grads[r][0], grads[r][-1]] for r in (False, True)],
    ))
    deep_runs = lab.Comparison({f"{DEEP} blocks, {'residual' if r else 'no residual'}":
                                lm[(DEEP, r)] for r in (True, False)}, seed)
    report.figure("05-deep-transformer-loss",
                  lambda path: deep_runs.plot(path, f"{DEEP}-block transformer"))

    def gap(runs, depth):
        return runs[(depth, False)].final_loss - runs[(depth, True)].final_loss

    # The MLP: depth alone decides.
    assert gap(mlp, 16) > 0.4, f"16-layer MLP gap only {gap(mlp, 16):.3f}"
    assert abs(gap(mlp, 2)) < 0.1, f"2-layer MLP gap {gap(mlp, 2):.3f} is not small"
    # The transformer: the deep one without skips does not learn at all; the shallow one does.
    assert lm[(DEEP, False)].final_loss > uniform - 0.05, "deep no-residual model learned"
    assert at_init[False][-1] < 1e-20 * at_init[True][-1], "signal survives 8 blocks w/o skips"
    assert grads[False][0] < 1e-6 * grads[True][0], "gradient still reaches block 0 w/o skips"
    assert lm[(DEEP, True)].final_loss < uniform - 1.5
    assert lm[(SHALLOW, False)].final_loss < uniform - 1.0, "shallow no-residual model stuck"
    assert gap(lm, SHALLOW) < gap(lm, DEEP) / 2


@pytest.mark.claim
@pytest.mark.slow
def test_residual_stream_grows_with_depth_while_each_block_adds_a_bounded_update(seed, report):
    """In a trained Pre-LN model the stream's norm grows with depth; each update stays small."""
    model = train_transformer(DEEP, True, seed).model
    corpus = load_corpus()
    x, _ = corpus.batch("val", 16, 32, torch.Generator().manual_seed(3000 + seed))
    with torch.no_grad(), lab.threads(1):
        out = model(x, output_hidden_states=True)
        stream = [model.model.embed_tokens(x), *out.hidden_states]  # before block 0, after each

    def rms(h: Tensor) -> float:  # root mean square over channels, averaged over tokens
        return h.pow(2).mean(-1).sqrt().mean().item()

    norms = [rms(h) for h in stream]
    updates = [rms(b - a) for a, b in zip(stream, stream[1:])]
    relative = [u / n for u, n in zip(updates, norms)]
    rows = [[i, norms[i + 1], updates[i], relative[i]] for i in range(DEEP)]
    report.table(lab.Table(
        f"trained {DEEP}-block Pre-LN model: residual stream per block (seed {seed})",
        ["block", "stream rms after", "update rms", "update / stream before"], rows,
        note=f"stream rms before block 0 (the embedding): {norms[0]:.3f}",
    ))

    def draw(path):
        lab.line_plot(
            path, {"stream rms": (range(DEEP + 1), norms),
                   "rms of the block's update": (range(1, DEEP + 1), updates)},
            xlabel="blocks applied (0 = the embedding)", ylabel="root mean square",
            title=f"residual stream of a trained {DEEP}-block Pre-LN model (seed {seed})")

    report.figure("05-residual-stream", draw)
    half = DEEP // 2
    # Growth over each half of the stack, so one flat block in the middle is not a failure.
    assert norms[half] > 1.2 * norms[1], f"first half grew only {norms[half] / norms[1]:.2f}x"
    assert norms[-1] > 1.1 * norms[half], f"second half grew only {norms[-1] / norms[half]:.2f}x"
    assert norms[-1] == max(norms), f"the stream is largest before the last block: {norms}"
    late = relative[DEEP // 2:]
    assert max(late) < 0.5, f"late blocks change the stream by up to {max(late):.2f}x"
