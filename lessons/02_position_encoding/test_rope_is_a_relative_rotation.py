"""Lesson 02, experiment 1: RoPE is a rotation per pair of dimensions. The score of a rotated
query and key sees only their offset, norms do not change, the tables must be built in float64
to stay exact at large positions, and MiniMind's half-split layout is RoFormer's interleaved one
up to a permutation of dimensions."""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

from minimind.config import ModelConfig
from minimind.lab import Table
from minimind.rope import apply_rope, rope_inv_freq, rope_tables

MINIMIND = ModelConfig()
D, THETA = MINIMIND.head_dim, MINIMIND.rope_theta  # 64 (512 / 8 heads) and 1e6
MAX_LEN = MINIMIND.max_position_embeddings  # 32768


def _at(x: Tensor, positions: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate vectors x (N, D) to their positions (N,): one table row per vector."""
    N = x.shape[0]
    return apply_rope(x.view(1, N, 1, -1), cos[positions], sin[positions]).view(N, -1)


@pytest.fixture(scope="module")
def tables_8192() -> dict[torch.dtype, tuple[Tensor, Tensor]]:
    """MiniMind's (cos, sin) tables for positions 0..8191, in float64 and in float32."""
    inv_freq = rope_inv_freq(D, THETA)
    return {dtype: rope_tables(inv_freq, 8192, dtype) for dtype in (torch.float64, torch.float32)}


positions = st.integers(0, 4095)


@pytest.mark.claim
@given(m=positions, n=positions, shift=positions, vectors=st.integers(0, 2**31 - 1))
def test_rope_score_depends_only_on_relative_position(seed, tables_8192, m, n, shift, vectors):
    """<R_m q, R_n k> = <R_(m+s) q, R_(n+s) k>, to 1e-12 of |q||k| in float64, 4e-6 in float32."""
    g = torch.Generator().manual_seed(seed * 7919 + vectors)
    q, k = torch.randn(2, 1, D, generator=g, dtype=torch.float64)
    scale = (q.norm() * k.norm()).item()
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 4e-6)):
        cos, sin = tables_8192[dtype]
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
    seed, claim
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
    claim.table(Table(
        f"max |score(o+5, o) - score(5, 0)| / (|q||k|) over 256 vector pairs, D={D}, "
        f"theta 1e6 (seed {seed})",
        ["offset o", *variants, "float32 angle error (rad)"],
        [[o, *(errs[v][i] for v in variants), angle_error(o)] for i, o in enumerate(offsets)]))
    exact32 = max(errs["float32 tables, float64 angles"])
    claim.check("float64 tables: largest score error", max(errs["float64 tables"]), "<", 1e-10)
    claim.check("float32 tables from float64 angles: largest score error", exact32, "<", 4e-6)
    drift = errs["float32 angles (MiniMind)"]
    # Drift that did not grow with the offset (float64-like rounding) gives ratios near 1 or
    # below; float32 angles lose about one more digit per decade.
    claim.check("float32 angles: smallest growth of the error per decade, offsets 1e3..1e6",
                min(b / a for a, b in zip(drift[1:], drift[2:])), ">", 1)
    claim.check("float32 angles: score error at offset 1e6", drift[4], ">", 5e-4)
    claim.check("float32 angles over float64-built float32 tables, error at 1e6",
                drift[4] / exact32, ">", 1000)


@pytest.mark.claim
def test_rope_preserves_vector_norms_at_every_position(seed, claim):
    """|R_p x| = |x| at all 32768 positions: to 1e-13 in float64 and 1e-6 in float32."""
    x = torch.randn(MAX_LEN, D, generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64) * 3
    every = torch.arange(MAX_LEN)
    rows = []
    for dtype, tol in ((torch.float64, 1e-13), (torch.float32, 1e-6)):
        cos, sin = rope_tables(rope_inv_freq(D, THETA), MAX_LEN, dtype)
        y = _at(x.to(dtype), every, cos, sin)
        change = ((y.double().norm(dim=-1) - x.to(dtype).double().norm(dim=-1)).abs()
                  / x.norm(dim=-1))
        rows.append([str(dtype).removeprefix("torch."), change.max().item(), change.mean().item(),
                     tol])
    claim.table(Table(f"relative change of |x| after RoPE, positions 0..{MAX_LEN - 1}, D={D} "
                      f"(seed {seed})", ["dtype", "max", "mean", "claimed below"], rows))
    for name, worst, _, tol in rows:
        claim.check(f"{name}: largest relative change of the norm", worst, "<", tol)


def _apply_rope_interleaved(x: Tensor, inv_freq: Tensor) -> Tensor:
    """RoFormer's layout: dimensions (2i, 2i+1) form pair i. x is (B, T, H, D)."""
    B, T, H, D_ = x.shape
    angles = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq).to(x.dtype)  # (T, D/2)
    cos, sin = angles.cos()[:, None, :], angles.sin()[:, None, :]  # (T, 1, D/2)
    even, odd = x[..., 0::2], x[..., 1::2]  # (B, T, H, D/2) each
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], -1).view(B, T, H, D_)


@pytest.mark.claim
def test_half_split_and_interleaved_rope_are_one_rotation_up_to_a_permutation(seed, claim):
    """Permuting dimensions (evens first, then odds) turns RoFormer's interleaved RoPE into
    MiniMind's half-split RoPE exactly, so attention scores agree to float64 precision."""
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, 2, 50, 4, D, generator=g, dtype=torch.float64)
    perm = torch.cat([torch.arange(0, D, 2), torch.arange(1, D, 2)])  # interleaved -> half-split
    inv_freq = rope_inv_freq(D, THETA)
    cos, sin = rope_tables(inv_freq, 50, torch.float64)
    half = apply_rope(q[..., perm], cos, sin)
    inter = _apply_rope_interleaved(q, inv_freq)
    rotation_gap = (half - inter[..., perm]).abs().max().item()
    scores_half = torch.einsum("bthd,bshd->bhts", half, apply_rope(k[..., perm], cos, sin))
    scores_inter = torch.einsum("bthd,bshd->bhts", inter, _apply_rope_interleaved(k, inv_freq))
    score_gap = (scores_half - scores_inter).abs().max().item()
    unpermuted_gap = (apply_rope(q, cos, sin) - inter).abs().max().item()
    claim.table(Table(f"half-split vs interleaved RoPE, 50 positions, D={D} (seed {seed})",
                      ["comparison", "max abs difference"],
                      [["half(P x) vs P interleaved(x)", rotation_gap],
                       ["scores, both layouts", score_gap],
                       ["half(x) vs interleaved(x), no permutation", unpermuted_gap]]))
    claim.check("half(P x) vs P interleaved(x): largest difference", rotation_gap, "<", 1e-12)
    claim.check("scores of both layouts: largest difference", score_gap, "<", 1e-10)
    # Without the permutation the two layouts rotate different pairs: differences of order |q|.
    claim.check("no permutation: largest difference", unpermuted_gap, ">", 0.1)
