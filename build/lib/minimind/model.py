"""The MiniMind decoder: embedding, N blocks (norm, attention, norm, FFN), final norm, LM head.

Parameter names match MiniMind and Hugging Face Llama (`model.layers.{i}.self_attn.q_proj.weight`,
...), so a state dict moves between them by name. Config switches (norm kind and position,
position encoding, FFN kind, residuals, causality, MoE) each change one thing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minimind.attention import Attention, KVCache
from minimind.config import ModelConfig
from minimind.ffn import FeedForward, MoEFeedForward
from minimind.norm import make_norm, post_norm_residual, pre_norm_residual
from minimind.rope import rope_frequencies_for


def scaled_init_std(base_std: float, n_layers: int) -> float:
    """GPT-2's init for projections that write into the residual stream: base / sqrt(2 * L).

    Each of the 2L residual branches (attention and FFN per layer) adds a roughly independent
    update, so the stream's variance grows like 2L * std^2; dividing std by sqrt(2L) keeps it O(1).
    """
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    return base_std / math.sqrt(2 * n_layers)


def residual_stack(
    x: Tensor, layers: Sequence[Callable[[Tensor], Tensor]], residual: bool = True
) -> Tensor:
    """Apply sublayers in order, as x = x + f(x) with the skip connection, or x = f(x) without."""
    for i, layer in enumerate(layers):
        out = layer(x)
        if residual and out.shape != x.shape:
            # Broadcasting would silently add a wrong-shaped update to the stream.
            raise ValueError(f"layer {i} returned shape {tuple(out.shape)}, but the skip "
                             f"connection adds it to the stream of shape {tuple(x.shape)}")
        x = x + out if residual else out
    return x


class MiniMindBlock(nn.Module):
    """One transformer block. Pre-LN: x + attn(norm(x)), then h + mlp(norm(h))."""

    def __init__(self, layer_id: int, config: ModelConfig):
        super().__init__()
        self.layer_id = layer_id
        self.config = config
        self.input_layernorm = make_norm(config)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = make_norm(config)
        if config.ffn == "none":
            self.mlp = None
        else:
            self.mlp = MoEFeedForward(config) if config.use_moe else FeedForward(config)

    def _sublayer(self, x: Tensor, f: Callable[[Tensor], Tensor], norm: nn.Module) -> Tensor:
        """Lesson 01's norm placements; without residuals (lesson 05's ablation) the skip path
        is simply gone."""
        pre = self.config.norm_position == "pre"
        if self.config.residual:
            return pre_norm_residual(x, f, norm) if pre else post_norm_residual(x, f, norm)
        return f(norm(x)) if pre else norm(f(x))

    def forward(
        self, x: Tensor, cos: Tensor | None, sin: Tensor | None,
        past_kv: KVCache | None = None, use_cache: bool = False,
    ) -> tuple[Tensor, KVCache | None]:
        present: list[KVCache | None] = [None]

        def attend(h: Tensor) -> Tensor:
            out, present[0] = self.self_attn(h, cos, sin, past_kv, use_cache)
            return out

        h = self._sublayer(x, attend, self.input_layernorm)
        if self.mlp is not None:
            h = self._sublayer(h, self.mlp, self.post_attention_layernorm)
        return h, present[0]


@dataclass
class CausalLMOutput:
    logits: Tensor  # (B, T, vocab)
    loss: Tensor | None = None  # cross entropy (+ MoE aux loss) when targets are given
    aux_loss: Tensor | None = None  # MoE load-balancing loss, zero for dense models
    past_key_values: list[KVCache] | None = None  # per layer, when use_cache=True
    hidden_states: list[Tensor] = field(default_factory=list)  # residual stream per block


class MiniMindModel(nn.Module):
    """Embeddings and blocks; `model.` in the state dict."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        if config.position == "learned":
            self.embed_positions = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(
            MiniMindBlock(i, config) for i in range(config.num_hidden_layers)
        )
        self.norm = make_norm(config)
        if config.position == "rope":
            cos, sin = rope_frequencies_for(config)
            # Not persistent: derived from the config, and absent from MiniMind's checkpoints.
            self.register_buffer("freqs_cos", cos, persistent=False)
            self.register_buffer("freqs_sin", sin, persistent=False)

    def forward(
        self, input_ids: Tensor, past_key_values: list[KVCache] | None = None,
        use_cache: bool = False, output_hidden_states: bool = False,
    ) -> tuple[Tensor, list[KVCache] | None, list[Tensor]]:
        B, T = input_ids.shape
        start = past_key_values[0][0].shape[1] if past_key_values else 0
        if start + T > self.config.max_position_embeddings:
            raise ValueError(
                f"sequence of {start + T} positions exceeds max_position_embeddings="
                f"{self.config.max_position_embeddings}"
            )
        x = self.embed_tokens(input_ids)  # (B, T, C)
        if self.config.position == "learned":
            x = x + self.embed_positions(torch.arange(start, start + T, device=x.device))
        x = self.dropout(x)
        cos = sin = None
        if self.config.position == "rope":
            cos, sin = self.freqs_cos[start:start + T], self.freqs_sin[start:start + T]
        presents: list[KVCache] = []
        hidden: list[Tensor] = []
        for i, layer in enumerate(self.layers):
            past = past_key_values[i] if past_key_values else None
            x, present = layer(x, cos, sin, past, use_cache)
            if use_cache:
                presents.append(present)
            if output_hidden_states:
                hidden.append(x)
        return self.norm(x), (presents if use_cache else None), hidden


class MiniMindForCausalLM(nn.Module):
    """The language model: `model.*` plus `lm_head`, tied to the embedding by default."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.model = MiniMindModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight  # one tensor, two names
        self.apply(self._init_weights)
        # Projections that write into the residual stream get the depth-scaled std.
        out_std = scaled_init_std(config.initializer_range, config.num_hidden_layers)
        for name, p in self.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(p, mean=0.0, std=out_std)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(
        self, input_ids: Tensor, targets: Tensor | None = None,
        past_key_values: list[KVCache] | None = None, use_cache: bool = False,
        output_hidden_states: bool = False,
    ) -> CausalLMOutput:
        """Logits for every position; with `targets` (same shape, already shifted) the loss."""
        if input_ids.dim() != 2 or input_ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"input_ids must be an int tensor of shape (batch, seq), got "
                             f"{input_ids.dtype} {tuple(input_ids.shape)}")
        h, presents, hidden = self.model(
            input_ids, past_key_values, use_cache, output_hidden_states
        )
        logits = self.lm_head(h)  # (B, T, vocab)
        aux = sum(
            (layer.mlp.aux_loss for layer in self.model.layers
             if isinstance(layer.mlp, MoEFeedForward)),
            h.new_zeros(()),
        )
        loss = None
        if targets is not None:
            if targets.shape != input_ids.shape:
                raise ValueError(f"targets {tuple(targets.shape)} must match input_ids "
                                 f"{tuple(input_ids.shape)}")
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100
            ) + aux
        return CausalLMOutput(logits, loss, aux, presents, hidden)


def count_parameters(config: ModelConfig) -> int:
    """Parameters of MiniMindForCausalLM(config), from the config alone (dense, no bias)."""
    C, V, L = config.hidden_size, config.vocab_size, config.num_hidden_layers
    D, H, KV, F_ = config.head_dim, config.num_attention_heads, config.num_key_value_heads, \
        config.intermediate_size
    norm = {"rms": C, "layer": 2 * C, "none": 0}[config.norm]
    attn = C * H * D + 2 * C * KV * D + H * D * C  # q, k, v, o
    ffn = {"swiglu": 3 * C * F_, "gelu": 2 * C * F_, "relu": 2 * C * F_, "none": 0}[config.ffn]
    if config.use_moe:
        n = config.n_routed_experts + config.n_shared_experts
        ffn = n * ffn + config.n_routed_experts * C
    per_layer = attn + ffn + 2 * norm
    embed = V * C * (1 if config.tie_word_embeddings else 2)
    pos = config.max_position_embeddings * C if config.position == "learned" else 0
    return embed + pos + L * per_layer + norm


def transformer_block(x: Tensor, block: MiniMindBlock, cos: Tensor, sin: Tensor) -> Tensor:
    """One Pre-LN MiniMind block from its own modules: h = x + attn(norm(x)); h + mlp(norm(h))."""
    h = pre_norm_residual(x, lambda t: block.self_attn(t, cos, sin)[0], block.input_layernorm)
    return pre_norm_residual(h, block.mlp, block.post_attention_layernorm)
