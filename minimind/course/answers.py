"""Quiz answers computed from the library's code at check time (named by `compute = ...` and
`verify = ...` in the lessons' quiz.toml files), so that an answer key follows the code.

Number functions return the answer; `verify` functions return the index (from 0) of the right
option of a multiple-choice question, measured by running the library's functions. Each is a
small pure function of the code; none trains anything.
"""
from __future__ import annotations

import math

import torch

from minimind import attention, ffn, norm, rope
from minimind.config import preset
from minimind.model import count_parameters, scaled_init_std


def _params(name: str, **changes: object) -> int:
    return count_parameters(preset(name, **changes))


# --- lesson 01: normalization --------------------------------------------------------------------

def layernorm_extra_parameters() -> int:
    """Parameters minimind2-small would gain with LayerNorm (a bias per norm) instead of RMSNorm."""
    return _params("minimind2-small", norm="layer") - _params("minimind2-small")


def norm_count_minimind2_small() -> int:
    """Norm modules in minimind2-small: two per block and the final one."""
    return 2 * preset("minimind2-small").num_hidden_layers + 1


def shift_invariance_option() -> int:
    """Options: (a) both invariant, (b) LayerNorm only, (c) RMSNorm only, (d) neither."""
    x = torch.linspace(-2.0, 3.0, 16, dtype=torch.float64)[None]
    w, b = torch.ones(16, dtype=torch.float64), torch.zeros(16, dtype=torch.float64)
    shifted = x + 5.0
    rms_same = torch.allclose(norm.rms_norm(x, w), norm.rms_norm(shifted, w))
    ln_same = torch.allclose(norm.layer_norm(x, w, b), norm.layer_norm(shifted, w, b))
    return {(True, True): 0, (False, True): 1, (True, False): 2, (False, False): 3}[
        (rms_same, ln_same)]


def float16_norm_option() -> int:
    """Options: (a) 1.0, (b) inf, (c) 0.0 (the mean of squares overflows), (d) NaN."""
    x = torch.full((1, 4), 300.0, dtype=torch.float16)
    naive = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)  # all in float16
    value = float(naive[0, 0])
    if math.isnan(value):
        return 3
    if math.isinf(value):
        return 1
    return 2 if value == 0.0 else 0


# --- lesson 02: position encoding ----------------------------------------------------------------

def rope_pairs_without_full_turn() -> int:
    """Pairs of a 128-wide head (theta 1e4) that turn less than once within 4096 positions."""
    inv_freq = rope.rope_inv_freq(128, 1e4)
    return int((inv_freq * 4096 < 2 * math.pi).sum())


def ntk_theta_for_4x() -> float:
    """NTK-aware base for 4x the trained length, head_dim 128, theta 1e4."""
    return rope.ntk_scaled_theta(1e4, 4.0, 128)


def rope_score_shift_option() -> int:
    """Options: (a) only on m - n, (b) on m and n separately, (c) only on m."""
    torch.manual_seed(0)
    q = torch.randn(8, dtype=torch.float64)
    k = torch.randn(8, dtype=torch.float64)
    inv_freq = rope.rope_inv_freq(8, 1e4)

    def score(m: int, n: int) -> float:
        def at(x: torch.Tensor, p: int) -> torch.Tensor:
            angles = p * inv_freq
            cos = torch.cat([angles.cos(), angles.cos()])
            sin = torch.cat([angles.sin(), angles.sin()])
            return x * cos + rope.rotate_half(x) * sin
        return float((at(q, m) * at(k, n)).sum())

    relative = math.isclose(score(7, 3), score(107, 103), rel_tol=1e-9)
    return 0 if relative else 1


# --- lesson 03: attention ------------------------------------------------------------------------

def kv_cache_bytes_per_token_fp16() -> int:
    """minimind2-small's KV cache per token in float16: keys and values, every layer."""
    cfg = preset("minimind2-small")
    return 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * 2


def kv_cache_bytes_per_token_fp16_mha() -> int:
    """The same with one key/value head per query head (full multi-head attention)."""
    cfg = preset("minimind2-small")
    return 2 * cfg.num_hidden_layers * cfg.num_attention_heads * cfg.head_dim * 2


def query_heads_of_kv_head_1_option() -> int:
    """Options: (a) 1 and 5, (b) 4, 5, 6 and 7, (c) 2 and 3, (d) 1, 3, 5 and 7."""
    cfg = preset("minimind2-small")
    kv = torch.arange(cfg.num_key_value_heads, dtype=torch.float32).view(1, 1, -1, 1)
    owners = attention.repeat_kv(kv, cfg.n_rep)[0, 0, :, 0]
    heads = tuple(int(h) for h in torch.nonzero(owners == 1).flatten())
    return {(1, 5): 0, (4, 5, 6, 7): 1, (2, 3): 2, (1, 3, 5, 7): 3}.get(heads, -1)


def cached_mask_option() -> int:
    """3 new queries over 8 keys (5 cached): which keys does query 0 see?

    Options: (a) keys 0..5, (b) key 0 only, (c) keys 0..7."""
    mask = attention.offset_causal_mask(3, 8)
    seen = [int(i) for i in torch.nonzero(mask[0]).flatten()]
    return {tuple(range(6)): 0, (0,): 1, tuple(range(8)): 2}.get(tuple(seen), -1)


# --- lesson 04: feed-forward ---------------------------------------------------------------------

def swiglu_parameters_at_96() -> int:
    """A SwiGLU FFN at hidden 96 with its 8/3 width (no rounding): three 96 x 256 matrices."""
    width = 8 * 96 // 3
    block = ffn.FeedForward(preset("tiny", hidden_size=96, num_attention_heads=4,
                                   intermediate_size=width))
    return sum(p.numel() for p in block.parameters())


def gelu_width_matching_swiglu_at_96() -> int:
    """Width of a two-matrix GELU MLP with the same parameters as that SwiGLU."""
    return swiglu_parameters_at_96() // (2 * 96)


def minimind2_small_ffn_width() -> int:
    """MiniMind's FFN width at hidden 512: 8/3 of it, rounded up to a multiple of 64."""
    return ffn.intermediate_size(512)


def silu_odd_part_option() -> int:
    """Options: (a) 0, (b) x, (c) sigmoid(x), (d) 2x."""
    x = torch.linspace(-6, 6, 101, dtype=torch.float64)
    diff = ffn.silu(x) - ffn.silu(-x)
    for index, candidate in ((0, torch.zeros_like(x)), (1, x), (2, torch.sigmoid(x)), (3, 2 * x)):
        if torch.allclose(diff, candidate):
            return index
    return -1


# --- lesson 05: residual connections -------------------------------------------------------------

def minimind2_down_proj_std() -> float:
    """The init std of minimind2's residual-writing projections: 0.02 / sqrt(2 * 16)."""
    cfg = preset("minimind2")
    return scaled_init_std(cfg.initializer_range, cfg.num_hidden_layers)


def unscaled_stream_variance_ratio() -> int:
    """How many times larger the stream's added variance at init is with plain 0.02 (2L)."""
    cfg = preset("minimind2")
    scaled = scaled_init_std(cfg.initializer_range, cfg.num_hidden_layers)
    return round((cfg.initializer_range / scaled) ** 2)


# --- lesson 06: the transformer block ------------------------------------------------------------

def tied_embedding_saving() -> int:
    """Parameters weight tying saves in minimind2-small: the untied head's V x C."""
    return (_params("minimind2-small", tie_word_embeddings=False)
            - _params("minimind2-small"))


def minimind2_small_parameters() -> int:
    return _params("minimind2-small")


def gqa_saving_per_layer() -> int:
    """Parameters per layer minimind2-small saves with 2 key/value heads instead of 8."""
    cfg = preset("minimind2-small")
    full = _params("minimind2-small", num_key_value_heads=cfg.num_attention_heads)
    return (full - _params("minimind2-small")) // cfg.num_hidden_layers


def kv_cache_flops_per_cached_position_minimind2() -> int:
    """Attention FLOPs per new token per cached position in minimind2: 4 x L x H x D."""
    cfg = preset("minimind2")
    return 4 * cfg.num_hidden_layers * cfg.num_attention_heads * cfg.head_dim
