"""Claims of lesson 09: how the next token is chosen, measured on a small model trained here;
`python -m minimind.course.calibrate` checks their margins over seeds 0..19, plain and
perturbed.

One model serves every claim: MiniMind (hidden 64, 2 blocks) trained for a few seconds on
Shakespeare cut into byte-level BPE tokens (vocabulary 384, trained on the training split). BPE,
not characters, because the repetition penalty acts between tokens already seen and tokens not
yet seen, and in a character model almost every character has been seen after a line or two.
"""
from __future__ import annotations

import copy
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from minimind.config import preset
from minimind.data import VAL_FRACTION, shakespeare_text
from minimind.generate import (
    apply_repetition_penalty,
    decode_with_cache,
    greedy_decode,
    penalize_seen_tokens,
    repeated_ngram_fraction,
    sample_next,
    top_p_mask,
)
from minimind.lab import LineFigure, Panels, Run, Table, TrainSettings, fit, lm_loss, threads
from minimind.model import MiniMindForCausalLM
from minimind.tokenizer import BPETokenizer, train_bpe

# --- the model every claim uses ----------------------------------------------------------------

VOCAB = 384  # byte-level BPE: 256 bytes, 3 special tokens, 125 merges
TRAIN_CHARS, VAL_CHARS = 250_000, 60_000  # the head of each split: enough for 200 steps
SETTINGS = TrainSettings(steps=200, lr=3e-3, batch_size=16, seq_len=48)


class Data:
    """Shakespeare in BPE tokens: the tokenizer and the two splits as 1-D id tensors."""

    def __init__(self) -> None:
        text = shakespeare_text()
        n_val = int(len(text) * VAL_FRACTION)  # the split load_corpus() uses
        train_text, val_text = text[:-n_val][:TRAIN_CHARS], text[-n_val:][:VAL_CHARS]
        self.tokenizer: BPETokenizer = train_bpe([train_text], VOCAB)
        self.train = torch.tensor(self.tokenizer.encode(train_text))
        self.val = torch.tensor(self.tokenizer.encode(val_text))

    def windows(self, split: str, count: int, length: int, seed: int) -> Tensor:
        """(count, length) windows of consecutive tokens at seeded random starts."""
        data = self.train if split == "train" else self.val
        g = torch.Generator().manual_seed(seed)
        starts = torch.randint(len(data) - length, (count,), generator=g)
        return data[starts[:, None] + torch.arange(length)]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Every measurement on one intra-op thread: repeatable, and no threads fighting for cores."""
    with threads(1):
        yield


@pytest.fixture(scope="module")
def trained(seed: int) -> tuple[Run, Data]:
    """The model, trained once per module with lab.fit (nudged under --perturb)."""
    data = Data()
    config = preset("char-small", vocab_size=VOCAB)  # hidden 64, 2 blocks, 4 heads
    with threads(1):
        torch.manual_seed(seed)
        model = MiniMindForCausalLM(config)
    batches = torch.Generator().manual_seed(seed)
    B, T = SETTINGS.batch_size, SETTINGS.seq_len

    def next_batch(step: int) -> tuple[Tensor, Tensor]:
        starts = torch.randint(len(data.train) - T - 1, (B,), generator=batches)
        w = data.train[starts[:, None] + torch.arange(T + 1)]
        return w[:, :-1], w[:, 1:]

    run = fit(model, next_batch, lm_loss, SETTINGS, name="BPE Shakespeare")
    return run, data


def _next_token_logits(trained, seed: int) -> Tensor:
    """(N, vocab) next-token logits of the trained model at every position of held-out windows."""
    run, data = trained
    x = data.windows("val", 8, 48, 1000 + seed)
    with torch.no_grad(), threads(1):
        return run.model(x).logits.reshape(-1, VOCAB)


# --- 1. temperature ----------------------------------------------------------------------------

TEMPERATURES = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
DRAWS = 8  # samples per position


def _entropy(logits: Tensor, temperature: float) -> Tensor:
    """Entropy (nats) of softmax(logits / T), per row, in float64."""
    logp = torch.log_softmax(logits.double() / temperature, dim=-1)
    return -(logp.exp() * logp).sum(-1).nan_to_num(0.0)


@pytest.mark.claim
def test_temperature_to_zero_is_greedy_and_temperature_raises_entropy_monotonically(
    seed, claim, trained
):
    """sample_next at temperature 0 is the argmax; as T falls the draws agree with the argmax
    more and more often, and the next-token entropy rises with T at every position."""
    logits = _next_token_logits(trained, seed)
    greedy = logits.argmax(-1, keepdim=True)
    assert torch.equal(sample_next(logits, 0.0), greedy), "temperature 0 must be the argmax"
    many = logits.repeat(DRAWS, 1)
    top2 = logits.topk(2, dim=-1).values
    gaps = top2[:, 0] - top2[:, 1]
    agree, entropy, clear = [], [], []
    for i, t in enumerate(TEMPERATURES):
        g = torch.Generator().manual_seed(seed * 100 + i)
        draws = sample_next(many, t, generator=g)
        same = draws == greedy.repeat(DRAWS, 1)
        agree.append(same.double().mean().item())
        if t <= 0.1:
            clear.append(same[(gaps > 25 * t).repeat(DRAWS)])
        entropy.append(_entropy(logits, t))
    mean_h = [h.mean().item() for h in entropy]
    rises = torch.stack([b - a for a, b in zip(entropy[3:], entropy[4:])])  # T >= 0.25
    clear = torch.cat(clear)
    claim.table(Table(
        f"next-token distribution of the trained model against temperature (seed {seed})",
        ["temperature", "draws equal to the argmax", "mean entropy (nats)"],
        [[t, a, h] for t, a, h in zip(TEMPERATURES, agree, mean_h)],
        note=f"{logits.shape[0]} held-out positions, {DRAWS} draws each; uniform entropy "
             f"ln {VOCAB} = {math.log(VOCAB):.2f}; smallest entropy rise between neighbouring "
             f"T >= 0.25 at one position: {rises.min().item():.1e} nats; draws at T <= 0.1 "
             f"where the top-2 gap exceeds 25 T: {int(clear.sum())} of {clear.numel()} on the "
             f"argmax",
    ))
    claim.figure("temperature", Panels([
        LineFigure({"draws equal to the argmax": (TEMPERATURES, agree)}, xlabel="temperature",
                   ylabel="fraction", title="sampling approaches greedy as T -> 0", logx=True),
        LineFigure({"mean entropy": (TEMPERATURES, mean_h)}, xlabel="temperature",
                   ylabel="nats", title="entropy of the next-token distribution", logx=True,
                   hline=(math.log(VOCAB), f"uniform, ln {VOCAB}")),
    ], width_per_panel=4.5, height=3.6))
    # Exact, whatever the seed: a draw other than the argmax needs a near-tie (with a top-2 gap
    # above 25 T its probability is below (vocab - 1) e^-25 ~ 5e-9), and entropy rises with T
    # at every single position (dH/dT = Var(logits / T) / T > 0).
    assert bool(clear.all()), "T <= 0.1: a draw off the argmax despite a clear gap"
    assert bool((rises > 0).all()), f"entropy fell with T at {int((rises <= 0).sum())} places"
    # Temperature applied after the softmax (or not at all) would draw at T = 0.01 as at T = 1,
    # agreeing with the argmax about 0.3 of the time here, and leave the entropy unchanged:
    # ratios of 1 below.
    claim.check("T = 0.01: draws equal to the argmax", agree[0], ">", 0.9)
    claim.check("agreement with the argmax, T = 0.1 minus T = 1", agree[2] - agree[5], ">", 0.2)
    claim.check("mean entropy at T = 2 / at T = 1", mean_h[6] / mean_h[5], ">", 1.2)
    claim.check("mean entropy at T = 0.5 / at T = 1", mean_h[4] / mean_h[5], "<", 0.8)


# --- 2. top-p ----------------------------------------------------------------------------------

def _check_top_p(probs: Tensor, p: float, keep: Tensor) -> None:
    """keep is the smallest set of most probable tokens reaching p (exact arithmetic assumed)."""
    for row, kept in zip(probs, keep):
        mass = row[kept].sum()
        assert mass >= p, f"kept mass {mass} < p = {p}"
        least = row[kept].min()
        assert mass - least < p, f"the set without its least probable token still reaches {p}"
        if (~kept).any():
            assert least >= row[~kept].max(), "a dropped token is more probable than a kept one"


@pytest.mark.claim
@given(
    counts=st.lists(st.integers(0, 64), min_size=1, max_size=40).filter(lambda c: sum(c) > 0),
    numerator=st.integers(1, 1 << 12),
)
def test_top_p_keeps_the_smallest_set_of_tokens_whose_probability_reaches_p(counts, numerator):
    """For any distribution and p, top_p_mask keeps tokens reaching p, no token could be
    dropped without falling below p, and nothing kept is less probable than anything dropped."""
    # Dyadic probabilities and p (k / 2^m): every sum below is exact in float64, so "reaches p"
    # is decided exactly, ties and all.
    scale = 1 << (sum(counts) - 1).bit_length()
    probs = torch.tensor([[c / scale for c in counts]], dtype=torch.float64)
    p = min(numerator / (1 << 12), probs.sum().item())
    _check_top_p(probs, p, top_p_mask(probs, p))


TOP_PS = (0.5, 0.8, 0.9, 0.95, 0.99)


@pytest.mark.claim
def test_top_p_keeps_few_tokens_where_the_model_is_sure_and_many_where_it_is_not(
    seed, claim, trained
):
    """On the trained model's next-token distributions top-p keeps exactly the smallest set
    reaching p, and its size adapts: one token at some positions, dozens at others."""
    probs = torch.softmax(_next_token_logits(trained, seed).double(), dim=-1)
    rows, sizes = [], {}
    for p in TOP_PS:
        keep = top_p_mask(probs, p)
        _check_top_p(probs, p, keep)
        n = keep.sum(-1).double()
        sizes[p] = n
        rows.append([p, n.min().item(), n.median().item(), n.mean().item(), n.max().item()])
    claim.table(Table(
        f"tokens top-p keeps on the trained model, per held-out position (seed {seed})",
        ["p", "fewest", "median", "mean", "most"], rows,
        note=f"{probs.shape[0]} positions, vocabulary {VOCAB}; every set checked to be the "
             f"smallest reaching p",
    ))
    claim.figure("top-p-set-size", LineFigure(
        {"most": (TOP_PS, [r[4] for r in rows]), "mean": (TOP_PS, [r[3] for r in rows]),
         "median": (TOP_PS, [r[2] for r in rows]), "fewest": (TOP_PS, [r[1] for r in rows])},
        xlabel="p", ylabel="tokens kept", logy=True,
        title=f"tokens top-p keeps per position (seed {seed})"))
    # A fixed-size rule (top-k) would keep the same number everywhere: a ratio of 1.
    claim.check("p = 0.9: most tokens kept / fewest, over positions",
                (sizes[0.9].max() / sizes[0.9].min()).item(), ">", 10)


# --- 3. greedy loops and the repetition penalty ------------------------------------------------

PENALTIES = (1.0, 1.1, 1.2, 1.3, 1.5, 2.0)
CHECKED = 1.3  # the penalty the checks are made at
PROMPT, NEW, NGRAM = 16, 120, 4


@pytest.fixture(scope="module")
def penalty_sweep(seed, trained) -> dict:
    """Greedy continuations of held-out prompts and the held-out NLL, at every penalty."""
    run, data = trained
    model = run.model
    prompts = data.windows("val", 8, PROMPT, 2000 + seed)
    held_out = data.windows("val", 16, 129, 3000 + seed)
    with torch.no_grad(), threads(1):
        logits = model(held_out[:, :-1]).logits  # (16, 128, vocab)
        out = {"prompts": prompts, "rep": {}, "nll": {}, "text": {}, "ids": {}}
        for pen in PENALTIES:
            ids = decode_with_cache(model, prompts, NEW, repetition_penalty=pen)[:, PROMPT:]
            out["ids"][pen] = ids
            out["rep"][pen] = sum(repeated_ngram_fraction(r, NGRAM) for r in ids) / len(ids)
            scored = penalize_seen_tokens(logits, held_out[:, :-1], pen)
            out["nll"][pen] = torch.nn.functional.cross_entropy(
                scored.reshape(-1, VOCAB), held_out[:, 1:].reshape(-1)).item()
            out["text"][pen] = data.tokenizer.decode(ids[0].tolist())
        out["human"] = sum(repeated_ngram_fraction(r, NGRAM)
                           for r in data.windows("val", 16, NEW, 4000 + seed)) / 16
        # The control: the penalty's rule applied to every token, seen or not.
        every = torch.arange(VOCAB).expand(len(prompts), VOCAB)
        ids, feed, past = prompts, prompts, None
        for _ in range(NEW):
            step = model(feed, past_key_values=past, use_cache=True)
            past = step.past_key_values
            feed = apply_repetition_penalty(step.logits[:, -1], every, CHECKED).argmax(-1, True)
            ids = torch.cat([ids, feed], 1)
        out["everywhere"] = ids[:, PROMPT:]
    return out


@pytest.mark.claim
def test_greedy_decoding_loops_and_the_repetition_penalty_trades_likelihood_for_variety(
    seed, claim, penalty_sweep
):
    """Greedy continuations of held-out prompts repeat most of their 4-grams; the penalty cuts
    that repetition, and scoring held-out text with it costs likelihood."""
    sweep = penalty_sweep
    rep, nll = sweep["rep"], sweep["nll"]
    claim.table(Table(
        f"greedy decoding, {NEW} tokens after {len(sweep['prompts'])} held-out prompts of "
        f"{PROMPT} tokens (seed {seed})",
        ["penalty", f"repeated {NGRAM}-grams", "held-out NLL (nats/token)", "NLL cost",
         "start of the first continuation"],
        [[p, rep[p], nll[p], nll[p] - nll[1.0], repr(sweep["text"][p][:60])] for p in PENALTIES],
        note=f"held-out text itself repeats {sweep['human']:.3f} of its {NGRAM}-grams "
             f"in {NEW}-token windows",
    ))
    claim.figure("repetition-penalty", Panels([
        LineFigure({"greedy continuations": (PENALTIES, [rep[p] for p in PENALTIES])},
                   xlabel="repetition penalty", ylabel=f"repeated {NGRAM}-grams",
                   title="repetition in greedy output", hline=(sweep["human"], "held-out text")),
        LineFigure({"held-out text": (PENALTIES, [nll[p] - nll[1.0] for p in PENALTIES])},
                   xlabel="repetition penalty", ylabel="NLL increase (nats/token)",
                   title="what the penalty costs in likelihood"),
    ], width_per_panel=4.5, height=3.6))
    changed = (sweep["everywhere"] != sweep["ids"][1.0]).double().mean().item()
    # Loops: a continuation as varied as real text would measure about the human fraction.
    claim.check(f"no penalty: repeated {NGRAM}-grams in greedy output", rep[1.0], ">", 0.3)
    claim.check(f"no penalty: repeated {NGRAM}-grams, greedy minus held-out text",
                rep[1.0] - sweep["human"], ">", 0.25)
    # A penalty without effect (or applied to every token alike) measures a ratio of 1.
    claim.check(f"penalty {CHECKED}: repeated {NGRAM}-grams / without penalty",
                rep[CHECKED] / rep[1.0], "<", 0.5)
    # Real text repeats tokens too, so penalising them must cost likelihood: a free penalty
    # would measure 0.
    claim.check(f"penalty {CHECKED}: held-out NLL minus without penalty",
                nll[CHECKED] - nll[1.0], ">", 0.02)
    # Dividing positive and multiplying negative logits of every token keeps their order: the
    # penalty acts only through the contrast between seen and unseen tokens.
    claim.check(f"penalty {CHECKED} on every token: greedy tokens changed", changed, "<", 1e-3)


# --- 4. the KV cache ---------------------------------------------------------------------------

CACHE_PROMPT, CACHE_NEW = 16, 96


COUNTED = (1, 2, 3, 4, 8, 16, 32, 64, CACHE_NEW)  # new tokens whose FLOPs are counted


class _PerCall:
    """Positions fed to every forward call of a model and the logits of its last position; with
    count=True also the matmul FLOPs of the calls in COUNTED (counting every call would cost
    more than the decoding itself)."""

    def __init__(self, model: torch.nn.Module, count: bool = False) -> None:
        self.count = count
        self.positions: list[int] = []
        self.logits: list[Tensor] = []
        self.flops: dict[int, int] = {}
        self._counter: FlopCounterMode | None = None
        self._hooks = [model.register_forward_pre_hook(self._start),
                       model.register_forward_hook(self._stop)]

    def remove(self) -> None:
        for hook in self._hooks:
            hook.remove()

    def _start(self, module, args) -> None:
        self.positions.append(args[0].shape[1])
        if self.count and len(self.positions) in COUNTED:
            self._counter = FlopCounterMode(display=False)
            self._counter.__enter__()

    def _stop(self, module, args, output) -> None:
        self.logits.append(output.logits[:, -1].detach())
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            self.flops[len(self.positions)] = self._counter.get_total_flops()
            self._counter = None


@pytest.mark.claim
def test_kv_cache_decoding_gives_the_same_tokens_and_its_cost_per_token_stops_growing(
    seed, claim, trained
):
    """decode_with_cache gives exactly greedy_decode's tokens; per new token it feeds one
    position and its FLOPs grow only by the cache reads, while recomputing grows with the
    prefix."""
    run, data = trained
    model = run.model
    prompts = data.windows("val", 4, CACHE_PROMPT, 5000 + seed)
    # In float64 the two paths differ by ~1e-15, so only an exact tie could flip an argmax: the
    # setting where "the same tokens" is exact. float32 is measured too, and only shown.
    models = {"float64": copy.deepcopy(model).double(), "float32": model}
    out, same, diff, gap = {}, {}, {}, {}
    with threads(1):
        for dtype, m in models.items():
            for name, decode in (("cache", decode_with_cache), ("no cache", greedy_decode)):
                seen = _PerCall(m)
                out[dtype, name] = decode(m, prompts, CACHE_NEW), torch.stack(seen.logits, 1)
                seen.remove()
    for dtype in models:
        (ids_c, logits_c), (ids_r, logits_r) = out[dtype, "cache"], out[dtype, "no cache"]
        same[dtype] = torch.equal(ids_c, ids_r)
        diff[dtype] = (logits_c - logits_r).abs().max().item()
        top2 = logits_r.topk(2, dim=-1).values
        gap[dtype] = (top2[..., 0] - top2[..., 1]).min().item()
    assert same["float64"], "float64: greedy tokens differ with and without the cache"
    # The fused CPU attention kernel is invisible to FlopCounterMode; the naive attention path
    # (same weights, same numbers) does its matmuls in the open, so they are counted.
    counted = MiniMindForCausalLM(model.config.replace(flash_attn=False)).eval()
    counted.load_state_dict(model.state_dict())
    work = {}
    with threads(1):
        for name, decode in (("cache", decode_with_cache), ("no cache", greedy_decode)):
            work[name] = _PerCall(counted, count=True)
            decode(counted, prompts[:1], CACHE_NEW)
            work[name].remove()
    steps = list(range(1, CACHE_NEW + 1))
    c, r = work["cache"], work["no cache"]
    claim.table(Table(
        f"greedy decoding of {CACHE_NEW} tokens after a {CACHE_PROMPT}-token prompt (seed {seed})",
        ["new token", "positions fed (cache)", "positions fed (no cache)", "FLOPs (cache)",
         "FLOPs (no cache)"],
        [[i, c.positions[i - 1], r.positions[i - 1], c.flops[i], r.flops[i]] for i in COUNTED],
        note="; ".join(
            f"{d}: tokens {'identical' if same[d] else 'DIFFERENT'}, max |logit difference| "
            f"between the paths {diff[d]:.1e}, smallest top-2 logit gap {gap[d]:.1e}"
            for d in ("float64", "float32")),
    ))
    claim.figure("kv-cache", Panels([
        LineFigure({k: (steps, w.positions) for k, w in work.items()}, xlabel="new token",
                   ylabel="positions fed to the model", title="work per step", markers=False),
        LineFigure({k: (COUNTED, [w.flops[i] for i in COUNTED]) for k, w in work.items()},
                   xlabel="new token", ylabel="matmul FLOPs", title="FLOPs per step",
                   logx=True, logy=True),
    ], width_per_panel=4.5, height=3.6))
    # Exact counts: the prompt once, then one position per step.
    assert c.positions == [CACHE_PROMPT] + [1] * (CACHE_NEW - 1), c.positions
    assert r.positions == list(range(CACHE_PROMPT, CACHE_PROMPT + CACHE_NEW)), r.positions
    L, H, D = model.config.num_hidden_layers, model.config.num_attention_heads, \
        model.config.head_dim
    read = 4 * L * H * D  # q.k and p.v over one more cached position, every head and layer
    for i in COUNTED[2:]:  # after the prompt, each step adds only the cache reads
        assert c.flops[i] - c.flops[2] == read * (i - 2), (i, c.flops[i], c.flops[2], read)
    growth = {k: w.flops[CACHE_NEW] / w.flops[2] for k, w in work.items()}
    # Why the tokens are exact: the paths differ at most by float64 rounding (different matmul
    # shapes), far below the smallest gap between the top two logits, so no argmax can flip.
    # A wrong cache (stale, or at the wrong positions) moves logits by O(0.1).
    assert gap["float64"] > diff["float64"], "float64: a top-2 gap within rounding"
    claim.check("float64: max |logit difference|, cache vs no cache", diff["float64"], "<",
                1e-9)
    # Recomputing grows at least with the positions fed (111 / 17); a cache that saved nothing
    # would grow as fast: a quotient of 1.
    claim.check("no cache: FLOPs of the last new token / of the second",
                growth["no cache"], ">", (CACHE_PROMPT + CACHE_NEW - 1) / (CACHE_PROMPT + 1))
    claim.check("FLOP growth over the decode, no cache / cache",
                growth["no cache"] / growth["cache"], ">", 4)
