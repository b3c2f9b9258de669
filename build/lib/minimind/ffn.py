"""The feed-forward network: SwiGLU (Llama, MiniMind) or a classic two-matrix MLP, and MoE.

Weights are stored as nn.Linear stores them, (out_features, in_features), and named as in
MiniMind / Hugging Face Llama: gate_proj, up_proj, down_proj.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minimind.config import ModelConfig, swiglu_intermediate_size


def silu(x: Tensor) -> Tensor:
    """x * sigmoid(x), the 'swish' gate."""
    return x * torch.sigmoid(x)


def swiglu(x: Tensor, w_gate: Tensor, w_up: Tensor, w_down: Tensor) -> Tensor:
    """down(silu(gate(x)) * up(x)), weights as (out_features, in_features).

    x (..., C), w_gate and w_up (H, C), w_down (C_out, H) -> (..., C_out). The gate decides, per
    hidden unit, how much of the linear `up` feature passes: a learned, input-dependent mask.
    """
    C = x.shape[-1]
    H = w_gate.shape[0]
    if (w_gate.dim() != 2 or w_up.shape != w_gate.shape or w_gate.shape[1] != C
            or w_down.dim() != 2 or w_down.shape[1] != H):
        raise ValueError(
            f"swiglu wants x (..., C), w_gate and w_up (H, C), w_down (C_out, H); got x "
            f"{tuple(x.shape)}, w_gate {tuple(w_gate.shape)}, w_up {tuple(w_up.shape)}, "
            f"w_down {tuple(w_down.shape)}"
        )
    return (silu(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T


def intermediate_size(hidden_size: int, multiple_of: int = 64) -> int:
    """MiniMind's FFN width: 8/3 of hidden rounded up to a multiple of 64 (1408 for 512).

    Three matrices of 8/3 * d columns hold as many weights as the classic MLP's two of 4 * d;
    the rounding keeps matrix shapes friendly to hardware tiles.
    """
    for name, value in (("hidden_size", hidden_size), ("multiple_of", multiple_of)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    return swiglu_intermediate_size(hidden_size, multiple_of)


class FeedForward(nn.Module):
    """SwiGLU when config.ffn == "swiglu", otherwise down(act(up(x))) with GELU or ReLU."""

    def __init__(self, config: ModelConfig, intermediate: int | None = None):
        super().__init__()
        d, h = config.hidden_size, intermediate or config.intermediate_size
        self.kind = config.ffn
        if self.kind == "swiglu":
            self.gate_proj = nn.Linear(d, h, bias=False)
        self.up_proj = nn.Linear(d, h, bias=False)
        self.down_proj = nn.Linear(h, d, bias=False)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "swiglu":
            hidden = F.silu(self.gate_proj(x)) * self.up_proj(x)
        elif self.kind == "gelu":
            hidden = F.gelu(self.up_proj(x))
        else:
            hidden = F.relu(self.up_proj(x))
        return self.dropout(self.down_proj(hidden))


class MoEGate(nn.Module):
    """The router: softmax over experts, keep the top k, optionally renormalise them."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.weight = nn.Parameter(torch.empty(config.n_routed_experts, config.hidden_size))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """x (N, C) -> top-k indices (N, k), weights (N, k), aux loss, and all probs (N, E)."""
        cfg = self.config
        probs = F.softmax(x @ self.weight.T, dim=-1)  # (N, E)
        topk_weight, topk_idx = probs.topk(cfg.num_experts_per_tok, dim=-1)  # (N, k)
        if cfg.norm_topk_prob and cfg.num_experts_per_tok > 1:
            topk_weight = topk_weight / (topk_weight.sum(dim=-1, keepdim=True) + 1e-20)
        aux = x.new_zeros(())
        if self.training and cfg.aux_loss_alpha > 0:
            # Switch-style balance loss: E * sum_i f_i * P_i, minimal (=k) when load is uniform.
            E = cfg.n_routed_experts
            load = F.one_hot(topk_idx, E).float().sum(dim=1).mean(dim=0)  # f_i: picks / token
            aux = cfg.aux_loss_alpha * E * (load * probs.mean(dim=0)).sum()
        return topk_idx, topk_weight, aux, probs


class MoEFeedForward(nn.Module):
    """Routed experts plus always-on shared experts; only the chosen experts run per token."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.experts = nn.ModuleList(FeedForward(config) for _ in range(config.n_routed_experts))
        self.gate = MoEGate(config)
        self.shared_experts = nn.ModuleList(
            FeedForward(config) for _ in range(config.n_shared_experts)
        )
        self.aux_loss = torch.zeros(())
        self.last_topk_idx: Tensor | None = None  # kept for load measurements

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        flat = x.reshape(B * T, C)  # (N, C)
        topk_idx, topk_weight, self.aux_loss, _ = self.gate(flat)
        self.last_topk_idx = topk_idx.detach()
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            token, slot = (topk_idx == e).nonzero(as_tuple=True)
            if token.numel():
                out.index_add_(0, token, expert(flat[token]) * topk_weight[token, slot, None])
        for expert in self.shared_experts:
            out = out + expert(flat)
        return out.view(B, T, C)


def dense_moe_reference(moe: MoEFeedForward, x: Tensor) -> Tensor:
    """Run every expert on every token and mask by the router's choice: slow, obviously right."""
    B, T, C = x.shape
    flat = x.reshape(B * T, C)
    topk_idx, topk_weight, _, _ = moe.gate(flat)
    all_out = torch.stack([expert(flat) for expert in moe.experts], dim=1)  # (N, E, C)
    weights = torch.zeros(flat.shape[0], len(moe.experts), dtype=x.dtype)
    weights.scatter_(1, topk_idx, topk_weight)  # (N, E), zero for experts not chosen
    out = (all_out * weights[..., None]).sum(dim=1)
    for expert in moe.shared_experts:
        out = out + expert(flat)
    return out.view(B, T, C)
