"""Causal self-attention with grouped key/value heads, and the naive references it is tested on.

The model calls PyTorch's fused `scaled_dot_product_attention` (config.flash_attn) or the naive
reference below; a test proves the two equal. `tiled_attention` is the online-softmax algorithm
that FlashAttention is built on, written in plain PyTorch so it can be read.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minimind.config import ModelConfig
from minimind.rope import apply_rope

KVCache = tuple[Tensor, Tensor]  # (keys, values), each (batch, seq_so_far, kv_heads, head_dim)


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """exp(x - max) / sum(exp(x - max)): subtracting the max keeps exp from overflowing."""
    shifted = x - x.amax(dim=dim, keepdim=True)
    exp = shifted.exp()
    return exp / exp.sum(dim=dim, keepdim=True)


def causal_mask(seq_len: int) -> Tensor:
    """(seq_len, seq_len) bool, True where query i may attend to key j, i.e. j <= i."""
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    return torch.ones(seq_len, seq_len, dtype=torch.bool).tril()


def offset_causal_mask(q_len: int, k_len: int) -> Tensor:
    """Causal mask for q_len new queries that follow k_len - q_len cached positions."""
    return torch.ones(q_len, k_len, dtype=torch.bool).tril(diagonal=k_len - q_len)


def check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    """Raise ValueError unless q, k, v are (batch, heads, seq, head_dim) and agree."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ValueError(f"{name} must be (batch, heads, seq, head_dim), got shape "
                             f"{tuple(t.shape)}")
        if not t.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if q.shape[:2] != k.shape[:2] or k.shape[:2] != v.shape[:2]:
        raise ValueError(f"q, k, v must share (batch, heads): {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)} (repeat_kv the kv heads first)")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"q and k need the same head_dim and k and v the same seq: "
                         f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    if q.shape[-2] > k.shape[-2]:
        raise ValueError(f"more queries ({q.shape[-2]}) than keys ({k.shape[-2]})")


def attention_weights(q: Tensor, k: Tensor, causal: bool = True) -> Tensor:
    """softmax(q k^T / sqrt(d)) over the keys: (batch, heads, q_seq, k_seq), rows sum to 1.

    With fewer queries than keys (new tokens after a cached prefix) query i sits at position
    k_seq - q_seq + i, so it sees every cached key and the new keys up to itself.
    """
    Tq, Tk, D = q.shape[-2], k.shape[-2], q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(D)  # (B, H, Tq, Tk)
    if causal:
        scores = scores.masked_fill(~offset_causal_mask(Tq, Tk).to(q.device), float("-inf"))
    return softmax(scores, dim=-1)


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, causal: bool = True) -> Tensor:
    """softmax(q k^T / sqrt(d)) v for (batch, heads, seq, head_dim), materialising the scores."""
    check_qkv(q, k, v)
    return attention_weights(q, k, causal) @ v


def repeat_kv(x: Tensor, n_rep: int) -> Tensor:
    """(batch, seq, kv_heads, head_dim) -> (batch, seq, kv_heads * n_rep, head_dim).

    Query head h reads key/value head h // n_rep, so each kv head is repeated n_rep times in a row.
    """
    if x.dim() != 4:
        raise ValueError(f"x must be (batch, seq, kv_heads, head_dim), got shape {tuple(x.shape)}")
    if n_rep < 1:
        raise ValueError(f"n_rep must be >= 1, got {n_rep}")
    if n_rep == 1:
        return x
    B, T, KV, D = x.shape
    return x[:, :, :, None, :].expand(B, T, KV, n_rep, D).reshape(B, T, KV * n_rep, D)


def tiled_attention(
    q: Tensor, k: Tensor, v: Tensor, block_size: int, causal: bool = True
) -> Tensor:
    """Attention in one pass over key blocks with a running max and sum (online softmax).

    Holds at most (seq x block_size) scores at a time. For every block of keys the running
    max m is raised, the running numerator and denominator are rescaled by exp(m_old - m_new),
    and the block's contribution is added. Same inputs and output as the naive version.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    check_qkv(q, k, v)
    Tq, Tk, D = q.shape[-2], k.shape[-2], q.shape[-1]
    scale = 1.0 / math.sqrt(D)
    m = torch.full(q.shape[:-1] + (1,), float("-inf"), dtype=q.dtype, device=q.device)
    denom = torch.zeros_like(m)  # (B, H, Tq, 1)
    numer = torch.zeros_like(q)  # (B, H, Tq, D)
    q_pos = torch.arange(Tq, device=q.device)[:, None] + (Tk - Tq)
    for start in range(0, Tk, block_size):
        kb, vb = k[..., start:start + block_size, :], v[..., start:start + block_size, :]
        s = q @ kb.transpose(-2, -1) * scale  # (B, H, Tq, block)
        if causal:
            k_pos = torch.arange(start, start + kb.shape[-2], device=q.device)[None, :]
            s = s.masked_fill(k_pos > q_pos, float("-inf"))
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        # Rows that have seen only masked keys keep m = -inf; use 0 there to avoid inf - inf.
        m_safe = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
        p = (s - m_safe).exp()
        correction = (m - m_safe).exp()
        denom = denom * correction + p.sum(dim=-1, keepdim=True)
        numer = numer * correction + p @ vb
        m = m_new
    return numer / denom


class Attention(nn.Module):
    """Multi-head attention with grouped key/value heads and RoPE, MiniMind's `self_attn`."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        H, KV, D = config.num_attention_heads, config.num_key_value_heads, config.head_dim
        self.n_heads, self.n_kv_heads, self.head_dim, self.n_rep = H, KV, D, config.n_rep
        self.q_proj = nn.Linear(config.hidden_size, H * D, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, KV * D, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, KV * D, bias=False)
        self.o_proj = nn.Linear(H * D, config.hidden_size, bias=False)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(
        self, x: Tensor, cos: Tensor | None, sin: Tensor | None,
        past_kv: KVCache | None = None, use_cache: bool = False,
    ) -> tuple[Tensor, KVCache | None]:
        B, T, C = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim)  # (B, T, H, D)
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim)  # (B, T, KV, D)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim)
        if cos is not None:  # cos/sin arrive already sliced to this chunk's positions
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if past_kv is not None:
            k = torch.cat([past_kv[0], k], dim=1)  # (B, T_past + T, KV, D)
            v = torch.cat([past_kv[1], v], dim=1)
        present = (k, v) if use_cache else None
        q = q.transpose(1, 2)  # (B, H, T, D)
        k = repeat_kv(k, self.n_rep).transpose(1, 2)  # (B, H, T_k, D)
        v = repeat_kv(v, self.n_rep).transpose(1, 2)
        causal = self.config.causal
        if self.config.flash_attn:
            dropout = self.config.dropout if self.training else 0.0
            mask = None
            if causal and k.shape[2] != T:  # a chunk after a cached prefix
                mask = offset_causal_mask(T, k.shape[2]).to(x.device)
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=dropout,
                is_causal=causal and mask is None and T > 1,
            )
        else:
            y = self.attn_dropout(attention_weights(q, k, causal)) @ v  # dropout on the weights
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, H * D)
        return self.resid_dropout(self.o_proj(y)), present
