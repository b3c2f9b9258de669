"""Lesson 02 claims: what rotary position embedding does, measured on the reference code."""
import functools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor, nn

from minimind.config import ModelConfig
from minimind.lab import Table, TrainSettings, fit, pyplot, save_figure, threads
from minimind.model import MiniMindForCausalLM, MiniMindModel
from minimind.rope import (
    apply_rope, rope_inv_freq, rope_tables, yarn_inv_freq,
)

D, THETA = 64, 1e6  # MiniMind's head_dim (512 / 8 heads) and RoPE base
MAX_LEN = 32768  # MiniMind's max_position_embeddings


@functools.lru_cache(maxsize=None)
def _tables(theta: float, max_len: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    return rope_tables(rope_inv_freq(D, theta), max_len, dtype)


def _at(x: Tensor, positions: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate vectors x (N, D) to their positions (N,): one table row per vector."""
    N = x.shape[0]
    return apply_rope(x.view(1, N, 1, -1), cos[positions], sin[positions]).view(N, -1)


# --- claim 1: the score depends only on m - n --------------------------------------------------

positions = st.integers(0, 4095)


@pytest.mark.claim
@given(m=positions, n=positions, shift=positions, vectors=st.integers(0, 2**31 - 1))
def test_rope_score_depends_only_on_relative_position(seed, m, n, shift, vectors):
    """<R_m q, R_n k> = <R_(m+s) q, R_(n+s) k>, to 1e-12 of |q||k| in float64, 4e-6 in float32."""
    g = torch.Generator().manual_seed(seed * 7919 + vectors)
    q, k = torch.randn(2, 1, D, generator=g, dtype=torch.float64)
    scale = (q.norm() * k.norm()).item()
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 4e-6)):
        cos, sin = _tables(THETA, 8192, dtype)
        qd, kd = q.to(dtype), k.to(dtype)
        before = (_at(qd, torch.tensor([m]), cos, sin)
                  * _at(kd, torch.tensor([n]), cos, sin)).sum()
        after = (_at(qd, torch.tensor([m + shift]), cos, sin)
                 * _at(kd, torch.tensor([n + shift]), cos, sin)).sum()
        err = abs((before - after).item()) / scale
        assert err <= tol, f"{dtype}: score moved by {err:.2e} of |q||k| under shift {shift}"


def _rotate_with_angles_in(x: Tensor, positions: Tensor, angle_dtype: torch.dtype,
                           table_dtype: torch.dtype) -> Tensor:
    """Rotate x (N, D) to `positions`, computing position * frequency in angle_dtype.

    angle_dtype float32 is how MiniMind's precompute_freqs_cis builds its tables
    (torch.outer(t, freqs).float() with float32 freqs); minimind.rope uses float64.
    """
    inv_freq = rope_inv_freq(D, THETA).to(angle_dtype)
    angles = positions.to(angle_dtype)[:, None] * inv_freq  # (N, D/2)
    angles = torch.cat([angles, angles], dim=-1)  # (N, D)
    return _at(x.to(table_dtype), torch.arange(len(positions)),
               angles.cos().to(table_dtype), angles.sin().to(table_dtype))


@pytest.mark.claim
def test_float32_angles_drift_at_large_positions_while_float64_built_tables_stay_exact(
    seed, report
):
    """Scores at distance 5 match position 0's (to 1e-10 in float64, 4e-6 with float64-built
    float32 tables) at every offset up to 1e6; angles computed in float32 drift, more with every
    decade of offset, to over 5e-4 of |q||k| at offset 1e6."""
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, 256, D, generator=g, dtype=torch.float64)
    scale = q.norm(dim=-1) * k.norm(dim=-1)
    near = torch.zeros(256, dtype=torch.long)

    def score_error(offset: int, angle_dtype, table_dtype) -> float:
        far = near + offset
        exact = (_rotate_with_angles_in(q, near + 5, torch.float64, torch.float64)
                 * _rotate_with_angles_in(k, near, torch.float64, torch.float64)).sum(-1)
        got = (_rotate_with_angles_in(q, far + 5, angle_dtype, table_dtype)
               * _rotate_with_angles_in(k, far, angle_dtype, table_dtype)).sum(-1)
        return ((got.double() - exact) / scale).abs().max().item()

    def angle_error(offset: int) -> float:  # float32 position * frequency against float64
        inv_freq = rope_inv_freq(D, THETA)
        f32 = torch.tensor(float(offset)) * inv_freq.float()
        return (f32.double() - offset * inv_freq).abs().max().item()

    offsets = [0, 10**3, 10**4, 10**5, 10**6]
    variants = {"float64 tables": (torch.float64, torch.float64),
                "float32 tables, float64 angles": (torch.float64, torch.float32),
                "float32 angles (MiniMind)": (torch.float32, torch.float32)}
    errs = {name: [score_error(o, *dt) for o in offsets] for name, dt in variants.items()}
    report.table(Table(
        f"max |score(o+5, o) - score(5, 0)| / (|q||k|) over 256 vector pairs, D={D}, "
        f"theta 1e6 (seed {seed})",
        ["offset o", *variants, "float32 angle error (rad)"],
        [[o, *(errs[v][i] for v in variants), angle_error(o)] for i, o in enumerate(offsets)]))
    assert max(errs["float64 tables"]) < 1e-10
    assert max(errs["float32 tables, float64 angles"]) < 4e-6
    drift = errs["float32 angles (MiniMind)"]
    assert all(a < b for a, b in zip(drift[1:], drift[2:])), f"drift should grow: {drift}"
    assert drift[4] > 5e-4, f"float32 angles did not drift: {drift}"
    assert drift[4] > 1000 * max(errs["float32 tables, float64 angles"])


# --- claim 2: a rotation keeps norms -----------------------------------------------------------

@pytest.mark.claim
def test_rope_preserves_vector_norms_at_every_position(seed, report):
    """|R_p x| = |x| at all 32768 positions: to 1e-13 in float64 and 1e-6 in float32."""
    x = torch.randn(MAX_LEN, D, generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64) * 3
    every = torch.arange(MAX_LEN)
    rows = []
    for dtype, tol in ((torch.float64, 1e-13), (torch.float32, 1e-6)):
        cos, sin = _tables(THETA, MAX_LEN, dtype)
        y = _at(x.to(dtype), every, cos, sin)
        change = ((y.double().norm(dim=-1) - x.to(dtype).double().norm(dim=-1)).abs()
                  / x.norm(dim=-1))
        rows.append([str(dtype).removeprefix("torch."), change.max().item(), change.mean().item(),
                     tol])
    report.table(Table(f"relative change of |x| after RoPE, positions 0..{MAX_LEN - 1}, D={D} "
                       f"(seed {seed})", ["dtype", "max", "mean", "asserted below"], rows))
    for name, worst, _, tol in rows:
        assert worst < tol, f"{name}: RoPE changed a norm by {worst:.2e}"


# --- claim 3: one frequency aliases, the spectrum does not -------------------------------------

def _rotation_distance(inv_freq: Tensor, deltas: Tensor) -> Tensor:
    """|R_p - R_(p+delta)|_F / sqrt(2) for each delta: sqrt(sum_i 2 - 2 cos(w_i delta))."""
    return (2 - 2 * torch.cos(deltas[:, None] * inv_freq[None, :])).sum(-1).sqrt()


@pytest.mark.claim
def test_single_frequency_positions_collide_but_the_full_spectrum_keeps_them_apart(seed, report):
    """With one frequency two of 32768 positions always land within 2 sin(pi/32768) of each other
    (Dirichlet); with MiniMind's 32 frequencies every two positions stay >= 1 apart."""
    deltas = torch.arange(1, MAX_LEN, dtype=torch.float64)  # every distance between 2 positions
    full = rope_inv_freq(D, THETA)
    log_w = torch.empty(1, dtype=torch.float64).uniform_(
        math.log(1e-3), math.log(3.0), generator=torch.Generator().manual_seed(seed))
    variants = {
        "fastest pair alone (w=1)": full[:1],
        "slowest pair alone": full[-1:],
        f"one random pair (w={log_w.exp().item():.4f}, seed {seed})": log_w.exp(),
        "all 32 pairs, theta 1e4": rope_inv_freq(D, 1e4),
        "all 32 pairs, theta 1e6 (MiniMind)": full,
    }
    curves, rows = {}, []
    for name, inv_freq in variants.items():
        dist = _rotation_distance(inv_freq, deltas)
        curves[name] = dist
        worst = int(dist.argmin())
        rows.append([name, dist.min().item(), int(deltas[worst]), dist[0].item()])
    bound = 2 * math.sin(math.pi / MAX_LEN)
    report.table(Table(
        f"closest two of positions 0..{MAX_LEN - 1}: min over delta of |R_p - R_(p+delta)|",
        ["frequencies", "min distance", "at delta", "neighbours (delta 1)"], rows,
        note=f"Dirichlet bound for any single frequency: 2 sin(pi/{MAX_LEN}) = {bound:.2e}"))

    def draw(path):
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, dist in curves.items():
            if "random" not in name:
                ax.loglog(deltas, dist.clamp_min(1e-7), label=name, lw=0.8)
        ax.set_xlabel("distance between positions")
        ax.set_ylabel("|R_p - R_(p+delta)| (0 = same position)")
        ax.legend(fontsize=7)
        save_figure(fig, path)

    report.figure("02-position-collisions", draw)
    for row in rows[:3]:
        assert row[1] <= bound, f"{row[0]}: no collision found, {row[1]:.2e} > {bound:.2e}"
    for row in rows[3:]:
        assert row[1] >= 1.0 and row[2] == 1, f"{row[0]}: positions come too close: {row}"


# --- claim 4: long-range decay -----------------------------------------------------------------

EDGES = [2**k for k in range(16)]  # distance bins [1,2), [2,4), ..., [16384, 32768)


def _binned(curve: Tensor) -> list[float]:
    return [curve[a:b].mean().item() for a, b in zip(EDGES[:-1], EDGES[1:])]


def _roformer_bound(theta: float) -> Tensor:
    """(1/(D/2)) sum_j |S_j(delta)|, S_j = sum_(i<j) exp(i w_i delta), for delta = 0..MAX_LEN-1.

    RoFormer (section 3.4.3): |score| <= max_i |h_(i+1) - h_i| * sum_j |S_j|, so this average
    of partial sums is the relative upper bound of the score at distance delta.
    """
    delta = torch.arange(MAX_LEN, dtype=torch.float64)
    angles = delta[:, None] * rope_inv_freq(D, theta)  # (MAX_LEN, D/2)
    return torch.polar(torch.ones_like(angles), angles).cumsum(-1).abs().mean(-1)


def _self_scores(theta: float, seed: int) -> tuple[Tensor, Tensor]:
    """q . R_delta q / |q|^2 for 256 random q, 32 log-spaced distances per bin: (mean, deltas)."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(256, D, generator=g)
    deltas = torch.cat([torch.logspace(math.log10(a), math.log10(b - 1), 32).round().long()
                        for a, b in zip(EDGES[:-1], EDGES[1:])])
    cos, sin = _tables(theta, MAX_LEN, torch.float32)
    n = len(deltas)
    rotated = apply_rope(q[:, None, None, :].expand(256, n, 1, D), cos[deltas], sin[deltas])
    scores = (rotated[:, :, 0] * q[:, None, :]).sum(-1) / q.pow(2).sum(-1, keepdim=True)
    return scores.mean(0), deltas


@pytest.mark.claim
def test_rope_score_bound_decays_with_distance_and_slower_for_larger_theta(seed, report):
    """RoFormer's relative upper bound falls in every distance bin (theta 1e4 until it flattens
    near 3.4 past 2048; theta 1e6 to 32768) and is larger for theta 1e6 from distance 2 on; random
    vectors' scores with themselves decay the same way."""
    bounds = {theta: _binned(_roformer_bound(theta)) for theta in (1e4, 1e6)}
    selfs = {theta: _self_scores(theta, seed)[0].view(len(EDGES) - 1, 32).mean(-1).tolist()
             for theta in (1e4, 1e6)}
    rows = [[f"[{a}, {b})", bounds[1e4][i], bounds[1e6][i], selfs[1e4][i], selfs[1e6][i]]
            for i, (a, b) in enumerate(zip(EDGES[:-1], EDGES[1:]))]
    report.table(Table(
        f"RoFormer bound (1/(D/2)) sum |S_j| and mean q.R q/|q|^2 (256 random q), D={D} "
        f"(seed {seed})",
        ["distance", "bound 1e4", "bound 1e6", "q.Rq 1e4", "q.Rq 1e6"], rows))

    def draw(path):
        plt = pyplot()
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
        delta = torch.arange(1, MAX_LEN)
        centres = [math.sqrt(a * b) for a, b in zip(EDGES[:-1], EDGES[1:])]
        for theta in (1e4, 1e6):
            line, = a1.semilogx(delta, _roformer_bound(theta)[1:], lw=0.3, alpha=0.6)
            a1.semilogx(centres, bounds[theta], "o-", color=line.get_color(),
                        label=f"theta {theta:g}, mean per bin")
            mean, deltas = _self_scores(theta, seed)
            a2.semilogx(deltas, mean, ".", ms=2, label=f"theta {theta:g}")
        a1.set_xlabel("relative distance")
        a1.set_ylabel("relative upper bound")
        a2.set_xlabel("relative distance")
        a2.set_ylabel("mean q . R q / |q|^2")
        a1.legend()
        a2.legend()
        save_figure(fig, path)

    report.figure("02-long-range-decay", draw)
    low, high = bounds[1e4], bounds[1e6]
    flat_from = EDGES.index(2048)
    assert all(a > b for a, b in zip(low[:flat_from + 1], low[1:flat_from + 1])), low
    assert max(low[flat_from:]) / min(low[flat_from:]) < 1.05 and 3.2 < low[-1] < 3.6, low
    assert all(a > b for a, b in zip(high, high[1:])), high
    assert all(h > lo for h, lo in zip(high[1:], low[1:])), (high, low)
    assert selfs[1e4][0] > 0.9 and abs(selfs[1e4][-1]) < 0.1, selfs[1e4]
    assert selfs[1e6][-1] > selfs[1e4][-1] + 0.1, (selfs[1e6], selfs[1e4])


# --- half-split vs interleaved -----------------------------------------------------------------

def _apply_rope_interleaved(x: Tensor, inv_freq: Tensor) -> Tensor:
    """RoFormer's layout: dimensions (2i, 2i+1) form pair i. x is (B, T, H, D)."""
    B, T, H, D_ = x.shape
    angles = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq).to(x.dtype)  # (T, D/2)
    cos, sin = angles.cos()[:, None, :], angles.sin()[:, None, :]  # (T, 1, D/2)
    even, odd = x[..., 0::2], x[..., 1::2]  # (B, T, H, D/2) each
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], -1).view(B, T, H, D_)


@pytest.mark.claim
def test_half_split_and_interleaved_rope_are_one_rotation_up_to_a_permutation(seed, report):
    """Permuting dimensions (evens first, then odds) turns RoFormer's interleaved RoPE into
    MiniMind's half-split RoPE exactly, so attention scores agree to float64 precision."""
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, 2, 50, 4, D, generator=g, dtype=torch.float64)
    perm = torch.cat([torch.arange(0, D, 2), torch.arange(1, D, 2)])  # interleaved -> half-split
    cos, sin = _tables(THETA, 50, torch.float64)
    half = apply_rope(q[..., perm], cos, sin)
    inter = _apply_rope_interleaved(q, rope_inv_freq(D, THETA))
    rotation_gap = (half - inter[..., perm]).abs().max().item()
    scores_half = torch.einsum("bthd,bshd->bhts", half, apply_rope(k[..., perm], cos, sin))
    scores_inter = torch.einsum("bthd,bshd->bhts", inter,
                                _apply_rope_interleaved(k, rope_inv_freq(D, THETA)))
    score_gap = (scores_half - scores_inter).abs().max().item()
    unpermuted_gap = (apply_rope(q, cos, sin) - inter).abs().max().item()
    report.table(Table(f"half-split vs interleaved RoPE, 50 positions, D={D} (seed {seed})",
                       ["comparison", "max abs difference"],
                       [["half(P x) vs P interleaved(x)", rotation_gap],
                        ["scores, both layouts", score_gap],
                        ["half(x) vs interleaved(x), no permutation", unpermuted_gap]]))
    assert rotation_gap < 1e-12 and score_gap < 1e-10
    assert unpermuted_gap > 0.1, "without the permutation the layouts must differ"


# --- claim 5: no positions, no order -----------------------------------------------------------

SORT_V, SORT_T = 16, 12  # tokens 0..15, sequences of 12


def _sort_config(**changes) -> ModelConfig:
    base = dict(vocab_size=SORT_V, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                num_key_value_heads=2, max_position_embeddings=SORT_T, causal=False)
    return ModelConfig(**{**base, **changes})


class SortedReadout(nn.Module):
    """MiniMind's decoder body, mean-pooled over positions, then a 2-way linear readout."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.body = MiniMindModel(config)
        self.head = nn.Linear(config.hidden_size, 2)

    def forward(self, ids: Tensor) -> Tensor:
        h, _, _ = self.body(ids)  # (B, T, C)
        return self.head(h.mean(1))  # (B, 2)


def _sorted_batch(g: torch.Generator, B: int) -> tuple[Tensor, Tensor]:
    """Label 1: the tokens in ascending order. Label 0: the same multiset shuffled."""
    x = torch.randint(0, SORT_V, (B, SORT_T), generator=g)
    ordered = x.sort(-1).values
    shuffled = x.gather(-1, torch.rand(B, SORT_T, generator=g).argsort(-1))
    pick = torch.randint(0, 2, (B,), generator=g).bool()
    seq = torch.where(pick[:, None], ordered, shuffled)
    return seq, (seq == ordered).all(-1).long()  # a shuffle can come out sorted


def _paired_eval_set(seed: int, n: int = 1000) -> tuple[Tensor, Tensor]:
    """Each multiset once sorted and once shuffled (never sorted): chance is exactly 1/2 here."""
    g = torch.Generator().manual_seed(10_000 + seed)
    x = torch.randint(0, SORT_V, (n, SORT_T), generator=g)
    ordered = x.sort(-1).values
    shuffled = x.gather(-1, torch.rand(n, SORT_T, generator=g).argsort(-1))
    keep = ~(shuffled == ordered).all(-1)
    seq = torch.cat([ordered[keep], shuffled[keep]])
    return seq, torch.cat([torch.ones(int(keep.sum())), torch.zeros(int(keep.sum()))]).long()


@pytest.mark.claim
def test_non_causal_attention_without_positions_is_permutation_equivariant(seed, report):
    """Shuffling the input of a non-causal model without position encoding shuffles its output
    the same way (to 1e-5); with RoPE, or with a causal mask, it does not."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, SORT_V, (8, SORT_T), generator=g)
    perm = torch.randperm(SORT_T, generator=g)
    rows = []
    for name, changes in {"no position, non-causal": dict(position="none"),
                          "RoPE, non-causal": dict(position="rope"),
                          "no position, causal": dict(position="none", causal=True)}.items():
        torch.manual_seed(seed)
        body = MiniMindModel(_sort_config(num_hidden_layers=2, **changes)).eval()
        with torch.no_grad(), threads(1):
            out = body(ids)[0]
            out_of_shuffled = body(ids[:, perm])[0]
        gap = (out_of_shuffled - out[:, perm]).abs().max().item()
        rows.append([name, gap, out.abs().mean().item()])
    report.table(Table(f"max |f(P x) - P f(x)|, 2 layers, untrained (seed {seed})",
                       ["model", "max gap", "mean |f(x)|"], rows))
    assert rows[0][1] < 1e-5, rows[0]
    assert rows[1][1] > 1e-2 and rows[2][1] > 1e-2, rows


@pytest.mark.claim
def test_rope_lets_attention_learn_order_that_a_position_free_model_cannot(seed, report):
    """On "are these 12 tokens sorted?" (negatives are shuffles of the same tokens) a non-causal
    model without position encoding scores exactly chance on paired data, while the same model
    with RoPE (or learned positions, or a causal mask) learns it to >= 90%."""
    settings = TrainSettings(steps=200, lr=1e-2, batch_size=32)
    variants = {"no position, non-causal": dict(position="none"),
                "RoPE, non-causal": dict(position="rope"),
                "learned positions, non-causal": dict(position="learned"),
                "no position, causal mask": dict(position="none", causal=True)}
    x_eval, y_eval = _paired_eval_set(seed)
    rows, acc = [], {}
    for name, changes in variants.items():
        with threads(1):
            torch.manual_seed(seed)
            model = SortedReadout(_sort_config(**changes))
        g = torch.Generator().manual_seed(seed)
        run = fit(model, lambda step: _sorted_batch(g, settings.batch_size),
                  lambda m, x, y: F.cross_entropy(m(x), y), settings, name)
        with torch.no_grad(), threads(1):
            acc[name] = (model(x_eval).argmax(-1) == y_eval).float().mean().item()
        rows.append([name, run.final_loss, acc[name], run.cpu_seconds])
    report.table(Table(
        f"is the sequence sorted? 1 layer, d=32, {settings.steps} steps, accuracy on "
        f"{len(y_eval)} paired sequences (seed {seed})",
        ["model", "final train loss", "accuracy", "cpu s"], rows))
    assert abs(acc["no position, non-causal"] - 0.5) < 0.01, acc
    for name in list(variants)[1:]:
        assert acc[name] >= 0.9, f"{name}: {acc[name]:.3f}"


# --- claim 6: length extrapolation -------------------------------------------------------------

COPY_V, COPY_L, LAG, EVAL_LEN = 32, 64, 4, 256  # predict the token 4 back; train at 64, run to 256
BINS = [(0, 64), (64, 128), (128, 256)]  # within L, L..2L, 2L..4L


def _copy_config(**changes) -> ModelConfig:
    base = dict(vocab_size=COPY_V, hidden_size=64, num_hidden_layers=1, num_attention_heads=4,
                num_key_value_heads=4, max_position_embeddings=COPY_L)
    return ModelConfig(**{**base, **changes})


def _copy_batch(g: torch.Generator, B: int, T: int) -> tuple[Tensor, Tensor]:
    x = torch.randint(0, COPY_V, (B, T), generator=g)
    y = torch.full_like(x, -100)  # the first LAG positions have nothing to copy
    y[:, LAG:] = x[:, :-LAG]
    return x, y


def _accuracy_by_bin(model: nn.Module, seed: int, T: int = EVAL_LEN) -> list[float]:
    x, y = _copy_batch(torch.Generator().manual_seed(20_000 + seed), 64, T)
    with torch.no_grad(), threads(1):
        right = (model(x).logits.argmax(-1) == y).float()  # (B, T)
    return [right[:, max(a, LAG):b].mean().item() for a, b in BINS if b <= T]


@functools.lru_cache(maxsize=None)
def _copy_models(seed: int) -> dict[str, tuple[MiniMindForCausalLM, float]]:
    """Learned-PE and RoPE models trained on copy-4-back at length 64: {name: (model, cpu s)}."""
    settings = TrainSettings(steps=300, lr=1e-2, batch_size=16, seq_len=COPY_L)
    out = {}
    for position in ("learned", "rope"):
        with threads(1):
            torch.manual_seed(seed)
            model = MiniMindForCausalLM(_copy_config(position=position))
        g = torch.Generator().manual_seed(seed)
        run = fit(model, lambda step: _copy_batch(g, settings.batch_size, COPY_L),
                  lambda m, x, y: m(x, y).loss, settings, position)
        out[position] = (model, run.cpu_seconds)
    return out


def _rope_variant(trained: nn.Module, **changes) -> MiniMindForCausalLM:
    """The trained RoPE weights under another table (scaling); no training."""
    model = MiniMindForCausalLM(_copy_config(max_position_embeddings=EVAL_LEN, **changes))
    model.load_state_dict(trained.state_dict())  # the tables are buffers outside the state dict
    return model.eval()


@pytest.mark.claim
def test_learned_positions_stop_at_trained_length_while_rope_runs_on_and_degrades(seed, report):
    """Trained on copy-4-back at length 64, learned absolute positions raise an error past 64;
    RoPE runs to 256, holds within 64, and falls below half its in-range accuracy at 128-256."""
    models = _copy_models(seed)
    learned, learned_cpu = models["learned"]
    rope, rope_cpu = models["rope"]
    learned_acc = _accuracy_by_bin(learned, seed, COPY_L)
    with pytest.raises(ValueError, match="exceeds max_position_embeddings") as err:
        learned(torch.zeros(1, COPY_L + 1, dtype=torch.long))
    rope_acc = _accuracy_by_bin(_rope_variant(rope), seed)
    report.table(Table(
        f"copy the token {LAG} back, trained at length {COPY_L}: accuracy by position "
        f"(seed {seed})",
        ["model", *(f"[{a}, {b})" for a, b in BINS), "train cpu s"],
        [["learned positions", *learned_acc, "error", "error", learned_cpu],
         ["RoPE", *rope_acc, rope_cpu]],
        note=f"learned past {COPY_L}: ValueError: {err.value}"))
    assert learned_acc[0] > 0.95 and rope_acc[0] > 0.95, (learned_acc, rope_acc)
    assert rope_acc[2] < rope_acc[0] / 2, f"RoPE did not degrade at 2L-4L: {rope_acc}"


@pytest.mark.claim
def test_ntk_and_yarn_scaling_recover_rope_accuracy_past_the_trained_length(seed, report):
    """With no training, NTK-aware theta (x4) and MiniMind's YaRN (x4, original length 64) raise
    the RoPE model's copy accuracy at 2L-4L by >= 0.2 over plain RoPE; position interpolation
    (every frequency / 4) destroys even the in-range accuracy."""
    rope, _ = _copy_models(seed)["rope"]
    head_dim = _copy_config().head_dim
    yarn = dict(rope_scaling="yarn", original_max_position_embeddings=COPY_L)
    variants = {
        "plain RoPE": {},
        "NTK-aware theta, x4": dict(rope_scaling="ntk", rope_scaling_factor=4.0),
        "YaRN x4 (beta 32/1, MiniMind's)": dict(**yarn, rope_scaling_factor=4.0),
        "YaRN x16 (MiniMind's factor)": dict(**yarn, rope_scaling_factor=16.0),
    }
    acc = {name: _accuracy_by_bin(_rope_variant(rope, **changes), seed)
           for name, changes in variants.items()}
    pi = _rope_variant(rope)
    pi.model.freqs_cos, pi.model.freqs_sin = rope_tables(
        rope_inv_freq(head_dim, pi.config.rope_theta) / 4, EVAL_LEN)
    acc["position interpolation x4"] = _accuracy_by_bin(pi, seed)
    report.table(Table(
        f"same trained RoPE model, other tables, no training: copy accuracy by position "
        f"(trained at {COPY_L}, seed {seed})",
        ["tables", *(f"[{a}, {b})" for a, b in BINS)], [[n, *a] for n, a in acc.items()]))

    def draw(path):
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, a in acc.items():
            ax.plot([f"[{lo},{hi})" for lo, hi in BINS], a, "o-", label=name)
        ax.axvline(0.5, color="grey", lw=0.5, ls="--", label=f"trained length {COPY_L}")
        ax.set_xlabel("positions (trained at 64)")
        ax.set_ylabel("copy accuracy")
        ax.legend(fontsize=7)
        save_figure(fig, path)

    report.figure("02-extrapolation", draw)
    plain = acc["plain RoPE"][2]
    assert acc["NTK-aware theta, x4"][2] > plain + 0.2, acc
    assert acc["YaRN x4 (beta 32/1, MiniMind's)"][2] > plain + 0.2, acc
    assert acc["position interpolation x4"][0] < 0.2, acc


@pytest.mark.claim
def test_minimind_yarn_keeps_fast_pairs_and_divides_slow_pairs_by_the_factor(report):
    """With MiniMind's settings (2048 tokens, x16, beta 32/1, D=64, theta 1e6) pairs turning more
    than 32 times in 2048 tokens keep their frequency, pairs turning less than once are divided by
    16, and the ramp between them never speeds a pair up."""
    orig, factor = 2048, 16.0
    before = rope_inv_freq(D, THETA)
    after = yarn_inv_freq(D, THETA, factor, orig, beta_fast=32.0, beta_slow=1.0)
    ratio = after / before
    turns = orig * before / (2 * math.pi)  # turns each pair makes within the original context
    report.table(Table(
        "MiniMind's YaRN: frequency after / before, per pair",
        ["pair", "period (tokens)", "turns in 2048", "after / before"],
        [[i, 2 * math.pi / before[i].item(), turns[i].item(), ratio[i].item()]
         for i in (0, 4, 5, 6, 9, 13, 14, 31)]))
    assert torch.allclose(ratio[turns >= 32], torch.ones(1, dtype=torch.float64))
    assert torch.allclose(ratio[turns <= 1], torch.full((1,), 1 / factor, dtype=torch.float64))
    assert bool((ratio[1:] <= ratio[:-1]).all()), "the ramp must not speed up slower pairs"
    assert int((turns >= 32).sum()) == 6 and int((turns <= 1).sum()) == 18, turns
