"""The optimizer and learning-rate schedule: AdamW, linear warmup, cosine decay to 10%."""
from __future__ import annotations

import math

import torch
from torch import nn


def lr_at(step: int, total_steps: int, peak_lr: float, warmup: int = 0,
          min_ratio: float = 0.1) -> float:
    """Learning rate for 0-based `step`: linear warmup to peak, then cosine to min_ratio * peak.

    MiniMind decays as lr * (0.1 + 0.45 * (1 + cos(pi * t / T))): from peak at t = 0 to 10% at
    t = T. Warmup (MiniMind has none; nanoGPT uses it) ramps from peak / warmup, never from 0,
    so the first step already moves the weights.
    """
    if step < warmup:
        return peak_lr * (step + 1) / warmup
    progress = min((step - warmup) / max(total_steps - warmup, 1), 1.0)
    return peak_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices and embeddings (dim >= 2); never norms' gains or biases (dim < 2).

    Shrinking a norm gain or a bias toward 0 is not regularisation, it changes the function.
    Tied weights appear once, since `parameters()` deduplicates them.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def make_optimizer(model: nn.Module, lr: float, weight_decay: float = 0.1,
                   betas: tuple[float, float] = (0.9, 0.95)) -> torch.optim.AdamW:
    """AdamW over `param_groups`; the fused CUDA kernel when the weights live on a GPU."""
    fused = next(model.parameters()).device.type == "cuda"
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas,
                             fused=fused or None)
