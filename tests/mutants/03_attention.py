"""Plausible wrong answers to lesson 03; tests/test_mutants.py proves each one is caught."""
import math

import torch

from minimind.attention import offset_causal_mask, scaled_dot_product_attention
from minimind.course import mutant

# --- softmax -------------------------------------------------------------------------------------


@mutant("softmax", "max not subtracted (exp overflows for logits of 1e4)")
def softmax_no_max(x, dim=-1):
    e = x.exp()
    return e / e.sum(dim=dim, keepdim=True)


@mutant("softmax", "one max over the whole tensor instead of per row")
def softmax_global_max(x, dim=-1):
    e = (x - x.max()).exp()
    return e / e.sum(dim=dim, keepdim=True)


@mutant("softmax", "dim argument ignored (always the last dim)")
def softmax_ignores_dim(x, dim=-1):
    e = (x - x.amax(dim=-1, keepdim=True)).exp()
    return e / e.sum(dim=-1, keepdim=True)


@mutant("softmax", "normalised by the sum over the whole tensor")
def softmax_sum_everything(x, dim=-1):
    e = (x - x.amax(dim=dim, keepdim=True)).exp()
    return e / e.sum()


@mutant("softmax", "min subtracted instead of max")
def softmax_subtracts_min(x, dim=-1):
    e = (x - x.amin(dim=dim, keepdim=True)).exp()
    return e / e.sum(dim=dim, keepdim=True)


# --- causal_mask ---------------------------------------------------------------------------------


@mutant("causal_mask", "upper triangle: the future is allowed")
def mask_triu(seq_len):
    return torch.ones(seq_len, seq_len, dtype=torch.bool).triu()


@mutant("causal_mask", "diagonal excluded: a position cannot see itself")
def mask_strict(seq_len):
    return torch.ones(seq_len, seq_len, dtype=torch.bool).tril(-1)


@mutant("causal_mask", "inverted: True where attention is blocked")
def mask_inverted(seq_len):
    return ~torch.ones(seq_len, seq_len, dtype=torch.bool).tril()


@mutant("causal_mask", "float 0/1 mask instead of bool")
def mask_float(seq_len):
    return torch.ones(seq_len, seq_len).tril()


# --- scaled_dot_product_attention ----------------------------------------------------------------


def _attend(q, k, v, causal, scale, mask_fn=None, dim=-1):
    Tq, Tk = q.shape[-2], k.shape[-2]
    s = q @ k.transpose(-2, -1) * scale
    if causal:
        allowed = mask_fn(Tq, Tk) if mask_fn else offset_causal_mask(Tq, Tk)
        s = s.masked_fill(~allowed, float("-inf"))
    return torch.softmax(s, dim=dim).nan_to_num() @ v


@mutant("scaled_dot_product_attention", "no 1/sqrt(d) scaling")
def sdpa_unscaled(q, k, v, causal=True):
    return _attend(q, k, v, causal, 1.0)


@mutant("scaled_dot_product_attention", "scaled by 1/d instead of 1/sqrt(d)")
def sdpa_scaled_by_d(q, k, v, causal=True):
    return _attend(q, k, v, causal, 1.0 / q.shape[-1])


@mutant("scaled_dot_product_attention", "softmax over the queries (dim=-2)")
def sdpa_softmax_wrong_dim(q, k, v, causal=True):
    return _attend(q, k, v, causal, 1.0 / math.sqrt(q.shape[-1]), dim=-2)


@mutant("scaled_dot_product_attention", "causal flag ignored: never masks")
def sdpa_never_masks(q, k, v, causal=True):
    return _attend(q, k, v, False, 1.0 / math.sqrt(q.shape[-1]))


@mutant("scaled_dot_product_attention", "causal flag ignored: always masks")
def sdpa_always_masks(q, k, v, causal=True):
    return _attend(q, k, v, True, 1.0 / math.sqrt(q.shape[-1]))


@mutant("scaled_dot_product_attention", "mask aligned to the first key (wrong after a KV cache)")
def sdpa_top_left_mask(q, k, v, causal=True):
    def top_left(Tq, Tk):
        return torch.ones(Tq, Tk, dtype=torch.bool).tril()
    return _attend(q, k, v, causal, 1.0 / math.sqrt(q.shape[-1]), mask_fn=top_left)


@mutant("scaled_dot_product_attention", "weights masked after the softmax, not renormalised")
def sdpa_mask_after_softmax(q, k, v, causal=True):
    w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    if causal:
        w = w * offset_causal_mask(q.shape[-2], k.shape[-2])
    return w @ v


# --- repeat_kv -----------------------------------------------------------------------------------


@mutant("repeat_kv", "tiled: head h reads kv head h % kv_heads")
def repeat_kv_tiled(x, n_rep):
    return x.repeat(1, 1, n_rep, 1)


@mutant("repeat_kv", "repeated along the sequence dim")
def repeat_kv_along_seq(x, n_rep):
    return x.repeat_interleave(n_rep, dim=1)


@mutant("repeat_kv", "repeated along head_dim")
def repeat_kv_along_head_dim(x, n_rep):
    return x.repeat_interleave(n_rep, dim=3)


@mutant("repeat_kv", "expanded as (n_rep, kv_heads) before the reshape")
def repeat_kv_wrong_expand_order(x, n_rep):
    B, T, KV, D = x.shape
    return x[:, :, None].expand(B, T, n_rep, KV, D).reshape(B, T, n_rep * KV, D)


# --- tiled_attention -----------------------------------------------------------------------------


def _tiled(q, k, v, block_size, causal=True, rescale_numer=True, rescale_denom=True,
           use_max=True, keep_tail=True, scale=None):
    Tq, Tk, D = q.shape[-2], k.shape[-2], q.shape[-1]
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    m = torch.full(q.shape[:-1] + (1,), float("-inf"))
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


@mutant("tiled_attention", "running numerator not rescaled when the max rises")
def tiled_no_numer_rescale(q, k, v, block_size, causal=True):
    return _tiled(q, k, v, block_size, causal, rescale_numer=False)


@mutant("tiled_attention", "running denominator not rescaled when the max rises")
def tiled_no_denom_rescale(q, k, v, block_size, causal=True):
    return _tiled(q, k, v, block_size, causal, rescale_denom=False)


@mutant("tiled_attention", "no running max: exp of raw scores")
def tiled_no_max(q, k, v, block_size, causal=True):
    return _tiled(q, k, v, block_size, causal, use_max=False)


@mutant("tiled_attention", "the last, shorter block of keys dropped")
def tiled_drops_tail(q, k, v, block_size, causal=True):
    return _tiled(q, k, v, block_size, causal, keep_tail=False)


@mutant("tiled_attention", "scores not scaled by 1/sqrt(d)")
def tiled_unscaled(q, k, v, block_size, causal=True):
    return _tiled(q, k, v, block_size, causal, scale=1.0)


@mutant("tiled_attention", "right answer, but through the full score matrix")
def tiled_materialises(q, k, v, block_size, causal=True):
    return scaled_dot_product_attention(q, k, v, causal)
