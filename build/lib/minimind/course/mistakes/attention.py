"""Lesson 03 (attention): the exercises and their known wrong versions."""
import math

import torch

from minimind.attention import offset_causal_mask, scaled_dot_product_attention, softmax
from minimind.course.mistakes import mistake

REFERENCE = "minimind.attention"
EXERCISES = ("softmax", "causal_mask", "scaled_dot_product_attention", "repeat_kv",
             "tiled_attention")

# --- softmax -------------------------------------------------------------------------------------


@mistake("softmax", "max not subtracted: exp overflows to inf for logits of 1e4, and inf / inf "
                    "is NaN",
         hint="shift each slice by its own largest logit before exp; the result is unchanged "
              "mathematically and no exponent is positive")
def softmax_no_max(x, dim=-1):
    e = x.exp()
    return e / e.sum(dim=dim, keepdim=True)


@mistake("softmax", "one max over the whole tensor instead of each row's own: rows far below "
                    "it underflow to 0 / 0",
         hint="take the max along `dim` with keepdim=True, so every row is shifted by its own max")
def softmax_global_max(x, dim=-1):
    e = (x - x.max()).exp()
    return e / e.sum(dim=dim, keepdim=True)


@mistake("softmax", "dim argument ignored (always the last dim)",
         hint="use the `dim` the caller passes in every reduction, not -1")
def softmax_ignores_dim(x, dim=-1):
    e = (x - x.amax(dim=-1, keepdim=True)).exp()
    return e / e.sum(dim=-1, keepdim=True)


@mistake("softmax", "normalised over the first dim instead of the one asked for",
         hint="the max and the sum both run along `dim`; the default -1 is the last dim")
def softmax_first_dim(x, dim=-1):
    return softmax(x, dim=0 if dim in (-1, x.dim() - 1) else -1)


@mistake("softmax", "divided by the sum over the whole tensor",
         hint="each slice along `dim` sums to one on its own: reduce along `dim` with "
              "keepdim=True")
def softmax_sum_everything(x, dim=-1):
    e = (x - x.amax(dim=dim, keepdim=True)).exp()
    return e / e.sum()


@mistake("softmax", "min subtracted instead of max (exponents become large and positive)",
         hint="subtract the largest logit, so the largest exponent is exp(0) = 1")
def softmax_subtracts_min(x, dim=-1):
    e = (x - x.amin(dim=dim, keepdim=True)).exp()
    return e / e.sum(dim=dim, keepdim=True)


@mistake("softmax", "exp forgotten: the logits themselves are normalised",
         hint="weights are exponentials of the (shifted) logits, then normalised")
def softmax_no_exp(x, dim=-1):
    return x / x.sum(dim=dim, keepdim=True)


# --- causal_mask ---------------------------------------------------------------------------------


@mistake("causal_mask", "upper triangle: the future is allowed instead of the past",
         hint="row i is the query, column j the key; keep j <= i, the lower triangle")
def mask_triu(seq_len):
    return torch.ones(seq_len, seq_len, dtype=torch.bool).triu()


@mistake("causal_mask", "diagonal excluded: a position cannot see itself",
         hint="a position may attend to itself: keep the diagonal")
def mask_strict(seq_len):
    return torch.ones(seq_len, seq_len, dtype=torch.bool).tril(-1)


@mistake("causal_mask", "inverted: True where attention is blocked",
         hint="True means allowed in this course (PyTorch's nn.MultiheadAttention uses the "
              "opposite)")
def mask_inverted(seq_len):
    return ~torch.ones(seq_len, seq_len, dtype=torch.bool).tril()


@mistake("causal_mask", "float 0/1 mask instead of bool",
         hint="return dtype torch.bool: masked_fill and ~ need a boolean mask")
def mask_float(seq_len):
    return torch.ones(seq_len, seq_len).tril()


# --- scaled_dot_product_attention ----------------------------------------------------------------


def _attend(q, k, v, causal, scale, allowed=None, dim=-1):
    Tq, Tk = q.shape[-2], k.shape[-2]
    s = q @ k.transpose(-2, -1) * scale
    if causal:
        allowed = offset_causal_mask(Tq, Tk) if allowed is None else allowed
        s = s.masked_fill(~allowed, float("-inf"))
    return torch.softmax(s, dim=dim).nan_to_num() @ v


def _top_left(Tq, Tk):
    return torch.ones(Tq, Tk, dtype=torch.bool).tril()


@mistake("scaled_dot_product_attention", "no 1/sqrt(d) scaling",
         hint="divide the scores by the square root of head_dim before the softmax")
def sdpa_unscaled(q, k, v, causal=True):
    return _attend(q, k, v, causal, 1.0)


@mistake("scaled_dot_product_attention", "scaled by 1/d instead of 1/sqrt(d)",
         hint="the variance of q.k grows like d, its spread like sqrt(d): divide by the root")
def sdpa_scaled_by_d(q, k, v, causal=True):
    return _attend(q, k, v, causal, 1.0 / q.shape[-1])


@mistake("scaled_dot_product_attention", "softmax over the queries (dim=-2) instead of the keys",
         hint="each query's weights over the keys sum to one: the softmax runs along the last "
              "dim of the scores")
def sdpa_softmax_wrong_dim(q, k, v, causal=True):
    return _attend(q, k, v, causal, 1.0 / math.sqrt(q.shape[-1]), dim=-2)


@mistake("scaled_dot_product_attention", "causal flag ignored: never masks",
         hint="with causal=True, keys after the query get -inf before the softmax")
def sdpa_never_masks(q, k, v, causal=True):
    return _attend(q, k, v, False, 1.0 / math.sqrt(q.shape[-1]))


@mistake("scaled_dot_product_attention", "causal flag ignored: always masks",
         hint="causal=False means every query sees every key: no mask at all")
def sdpa_always_masks(q, k, v, causal=True):
    return _attend(q, k, v, True, 1.0 / math.sqrt(q.shape[-1]))


@mistake("scaled_dot_product_attention", "future allowed instead of the past (triu mask)",
         hint="query i may read keys up to its own position, not from it onwards")
def sdpa_triu(q, k, v, causal=True):
    Tq, Tk = q.shape[-2], k.shape[-2]
    return _attend(q, k, v, causal, 1.0 / math.sqrt(q.shape[-1]),
                   allowed=_top_left(Tq, Tk).triu())


@mistake("scaled_dot_product_attention",
         "mask aligned to the first key, not the last (wrong after a KV cache)",
         hint="with fewer queries than keys, query i sits at position k_seq - q_seq + i: shift "
              "the mask's diagonal by the number of cached keys")
def sdpa_top_left_mask(q, k, v, causal=True):
    return _attend(q, k, v, causal, 1.0 / math.sqrt(q.shape[-1]),
                   allowed=_top_left(q.shape[-2], k.shape[-2]))


@mistake("scaled_dot_product_attention",
         "mask applied after the softmax: rows no longer sum to 1",
         hint="mask the scores with -inf before the softmax, so the allowed weights renormalise")
def sdpa_mask_after_softmax(q, k, v, causal=True):
    w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    if causal:
        w = w * offset_causal_mask(q.shape[-2], k.shape[-2])
    return w @ v


# --- repeat_kv -----------------------------------------------------------------------------------


@mistake("repeat_kv", "tiled order (x.repeat, or expanding as (n_rep, kv_heads)): heads come "
                      "out 0, 1, 2, 0, 1, 2, so head h reads h % kv_heads",
         hint="each kv head is repeated n_rep times in a row: put the new axis after the kv-head "
              "axis before merging them")
def repeat_kv_tiled(x, n_rep):
    return x.repeat(1, 1, n_rep, 1)


@mistake("repeat_kv", "repeated along the sequence dim",
         hint="heads are dim 2 of (batch, seq, kv_heads, head_dim); the sequence is dim 1")
def repeat_kv_along_seq(x, n_rep):
    return x.repeat_interleave(n_rep, dim=1)


@mistake("repeat_kv", "repeated along head_dim",
         hint="heads are dim 2 of (batch, seq, kv_heads, head_dim); head_dim is the last")
def repeat_kv_along_head_dim(x, n_rep):
    return x.repeat_interleave(n_rep, dim=3)


# --- tiled_attention -----------------------------------------------------------------------------


def _tiled(q, k, v, block_size, causal=True, rescale_numer=True, rescale_denom=True,
           use_max=True, keep_tail=True, scale=None):
    Tq, Tk, D = q.shape[-2], k.shape[-2], q.shape[-1]
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    m = torch.full(q.shape[:-1] + (1,), float("-inf"), dtype=q.dtype)
    denom = torch.zeros_like(m)
    numer = torch.zeros_like(q)
    q_pos = torch.arange(Tq)[:, None] + (Tk - Tq)
    stop = Tk if keep_tail else Tk - Tk % block_size
    for start in range(0, stop, block_size):
        kb, vb = k[..., start:start + block_size, :], v[..., start:start + block_size, :]
        s = q @ kb.transpose(-2, -1) * scale
        if causal:
            k_pos = torch.arange(start, start + kb.shape[-2])[None, :]
            s = s.masked_fill(k_pos > q_pos, float("-inf"))
        if not use_max:
            p = s.exp()
            denom, numer = denom + p.sum(-1, keepdim=True), numer + p @ vb
            continue
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        m_safe = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
        p = (s - m_safe).exp()
        corr = (m - m_safe).exp()
        denom = (denom * corr if rescale_denom else denom) + p.sum(dim=-1, keepdim=True)
        numer = (numer * corr if rescale_numer else numer) + p @ vb
        m = m_new
    return numer / denom


@mistake("tiled_attention", "running denominator not rescaled when the running max changes",
         hint="the sum of weights so far was computed against the old max: when a block raises "
              "the max, rescale it by the same factor as the numerator before adding the block")
def tiled_no_denom_rescale(q, k, v, block_size, causal=True):
    return _tiled(q, k, v, block_size, causal, rescale_denom=False)


@mistake("tiled_attention", "running numerator not rescaled when the running max changes",
         hint="the weighted sum of values so far was computed against the old max: when a block "
              "raises the max, rescale it by the same factor as the denominator")
def tiled_no_numer_rescale(q, k, v, block_size, causal=True):
    return _tiled(q, k, v, block_size, causal, rescale_numer=False)


@mistake("tiled_attention", "neither running sum rescaled when the running max changes",
         hint="both running sums were computed against the old max; both need the same "
              "correction factor before a block's share is added")
def tiled_no_rescale(q, k, v, block_size, causal=True):
    return _tiled(q, k, v, block_size, causal, rescale_numer=False, rescale_denom=False)


@mistake("tiled_attention", "no running max: exp of the raw scores overflows",
         hint="keep a running row max and exponentiate scores relative to it, never raw scores")
def tiled_no_max(q, k, v, block_size, causal=True):
    return _tiled(q, k, v, block_size, causal, use_max=False)


@mistake("tiled_attention", "the last, shorter block of keys dropped",
         hint="when block_size does not divide the number of keys, the last block is shorter; "
              "it still counts")
def tiled_drops_tail(q, k, v, block_size, causal=True):
    return _tiled(q, k, v, block_size, causal, keep_tail=False)


@mistake("tiled_attention", "scores not scaled by 1/sqrt(d)",
         hint="each block's scores are divided by the square root of head_dim, as in the naive "
              "version")
def tiled_unscaled(q, k, v, block_size, causal=True):
    return _tiled(q, k, v, block_size, causal, scale=1.0)


@mistake("tiled_attention", "causal flag ignored: never masks",
         hint="with causal=True, keys after the query's position get -inf in every block")
def tiled_never_masks(q, k, v, block_size, causal=True):
    return _tiled(q, k, v, block_size, False)


@mistake("tiled_attention", "right numbers, but through the full score matrix",
         hint="compute scores one block of keys at a time; never all keys at once")
def tiled_materialises(q, k, v, block_size, causal=True):
    return scaled_dot_product_attention(q, k, v, causal)
