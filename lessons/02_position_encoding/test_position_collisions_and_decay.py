"""Lesson 02, experiment 2: why RoPE uses a ladder of frequencies. One frequency alone lets
two positions collide; MiniMind's 32 keep every two positions apart, and their sum makes the
score's upper bound decay with distance, more slowly for a larger base theta."""
import math

import pytest
import torch
from torch import Tensor

from minimind.config import ModelConfig
from minimind.lab import LineFigure, Panels, Table
from minimind.rope import apply_rope, rope_inv_freq, rope_tables

MINIMIND = ModelConfig()
D, THETA = MINIMIND.head_dim, MINIMIND.rope_theta  # 64 (512 / 8 heads) and 1e6
MAX_LEN = MINIMIND.max_position_embeddings  # 32768


def _rotation_distance(inv_freq: Tensor, deltas: Tensor) -> Tensor:
    """|R_p - R_(p+delta)|_F / sqrt(2) for each delta: sqrt(sum_i 2 - 2 cos(w_i delta))."""
    return (2 - 2 * torch.cos(deltas[:, None] * inv_freq[None, :])).sum(-1).sqrt()


@pytest.mark.claim
def test_single_frequency_positions_collide_but_the_full_spectrum_keeps_them_apart(seed, claim):
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
    claim.table(Table(
        f"closest two of positions 0..{MAX_LEN - 1}: min over delta of |R_p - R_(p+delta)|",
        ["frequencies", "min distance", "at delta", "neighbours (delta 1)"], rows,
        note=f"Dirichlet bound for any single frequency: 2 sin(pi/{MAX_LEN}) = {bound:.2e}"))
    claim.figure("position-collisions", LineFigure(
        {name: (deltas.tolist(), dist.clamp_min(1e-7).tolist())
         for name, dist in curves.items() if "random" not in name},
        xlabel="distance between positions", ylabel="|R_p - R_(p+delta)| (0 = same position)",
        title="how close the rotations of two positions come", logx=True, logx_base=10,
        logy=True, markers=False, linewidth=0.8))
    for name, closest, _, _ in rows[:3]:
        label = "one random pair" if "random" in name else name  # w changes with the seed
        claim.check(f"{label}: closest two positions (Dirichlet bound)", closest, "<", bound)
    for name, closest, at, _ in rows[3:]:
        # A ladder that aliased two far positions would measure a minimum near 0, not ~1.3.
        claim.check(f"{name}: closest two positions", closest, ">", 1.0)
        assert at == 1, f"{name}: the closest two positions are {at} apart, not neighbours"


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
    cos, sin = rope_tables(rope_inv_freq(D, theta), MAX_LEN, torch.float32)
    n = len(deltas)
    rotated = apply_rope(q[:, None, None, :].expand(256, n, 1, D), cos[deltas], sin[deltas])
    scores = (rotated[:, :, 0] * q[:, None, :]).sum(-1) / q.pow(2).sum(-1, keepdim=True)
    return scores.mean(0), deltas


def _ratios(curve: list[float]) -> list[float]:
    """Each bin's value over the next bin's: > 1 where the curve falls."""
    return [a / b for a, b in zip(curve, curve[1:])]


@pytest.mark.claim
def test_rope_score_bound_decays_with_distance_and_slower_for_larger_theta(seed, claim):
    """RoFormer's relative upper bound falls in every distance bin (theta 1e4 until it flattens
    near 3.4 past 2048; theta 1e6 to 32768) and is larger for theta 1e6 from distance 2 on; random
    vectors' scores with themselves decay the same way."""
    raw = {theta: _roformer_bound(theta) for theta in (1e4, 1e6)}
    bounds = {theta: _binned(curve) for theta, curve in raw.items()}
    self_scores = {theta: _self_scores(theta, seed) for theta in (1e4, 1e6)}
    selfs = {theta: mean.view(len(EDGES) - 1, 32).mean(-1).tolist()
             for theta, (mean, _) in self_scores.items()}
    rows = [[f"[{a}, {b})", bounds[1e4][i], bounds[1e6][i], selfs[1e4][i], selfs[1e6][i]]
            for i, (a, b) in enumerate(zip(EDGES[:-1], EDGES[1:]))]
    claim.table(Table(
        f"RoFormer bound (1/(D/2)) sum |S_j| and mean q.R q/|q|^2 (256 random q), D={D} "
        f"(seed {seed})",
        ["distance", "bound 1e4", "bound 1e6", "q.Rq 1e4", "q.Rq 1e6"], rows))
    centres = [math.sqrt(a * b) for a, b in zip(EDGES[:-1], EDGES[1:])]
    bound_series = {}
    for theta in (1e4, 1e6):
        bound_series[f"theta {theta:g}"] = (list(range(1, MAX_LEN)), raw[theta][1:].tolist())
        bound_series[f"theta {theta:g}, mean per bin"] = (centres, bounds[theta])
    claim.figure("long-range-decay", Panels([
        LineFigure(bound_series, xlabel="relative distance", ylabel="relative upper bound",
                   title="RoFormer's bound", logx=True, logx_base=10, markers=False,
                   linewidth=0.6),
        LineFigure({f"theta {theta:g}": (deltas.tolist(), mean.tolist())
                    for theta, (mean, deltas) in self_scores.items()},
                   xlabel="relative distance", ylabel="mean q . R q / |q|^2",
                   title=f"random vectors with themselves (seed {seed})", logx=True,
                   logx_base=10, markers=False, linewidth=0.8),
    ]))
    low, high = bounds[1e4], bounds[1e6]
    flat_from = EDGES.index(2048)
    # A bound that did not decay would give bin-to-bin ratios of 1 and the same curve for both
    # thetas.
    claim.check("theta 1e4 bound: smallest fall from one bin to the next, up to [2048, 4096)",
                min(_ratios(low[:flat_from + 1])), ">", 1)
    claim.check("theta 1e4 bound: max/min past 2048 (flat)",
                max(low[flat_from:]) / min(low[flat_from:]), "<", 1.05)
    claim.check("theta 1e4 bound at [16384, 32768), from below", low[-1], ">", 3.2)
    claim.check("theta 1e4 bound at [16384, 32768), from above", low[-1], "<", 3.6)
    claim.check("theta 1e6 bound: smallest fall from one bin to the next",
                min(_ratios(high)), ">", 1)
    claim.check("theta 1e6 over theta 1e4 bound: smallest ratio from [2, 4) on",
                min(h / lo for h, lo in zip(high[1:], low[1:])), ">", 1)
    claim.check("theta 1e4: mean q.Rq / q.q at [1, 2)", selfs[1e4][0], ">", 0.9)
    claim.check("theta 1e4: size of mean q.Rq / q.q at [16384, 32768)", abs(selfs[1e4][-1]),
                "<", 0.1)
    claim.check("theta 1e6 minus theta 1e4: mean q.Rq / q.q at [16384, 32768)",
                selfs[1e6][-1] - selfs[1e4][-1], ">", 0.1)
