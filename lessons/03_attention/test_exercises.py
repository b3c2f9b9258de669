"""Exercise tests for lesson 03: each passes on a right answer and names the mistake otherwise."""
import math

import pytest
import torch
import torch.nn.functional as F

from minimind.attention import (
    largest_intermediate, offset_causal_mask, repeat_kv, scaled_dot_product_attention, softmax,
)
from minimind.course import check_close

ATOL, RTOL = 1e-5, 1e-5


def _qkv(seed: int, B=2, H=3, Tq=7, Tk=None, D=8, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    Tk = Tk or Tq
    q = torch.randn(B, H, Tq, D, generator=g) * scale
    k = torch.randn(B, H, Tk, D, generator=g) * scale
    v = torch.randn(B, H, Tk, D, generator=g)
    return q, k, v


# --- softmax -------------------------------------------------------------------------------------

def _softmax_mistakes(x: torch.Tensor, dim: int = -1) -> dict[str, torch.Tensor]:
    e = x.exp()
    return {
        "max not subtracted: exp overflows to inf and inf / inf is NaN": e / e.sum(dim, True),
        "normalised over the wrong dim": softmax(x, dim=0 if dim in (-1, x.dim() - 1) else -1),
        "one max over the whole tensor: rows far below it underflow to 0 / 0":
            (x - x.max()).exp() / (x - x.max()).exp().sum(dim, True),
        "exp forgotten": x / x.sum(dim, True),
    }


@pytest.mark.exercise("softmax")
def test_softmax_matches_reference(impl):
    """softmax(x) = exp(x) / sum(exp(x)) along the last dim."""
    x = torch.randn(3, 5, 7, generator=torch.Generator().manual_seed(0)) * 3
    check_close(impl.softmax(x), softmax(x), atol=ATOL, rtol=RTOL, mistakes=_softmax_mistakes(x),
                hint="exp(x - max) / sum(exp(x - max)) along dim, with keepdim=True")


@pytest.mark.exercise("softmax")
def test_softmax_of_logits_of_1e4_is_finite(impl):
    """Logits of +-1e4 give finite probabilities: the max is subtracted before exp."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 6, generator=g) * 100
    x[:2] += 1e4  # rows near +1e4: exp overflows unless the row's max is subtracted
    x[2:] -= 1e4  # rows near -1e4: exp underflows to 0 unless the row's own max is used
    check_close(impl.softmax(x), softmax(x), atol=ATOL, rtol=RTOL, mistakes=_softmax_mistakes(x),
                hint="subtract each row's own max: x.amax(dim, keepdim=True)")


@pytest.mark.exercise("softmax")
def test_softmax_is_invariant_to_adding_a_constant(impl):
    """softmax(x + c) == softmax(x): only differences between logits matter."""
    x = torch.randn(5, 9, generator=torch.Generator().manual_seed(2))
    check_close(impl.softmax(x + 30.0), softmax(x), atol=ATOL, rtol=RTOL,
                mistakes=_softmax_mistakes(x + 30.0), what="softmax(x + 30)")


@pytest.mark.parametrize("dim", [0, 1])
@pytest.mark.exercise("softmax")
def test_softmax_normalises_along_the_dim_it_is_given(impl, dim):
    """softmax(x, dim) sums to one along `dim`, whichever dim that is."""
    x = torch.randn(4, 5, 6, generator=torch.Generator().manual_seed(3 + dim)) * 2
    check_close(impl.softmax(x, dim=dim), softmax(x, dim=dim), atol=ATOL, rtol=RTOL,
                mistakes=_softmax_mistakes(x, dim), hint="use the dim argument everywhere")


# --- causal_mask ---------------------------------------------------------------------------------

@pytest.mark.parametrize("seq_len", [1, 2, 6])
@pytest.mark.exercise("causal_mask")
def test_causal_mask_allows_self_and_past_only(impl, seq_len):
    """mask[i, j] is True exactly when j <= i: each position sees itself and the past."""
    ones = torch.ones(seq_len, seq_len, dtype=torch.bool)
    mistakes = {
        "future allowed instead of the past (triu)": ones.triu(),
        "a position may not see itself (diagonal excluded)": ones.tril(-1),
        "inverted: True where attention is blocked": ~ones.tril(),
    }
    check_close(impl.causal_mask(seq_len), ones.tril(), atol=0, rtol=0, mistakes=mistakes,
                hint="True means allowed; torch.tril keeps the lower triangle and the diagonal",
                what=f"causal_mask({seq_len})")


# --- scaled_dot_product_attention ----------------------------------------------------------------

def _sdpa_mistakes(q, k, v, causal=True) -> dict[str, torch.Tensor]:
    Tq, Tk, D = q.shape[-2], k.shape[-2], q.shape[-1]
    s = q @ k.transpose(-2, -1)
    allowed = offset_causal_mask(Tq, Tk)
    mask = (lambda x: x.masked_fill(~allowed, -math.inf)) if causal else (lambda x: x)
    top_left = torch.ones(Tq, Tk, dtype=torch.bool).tril()  # right only when Tq == Tk
    return {
        "no 1/sqrt(d) scaling": torch.softmax(mask(s), -1) @ v,
        "scaled by 1/d instead of 1/sqrt(d)": torch.softmax(mask(s / D), -1) @ v,
        "softmax over the queries (dim=-2) instead of the keys": (
            torch.softmax(mask(s / math.sqrt(D)), -2).nan_to_num() @ v),
        "causal mask ignored": torch.softmax(s / math.sqrt(D), -1) @ v,
        "future allowed instead of the past (triu)": torch.softmax(
            (s / math.sqrt(D)).masked_fill(~top_left.triu(), -math.inf), -1) @ v,
        "mask applied after the softmax (rows no longer sum to 1)": (
            torch.softmax(s / math.sqrt(D), -1) * allowed) @ v,
        "mask aligned to the first key, not the last (wrong with a KV cache)": torch.softmax(
            (s / math.sqrt(D)).masked_fill(~top_left, -math.inf), -1) @ v,
    }


@pytest.mark.exercise("scaled_dot_product_attention")
def test_scaled_dot_product_attention_causal_matches_pytorch(impl):
    """Causal attention equals PyTorch's F.scaled_dot_product_attention(is_causal=True)."""
    q, k, v = _qkv(0)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    check_close(impl.scaled_dot_product_attention(q, k, v, causal=True), expected, atol=ATOL,
                rtol=RTOL, mistakes=_sdpa_mistakes(q, k, v),
                hint="scores = q @ k.transpose(-2, -1) / sqrt(head_dim); mask; softmax(dim=-1)")


@pytest.mark.exercise("scaled_dot_product_attention")
def test_scaled_dot_product_attention_first_position_returns_its_own_value(impl):
    """Under the causal mask position 0 sees only itself, so its output is v[..., 0, :]."""
    q, k, v = _qkv(1, Tq=5)
    out = impl.scaled_dot_product_attention(q, k, v, causal=True)
    check_close(out[..., 0, :], v[..., 0, :], atol=ATOL, rtol=RTOL, what="output at position 0",
                hint="query 0 may attend to key 0 only; mask the keys j > i with -inf")


@pytest.mark.exercise("scaled_dot_product_attention")
def test_scaled_dot_product_attention_non_causal_matches_pytorch(impl):
    """With causal=False every query attends to every key, as in PyTorch's SDPA."""
    q, k, v = _qkv(2, Tq=4, Tk=6)
    expected = F.scaled_dot_product_attention(q, k, v)
    check_close(impl.scaled_dot_product_attention(q, k, v, causal=False), expected, atol=ATOL,
                rtol=RTOL, mistakes=_sdpa_mistakes(q, k, v, causal=False),
                hint="causal=False means no mask at all")


@pytest.mark.exercise("scaled_dot_product_attention")
def test_scaled_dot_product_attention_new_queries_after_a_cache_see_the_whole_prefix(impl):
    """With 3 queries and 8 keys, query i sits at position 5 + i and sees keys 0..5 + i."""
    q, k, v = _qkv(3, Tq=3, Tk=8)
    expected = scaled_dot_product_attention(q, k, v, causal=True)
    check_close(impl.scaled_dot_product_attention(q, k, v, causal=True), expected, atol=ATOL,
                rtol=RTOL, mistakes=_sdpa_mistakes(q, k, v),
                hint="allowed[i, j] = j <= i + k_seq - q_seq: tril(diagonal=k_seq - q_seq)")


# --- repeat_kv -----------------------------------------------------------------------------------

@pytest.mark.exercise("repeat_kv")
def test_repeat_kv_repeats_each_kv_head_n_rep_times_in_a_row(impl):
    """Query head h reads kv head h // n_rep: heads come out as 0, 0, 1, 1, 2, 2 for n_rep=2."""
    x = torch.randn(2, 5, 3, 4, generator=torch.Generator().manual_seed(0))
    mistakes = {
        "tiled (x.repeat): heads come out 0, 1, 2, 0, 1, 2, so head h reads h % kv_heads":
            x.repeat(1, 1, 2, 1),
    }
    check_close(impl.repeat_kv(x, 2), repeat_kv(x, 2), atol=0, rtol=0, mistakes=mistakes,
                hint="(B, T, KV, D) -> (B, T, KV, n_rep, D) -> reshape (B, T, KV * n_rep, D)")


@pytest.mark.parametrize("n_rep", [1, 4])
@pytest.mark.exercise("repeat_kv")
def test_repeat_kv_output_head_h_is_input_head_h_div_n_rep(impl, n_rep):
    """Every output head h equals input kv head h // n_rep, for n_rep = 1 (no-op) and 4."""
    x = torch.randn(1, 3, 2, 6, generator=torch.Generator().manual_seed(n_rep))
    out = impl.repeat_kv(x, n_rep)
    expected = torch.stack([x[:, :, h // n_rep] for h in range(2 * n_rep)], dim=2)
    check_close(out, expected, atol=0, rtol=0, what=f"repeat_kv(x, {n_rep})",
                hint="heads are dim 2 of (batch, seq, kv_heads, head_dim)")


# --- tiled_attention -----------------------------------------------------------------------------

def _tiled_mistakes(q, k, v, block_size: int) -> dict[str, torch.Tensor]:
    Tq, Tk, D = q.shape[-2], k.shape[-2], q.shape[-1]
    kept = torch.arange(Tk) < Tk - Tk % block_size  # keys in whole blocks only
    allowed = offset_causal_mask(Tq, Tk) & kept
    s = (q @ k.transpose(-2, -1) / math.sqrt(D)).masked_fill(~allowed, -math.inf)
    dropped = torch.softmax(s, -1).nan_to_num() @ v
    return {"the last, shorter block of keys was dropped": dropped} if Tk % block_size else {}


@pytest.mark.parametrize("block_size", [1, 4, 5, 16, 64])
@pytest.mark.exercise("tiled_attention")
def test_tiled_attention_equals_naive_attention_for_any_block_size(impl, block_size):
    """Tiled attention equals naive attention whether or not block_size divides the sequence."""
    q, k, v = _qkv(10 + block_size, Tq=16)
    expected = scaled_dot_product_attention(q, k, v, causal=True)
    check_close(impl.tiled_attention(q, k, v, block_size), expected, atol=ATOL, rtol=RTOL,
                mistakes=_tiled_mistakes(q, k, v, block_size),
                hint="rescale BOTH running sums by exp(m_old - m_new) before adding a block")


@pytest.mark.exercise("tiled_attention")
def test_tiled_attention_with_scores_in_the_hundreds_is_finite_and_exact(impl):
    """Scores of several hundred overflow exp in float32 unless the running max is subtracted."""
    q, k, v = _qkv(20, Tq=12, scale=12.0)  # q.k / sqrt(8) reaches several hundred
    expected = scaled_dot_product_attention(q, k, v, causal=True)
    check_close(impl.tiled_attention(q, k, v, 4), expected, atol=1e-4, rtol=1e-4,
                hint="exp(s - m_new) with m_new the running row max, never exp(s)")


@pytest.mark.exercise("tiled_attention")
def test_tiled_attention_non_causal_and_after_a_cache_match_naive(impl):
    """causal=False, and causal with fewer queries than keys, both equal naive attention."""
    q, k, v = _qkv(21, Tq=9, Tk=9)
    check_close(impl.tiled_attention(q, k, v, 4, causal=False),
                scaled_dot_product_attention(q, k, v, causal=False), atol=ATOL, rtol=RTOL,
                what="non-causal output", hint="causal=False means no mask")
    q, k, v = _qkv(22, Tq=3, Tk=11)
    check_close(impl.tiled_attention(q, k, v, 4, causal=True),
                scaled_dot_product_attention(q, k, v, causal=True), atol=ATOL, rtol=RTOL,
                what="output for 3 queries after 8 cached keys",
                hint="query i sits at position k_seq - q_seq + i")


@pytest.mark.exercise("tiled_attention")
def test_tiled_attention_never_creates_a_tensor_as_large_as_the_score_matrix(impl):
    """No tensor created inside tiled_attention exceeds batch x heads x seq x max(block, d)."""
    B, H, T, D, block = 2, 4, 256, 16, 32
    q, k, v = _qkv(23, B=B, H=H, Tq=T, D=D)
    largest, op = largest_intermediate(lambda: impl.tiled_attention(q, k, v, block))
    bound = B * H * T * max(block, D) * q.element_size()
    full = B * H * T * T * q.element_size()
    assert largest <= bound, (
        f"the largest tensor created was {largest:,} bytes (by {op}); tiles of {block} keys need "
        f"at most {bound:,}, the full score matrix is {full:,}. Compute scores one key block "
        f"at a time, never q @ k.transpose(-2, -1) over all keys"
    )
