"""Lesson 03 exercises: attention. Replace each `raise NotImplementedError` with your code.

Check your work with `pytest -m exercise lessons/03_attention` (seconds). The README explains
what each function must do and why; `pytest --solutions` shows the reference passing. Once your
attention works, `pytest lessons/03_attention --benchmark-only` times it against PyTorch's.
"""
import torch  # noqa: F401  (you will need it)
from torch import Tensor

REFERENCE = "minimind.attention"  # where the answers live; peek only when stuck


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along `dim`, computed so that logits of 1e4 do not overflow.

    Subtract each slice's own maximum first (softmax(x) == softmax(x - c) for any constant c),
    so the largest exponent is exp(0) = 1. Same shape as x.
    """
    raise NotImplementedError


def causal_mask(seq_len: int) -> Tensor:
    """(seq_len, seq_len) torch.bool, True where query i may attend to key j: j <= i.

    True means "allowed". Every position sees itself and the past, never the future.
    """
    raise NotImplementedError


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, causal: bool = True) -> Tensor:
    """softmax(q k^T / sqrt(head_dim)) v, for q, k, v of shape (batch, heads, seq, head_dim).

    With causal=True, scores of keys after the query are set to -inf before the softmax. When q
    has fewer positions than k (new tokens after a KV cache), query i sits at position
    k_seq - q_seq + i: it sees every cached key and the new ones up to itself. Returns
    (batch, heads, q_seq, head_dim). Use your softmax and causal_mask if you like.
    """
    raise NotImplementedError


def repeat_kv(x: Tensor, n_rep: int) -> Tensor:
    """Grouped-query attention: (batch, seq, kv_heads, head_dim) -> (batch, seq, kv_heads * n_rep,
    head_dim), where query head h reads key/value head h // n_rep.

    So kv head 0 is repeated n_rep times in a row, then kv head 1, ... (MiniMind's layout: heads
    on dim 2, before the transpose to (batch, heads, seq, head_dim)).
    """
    raise NotImplementedError


def tiled_attention(
    q: Tensor, k: Tensor, v: Tensor, block_size: int, causal: bool = True
) -> Tensor:
    """The same result as scaled_dot_product_attention, in one pass over blocks of keys.

    Never build the full (q_seq x k_seq) score matrix: for each block of `block_size` keys (the
    last block may be shorter), compute that block's scores, raise the running row max m,
    rescale the running numerator (sum of p v) and denominator (sum of p) by exp(m_old - m_new),
    and add the block's share. Divide at the end. This is the online softmax FlashAttention is
    built on. The causal rule is the one of scaled_dot_product_attention.
    """
    raise NotImplementedError
