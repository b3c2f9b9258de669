"""Lesson 06 exercises: the transformer block, and the size of the whole model.

Replace each `raise NotImplementedError` with your code. Check your work with
`pytest -m exercise lessons/06_transformer_block` (seconds); claim 1 then runs a whole model
through your block. The README explains what each function must do and why.
"""
import torch  # noqa: F401  (you will need it)
from torch import Tensor

from minimind.config import ModelConfig
from minimind.model import MiniMindBlock

REFERENCE = "minimind.model"  # where the answers live; peek only when stuck


def transformer_block(x: Tensor, block: MiniMindBlock, cos: Tensor, sin: Tensor) -> Tensor:
    """One Pre-LN MiniMind block, (B, T, C) -> (B, T, C), built from the block's own modules.

    Use block.input_layernorm, block.self_attn, block.post_attention_layernorm and block.mlp,
    in that order: h = x + attention(norm1(x)), then out = h + mlp(norm2(h)).
    block.self_attn(h, cos, sin) returns a pair (output, kv_cache); keep the output.
    cos and sin are the RoPE tables for these T positions; pass them to the attention.
    """
    raise NotImplementedError


def count_parameters(config: ModelConfig) -> int:
    """The number of parameters of MiniMindForCausalLM(config), from the config alone.

    Count, with C = hidden_size and no biases anywhere except LayerNorm's:
    - the token embedding (vocab x C), and lm_head (C x vocab) unless tie_word_embeddings;
    - learned position embeddings (max_position_embeddings x C) when position == "learned";
    - per layer: q_proj and o_proj (C x heads*head_dim), k_proj and v_proj
      (C x kv_heads*head_dim), the FFN (SwiGLU has 3 matrices C x intermediate_size, GELU and
      ReLU 2, "none" 0) and two norms;
    - with use_moe, the FFN is (n_routed_experts + n_shared_experts) SwiGLU experts plus a
      router of n_routed_experts x C;
    - one final norm. RMSNorm has C weights, LayerNorm C weights and C biases, "none" nothing.
    """
    raise NotImplementedError
