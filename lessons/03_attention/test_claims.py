"""Lesson 03's claims about attention, each a measured experiment (numbers in README.md)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor, nn

from minimind.attention import (
    Attention,
    attention_weights,
    scaled_dot_product_attention,
    tiled_attention,
)
from minimind.config import ModelConfig, preset
from minimind.data import load_corpus
from minimind.lab import LineFigure, Run, Table, TrainSettings, compare, fit, loss_curves, threads
from minimind.lab.measure import largest_intermediate, peak_allocated
from minimind.model import MiniMindBlock, MiniMindForCausalLM
from minimind.norm import make_norm

MiB = 2**20


def _model(seed: int, **changes) -> MiniMindForCausalLM:
    torch.manual_seed(seed)
    return MiniMindForCausalLM(preset("tiny", **changes)).eval()


# --- 1. attention weights are distributions; the causal mask hides the future -------------------

@pytest.mark.claim
@given(
    tq=st.integers(1, 12), extra=st.integers(0, 6), d=st.sampled_from([1, 4, 32]),
    scale=st.sampled_from([0.1, 1.0, 30.0]), causal=st.booleans(), seed=st.integers(0, 2**16),
)
def test_each_row_of_attention_weights_is_a_probability_distribution(
    tq, extra, d, scale, causal, seed
):
    """Every row of softmax(q k^T / sqrt(d)) is >= 0, sums to 1, and is 0 on future keys."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(2, 3, tq, d, generator=g) * scale
    k = torch.randn(2, 3, tq + extra, d, generator=g) * scale
    w = attention_weights(q, k, causal=causal)
    assert bool((w >= 0).all()) and bool(w.isfinite().all())
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, tq), atol=1e-5, rtol=0)
    if causal:  # query i sits at position extra + i: keys after it get exactly zero weight
        future = torch.ones(tq, tq + extra, dtype=torch.bool).triu(extra + 1)
        assert bool((w[..., future] == 0).all())


@pytest.fixture(scope="module")
def tiny_models(seed: int) -> dict[str, MiniMindForCausalLM]:
    """Two untrained tiny models with the same weights, one causal and one bidirectional."""
    return {"causal": _model(seed), "bidirectional": _model(seed, causal=False)}


def _change_after(ids: Tensor, t: int, vocab: int) -> Tensor:
    changed = ids.clone()
    changed[:, t + 1:] = (ids[:, t + 1:] + 1 + torch.arange(ids.shape[1] - t - 1)) % vocab
    return changed


@pytest.mark.claim
@given(seq=st.integers(2, 24), data=st.data())
def test_causal_output_at_t_is_bit_identical_when_tokens_after_t_change(tiny_models, seq, data):
    """With the causal mask, logits at positions <= t do not change at all when tokens > t do."""
    t = data.draw(st.integers(0, seq - 2), label="t")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    model = tiny_models["causal"]
    ids = torch.randint(0, 32, (2, seq), generator=torch.Generator().manual_seed(seed))
    changed = _change_after(ids, t, 32)
    with torch.no_grad(), threads(1):
        a, b = model(ids).logits, model(changed).logits
    assert torch.equal(a[:, : t + 1], b[:, : t + 1])


@pytest.mark.claim
def test_without_the_causal_mask_earlier_outputs_do_see_later_tokens(seed, tiny_models, claim):
    """Control: without the mask the same check fails, so the causal test has teeth."""
    ids = torch.randint(0, 32, (4, 16), generator=torch.Generator().manual_seed(seed))
    t = 7
    changed = _change_after(ids, t, 32)
    rows = []
    with torch.no_grad(), threads(1):
        for name, model in tiny_models.items():
            a, b = model(ids).logits, model(changed).logits
            rows.append([name, (a[:, : t + 1] - b[:, : t + 1]).abs().max().item(),
                         (a[:, t + 1:] - b[:, t + 1:]).abs().max().item()])
    claim.table(Table(
        f"logit change when tokens after t={t} change (seed {seed})",
        ["attention", "max |change| at <= t", "max |change| at > t"], rows,
        note="tiny preset, 2 layers, untrained; 0.0 means bit-identical"))
    causal, bidirectional = rows
    assert causal[1] == 0.0  # bit-identical
    # Had the change not reached the model at all, every change would measure 0.
    claim.check("causal: max logit change at > t", causal[2], ">", 1e-4)
    claim.check("bidirectional: max logit change at <= t", bidirectional[1], ">", 1e-4)


# --- the model's fused kernel equals the naive reference -----------------------------------------

@pytest.mark.claim
def test_fused_sdpa_in_the_model_equals_the_naive_reference(seed, claim):
    """flash_attn=True (PyTorch's fused SDPA) and False (naive) agree on logits within 1e-5."""
    ids = torch.randint(0, 32, (3, 24), generator=torch.Generator().manual_seed(seed))
    rows = []
    with torch.no_grad(), threads(1):
        for name, changes in {"causal, GQA 4q/2kv": {}, "bidirectional": dict(causal=False),
                              "MHA 4q/4kv": dict(num_key_value_heads=4)}.items():
            fused = _model(seed, flash_attn=True, **changes)
            naive = _model(seed, flash_attn=False, **changes)
            rows.append([name, (fused(ids).logits - naive(ids).logits).abs().max().item()])
        # KV cache: a 16-token prefix, then chunks of 5 and 1 new tokens after it.
        fused, naive = _model(seed, flash_attn=True), _model(seed, flash_attn=False)
        diffs = []
        outs = {}
        for name, model in (("fused", fused), ("naive", naive)):
            past, chunks = None, []
            for a, b in ((0, 16), (16, 21), (21, 22), (22, 24)):
                out = model(ids[:, a:b], past_key_values=past, use_cache=True)
                past = out.past_key_values
                chunks.append(out.logits)
            outs[name] = torch.cat(chunks, dim=1)
        diffs.append((outs["fused"] - outs["naive"]).abs().max().item())
        full = fused(ids).logits
        rows.append(["KV cache, chunks 16+5+1+2", diffs[0]])
        rows.append(["KV cache vs one full pass (fused)",
                     (outs["fused"] - full).abs().max().item()])
        g = torch.Generator().manual_seed(seed)
        q, k, v = (torch.randn(2, 8, 64, 32, generator=g) for _ in range(3))
        rows.append(["functions, (2, 8, 64, 32)", (
            F.scaled_dot_product_attention(q, k, v, is_causal=True)
            - scaled_dot_product_attention(q, k, v)).abs().max().item()])
    claim.table(Table(f"fused SDPA vs naive attention, max |logit difference| (seed {seed})",
                           ["case", "max abs diff"], rows, note="float32, tiny preset"))
    for name, diff in rows:
        claim.check(f"{name}: max abs diff", diff, "<", 1e-5)


# --- 2. why 1/sqrt(d) ----------------------------------------------------------------------------

def _entropy(logits: Tensor) -> Tensor:
    p = logits.softmax(-1)
    return -(p * p.clamp_min(1e-30).log()).sum(-1)


@pytest.mark.claim
def test_unscaled_scores_grow_with_d_and_collapse_softmax_while_scaled_stay_flat(seed, claim):
    """var(q.k) = d for unit-variance q, k; unscaled softmax entropy falls with d, scaled stays."""
    dims, n_keys = [16, 64, 256, 1024], 128
    g = torch.Generator().manual_seed(seed)
    rows = []
    for d in dims:
        q = torch.randn(256, d, generator=g)
        k = torch.randn(n_keys, d, generator=g)
        s = q @ k.T  # (256 queries, 128 keys)
        rows.append([d, s.var().item() / d, _entropy(s).mean().item(),
                     _entropy(s / math.sqrt(d)).mean().item()])
    claim.table(Table(
        f"q.k for unit-variance q, k over {n_keys} keys (seed {seed})",
        ["d", "var(q.k) / d", "entropy unscaled", "entropy scaled"], rows,
        note=f"uniform = log({n_keys}) = {math.log(n_keys):.3f}; one-hot = 0"))
    claim.figure("scaling-entropy", LineFigure(
        {"softmax(q.k)": (dims, [r[2] for r in rows]),
         "softmax(q.k / sqrt(d))": (dims, [r[3] for r in rows])},
        xlabel="head dim d", ylabel="attention entropy (nats)", logx=True,
        hline=(math.log(n_keys), f"uniform, log {n_keys}"),
        title=f"Scaling keeps attention soft (seed {seed})"))
    ratios = [r[1] for r in rows]
    claim.check("smallest var(q.k) / d over d", min(ratios), ">", 0.85)
    claim.check("largest var(q.k) / d over d", max(ratios), "<", 1.15)
    unscaled = [r[2] for r in rows]
    scaled = [r[3] for r in rows]
    # Entropy falls with d: each step from d to 4d lowers it; a flat curve measures ~0.
    claim.check("smallest fall of unscaled entropy from d to 4d",
                min(a - b for a, b in zip(unscaled, unscaled[1:])), ">", 0)
    claim.check(f"unscaled entropy at d={dims[-1]}", unscaled[-1], "<", 0.1 * math.log(n_keys))
    claim.check("scaled entropy: max minus min over d", max(scaled) - min(scaled), "<", 0.1)
    claim.check("scaled entropy: smallest over d", min(scaled), ">", math.log(n_keys) - 0.7)


# --- 3. several heads for several lookups --------------------------------------------------------

TAG_VOCAB, TAG_SEQ = 8, 8  # token values, sequence length
TAG_STEPS, TAG_LR, TAG_BATCH = 200, 3e-3, 128


def _tagged_pair_batch(g: torch.Generator, batch: int) -> tuple[tuple[Tensor, Tensor], Tensor]:
    """Random tokens; two positions tagged A and B; the answer is (x_A - x_B) mod V.

    The answer needs two lookups at once (find A, find B) and is not symmetric in them.
    """
    x = torch.randint(0, TAG_VOCAB, (batch, TAG_SEQ), generator=g)  # (B, T)
    pos = torch.rand(batch, TAG_SEQ, generator=g).argsort(-1)[:, :2]  # two distinct positions
    rows = torch.arange(batch)
    tags = torch.zeros(batch, TAG_SEQ, dtype=torch.long)  # 0 none, 1 A, 2 B
    tags[rows, pos[:, 0]], tags[rows, pos[:, 1]] = 1, 2
    y = (x[rows, pos[:, 0]] - x[rows, pos[:, 1]]) % TAG_VOCAB
    return (x, tags), y


class _TaggedLookup(nn.Module):
    """Token + tag embeddings, one MiniMind block, and a classifier on the last position."""

    def __init__(self, heads: int, d: int = 64):
        super().__init__()
        cfg = ModelConfig(vocab_size=TAG_VOCAB, hidden_size=d, num_hidden_layers=1,
                          num_attention_heads=heads, num_key_value_heads=heads,
                          position="none", max_position_embeddings=TAG_SEQ)
        self.tok, self.tag = nn.Embedding(TAG_VOCAB, d), nn.Embedding(3, d)
        self.block, self.norm = MiniMindBlock(0, cfg), make_norm(cfg)
        self.head = nn.Linear(d, TAG_VOCAB)

    def forward(self, inputs: tuple[Tensor, Tensor]) -> Tensor:
        x, tags = inputs
        h, _ = self.block(self.tok(x) + self.tag(tags), None, None)  # (B, T, d)
        return self.head(self.norm(h[:, -1]))  # (B, V)


def _train_tagged(heads: int, seed: int, steps: int = TAG_STEPS, lr: float = TAG_LR,
                  batch: int = TAG_BATCH) -> tuple[Run, int]:
    with threads(1):
        torch.manual_seed(seed)
        model = _TaggedLookup(heads)
    g = torch.Generator().manual_seed(seed)

    def accuracy(m: nn.Module) -> float:
        x, y = _tagged_pair_batch(torch.Generator().manual_seed(10_000 + seed), 2000)
        return (m(x).argmax(-1) == y).float().mean().item()

    run = fit(model, lambda step: _tagged_pair_batch(g, batch),
              lambda m, x, y: F.cross_entropy(m(x), y),
              TrainSettings(steps=steps, lr=lr), name=f"{heads} head(s)", evaluate=accuracy)
    return run, sum(p.numel() for p in model.parameters())


def _plateau_exit(losses: list[float], level: float, window: int = 10) -> int | None:
    """First step at which the mean training loss over `window` steps falls below `level`."""
    for i in range(window, len(losses) + 1):
        if sum(losses[i - window:i]) / window < level:
            return i
    return None


@pytest.mark.claim
@pytest.mark.slow
def test_four_heads_leave_the_plateau_of_a_two_lookup_task_sooner_than_one_head(seed, claim):
    """Equal parameters and steps: 4 heads solve (x_A - x_B) mod 8 (>= 0.9), well ahead of 1."""
    runs = {h: _train_tagged(h, seed) for h in (1, 4)}
    chance_loss = math.log(TAG_VOCAB)
    exits = {h: _plateau_exit(r.losses, chance_loss / 2) for h, (r, _) in runs.items()}
    rows = [[f"{h} x {64 // h}", n, r.val_loss, 1 / TAG_VOCAB, exits[h], r.final_loss]
            for h, (r, n) in runs.items()]
    claim.table(Table(
        f"(x_A - x_B) mod {TAG_VOCAB}, {TAG_STEPS} steps, 1 layer, d=64 (seed {seed})",
        ["heads x head dim", "params", "accuracy", "chance", "loss < chance/2 at step",
         "final loss"], rows,
        note=f"accuracy on 2000 held-out sequences; chance loss ln {TAG_VOCAB} = "
             f"{chance_loss:.2f}; '-' = not within {TAG_STEPS} steps"))
    claim.figure("heads-tagged-task", loss_curves(
        {r.name: r for r, _ in runs.values()}, f"1 head vs 4 heads, same size (seed {seed})"))
    (one, n1), (four, n4) = runs[1], runs[4]
    assert n1 == n4
    claim.check("4 heads: accuracy", four.val_loss, ">", 0.9)
    claim.check("4 heads minus 1 head: accuracy", four.val_loss - one.val_loss, ">", 0.15)
    # A run that never leaves the plateau counts as leaving it one step after the last.
    exit1, exit4 = (TAG_STEPS + 1 if exits[h] is None else exits[h] for h in (1, 4))
    claim.check("4 heads: step where loss < chance/2", exit4, "<", TAG_STEPS + 1)
    claim.check("1 head minus 4 heads: step where loss < chance/2", exit1 - exit4, ">", 0)


# --- 4. grouped-query attention ------------------------------------------------------------------

def _tie(weight: Tensor, n_rep: int, head_dim: int = 8) -> Tensor:
    """A (kv_heads * head_dim, C) projection as (kv_heads * n_rep * head_dim, C): rows copied."""
    KV, C = weight.shape[0] // head_dim, weight.shape[1]
    w = weight.view(KV, 1, head_dim, C).expand(KV, n_rep, head_dim, C)  # head h <- kv h // n_rep
    return w.reshape(KV * n_rep * head_dim, C)


@pytest.mark.claim
def test_grouped_query_attention_with_kv_heads_equal_to_heads_is_multi_head_attention(seed):
    """KV heads = heads is nn.MultiheadAttention; KV heads = heads/4 is MHA with K/V heads tied."""
    cfg = ModelConfig(vocab_size=32, hidden_size=64, num_attention_heads=8,
                      num_key_value_heads=8, position="none")
    torch.manual_seed(seed)
    gqa_full = Attention(cfg).eval()
    mha = nn.MultiheadAttention(64, 8, bias=False, batch_first=True).eval()
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([gqa_full.q_proj.weight, gqa_full.k_proj.weight,
                                            gqa_full.v_proj.weight]))
        mha.out_proj.weight.copy_(gqa_full.o_proj.weight)
    x = torch.randn(2, 10, 64, generator=torch.Generator().manual_seed(seed))
    future = torch.ones(10, 10, dtype=torch.bool).triu(1)  # nn.MultiheadAttention: True = blocked
    with torch.no_grad(), threads(1):
        expected, _ = mha(x, x, x, attn_mask=future, need_weights=False)
        torch.testing.assert_close(gqa_full(x, None, None)[0], expected, atol=1e-6, rtol=1e-5)
        # 2 kv heads for 8 query heads == MHA whose K/V heads 0-3 are copies, 4-7 copies.
        gqa = Attention(cfg.replace(num_key_value_heads=2)).eval()
        tied = Attention(cfg).eval()
        tied.load_state_dict({**gqa.state_dict(), "k_proj.weight": _tie(gqa.k_proj.weight, 4),
                              "v_proj.weight": _tie(gqa.v_proj.weight, 4)})
        torch.testing.assert_close(gqa(x, None, None)[0], tied(x, None, None)[0],
                                   atol=1e-6, rtol=1e-5)


def _cache_bytes(model: MiniMindForCausalLM, seq: int) -> int:
    ids = torch.zeros(1, seq, dtype=torch.long)
    with torch.no_grad():
        past = model(ids, use_cache=True).past_key_values
    return sum(t.numel() * t.element_size() for kv in past for t in kv)


GQA_STEPS = 200


@pytest.mark.claim
@pytest.mark.slow
def test_a_quarter_of_the_kv_heads_cuts_the_cache_4x(seed, claim):
    """heads/4 KV heads: the KV cache is exactly 4x smaller; the change in Shakespeare val loss
    is shown, not asserted (over seeds 0..19 it ranged -5%..+7%, both signs)."""
    corpus = load_corpus()
    base = preset("char-small", vocab_size=corpus.vocab_size, num_attention_heads=8)  # d=64
    settings = TrainSettings(steps=GQA_STEPS, lr=1e-2, batch_size=8, seq_len=64)
    runs = compare(base, {"MHA 8 kv heads": dict(num_key_value_heads=8),
                          "GQA 2 kv heads": dict(num_key_value_heads=2)},
                   settings, seed=seed, corpus=corpus)
    mha, gqa = runs["MHA 8 kv heads"], runs["GQA 2 kv heads"]
    cache = {name: _cache_bytes(r.model, 256) for name, r in runs.runs.items()}
    params = {name: sum(p.numel() for p in r.model.parameters()) for name, r in runs.runs.items()}
    gap = gqa.val_loss / mha.val_loss - 1
    claim.table(Table(
        f"GQA vs MHA, char Shakespeare, d=64, 8 heads, 2 layers, {GQA_STEPS} steps (seed {seed})",
        ["variant", "params", "KV cache @256 tokens (KiB)", "val loss"],
        [[n, params[n], cache[n] / 1024, r.val_loss] for n, r in runs.runs.items()],
        note=f"GQA val loss vs MHA: {gap:+.2%}"))
    claim.figure("gqa-loss", loss_curves(runs.runs, f"GQA vs MHA (seed {seed})"))
    assert cache["MHA 8 kv heads"] == 4 * cache["GQA 2 kv heads"]
    # Not asserted: "within 5% of MHA" failed 5 of 40 runs (seeds 0..19, plain and perturbed);
    # the gap takes both signs, so at this scale it is seed noise, not a cost of GQA.


# --- 5. tiled attention: same numbers, O(seq x block) memory -------------------------------------

@pytest.mark.claim
@given(tq=st.integers(1, 40), extra=st.integers(0, 8), block=st.integers(1, 48),
       causal=st.booleans(), seed=st.integers(0, 2**16))
def test_tiled_attention_equals_naive_within_1e5_for_any_block_size(
    tq, extra, block, causal, seed
):
    """Tiled (online-softmax) attention equals naive attention within 1e-5 in float32."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(1, 2, tq, 16, generator=g) * 2
    k = torch.randn(1, 2, tq + extra, 16, generator=g) * 2
    v = torch.randn(1, 2, tq + extra, 16, generator=g)
    exact = scaled_dot_product_attention(q.double(), k.double(), v.double(), causal)
    tiled = tiled_attention(q, k, v, block, causal)
    assert (tiled.double() - exact).abs().max().item() < 1e-5
    assert (tiled - scaled_dot_product_attention(q, k, v, causal)).abs().max().item() < 1e-5


@pytest.mark.claim
def test_tiled_attention_memory_grows_with_seq_times_block_not_seq_squared(seed, claim):
    """Doubling seq quadruples naive attention's peak memory but only doubles tiled's."""
    B, H, D, block = 1, 4, 32, 64
    seqs = [256, 512, 1024]
    rows = []
    g = torch.Generator().manual_seed(seed)
    with threads(1):
        for T in seqs:
            q, k, v = (torch.randn(B, H, T, D, generator=g) for _ in range(3))
            kernels = {"naive": lambda: scaled_dot_product_attention(q, k, v),
                       "tiled": lambda: tiled_attention(q, k, v, block),
                       "fused SDPA": lambda: F.scaled_dot_product_attention(q, k, v,
                                                                            is_causal=True)}
            for name, fn in kernels.items():
                largest, _ = largest_intermediate(fn)
                rows.append([name, T, largest / MiB, peak_allocated(fn) / MiB])
    claim.table(Table(
        f"attention memory, batch {B}, {H} heads, head dim {D}, tiles of {block} keys, float32",
        ["kernel", "seq", "largest tensor (MiB)", "peak allocated (MiB)"], rows,
        note=f"one score matrix = {B * H} x seq^2 x 4 bytes; output = {B * H} x seq x {D} x 4"))
    by = {(r[0], r[1]): r for r in rows}
    claim.figure("attention-memory", LineFigure(
        {name: (seqs, [by[name, T][3] for T in seqs]) for name in ("naive", "tiled", "fused SDPA")},
        xlabel="sequence length", ylabel="peak allocated (MiB)", logx=True, logy=True,
        title=f"Attention memory: seq^2 vs seq x block (seed {seed})"))
    for T in seqs:  # tensor sizes are exact: they do not depend on the data
        assert by["naive", T][2] * MiB >= B * H * T * T * 4  # the full score matrix exists
        assert by["tiled", T][2] * MiB <= B * H * T * max(block, D) * 4  # never more than a tile
    # Doubling seq: seq^2 memory grows 4x, seq x block memory 2x.
    growth = {name: [by[name, big][3] / by[name, small][3] for small, big in zip(seqs, seqs[1:])]
              for name in ("naive", "tiled")}
    claim.check("naive: smallest peak-memory growth when seq doubles", min(growth["naive"]), ">",
                3.5)
    claim.check("tiled: largest peak-memory growth when seq doubles", max(growth["tiled"]), "<",
                2.5)
