"""Training arithmetic: the learning-rate schedule (linear warmup, cosine decay to 10%), global
gradient-norm clipping, AdamW (one step written out, and the optimizer the trainer uses), and
the cross-entropy that skips padding.

The written-out functions are pure (they return new tensors and never touch their inputs) and
equal PyTorch's own (`clip_grad_norm_`, `torch.optim.AdamW`, `F.cross_entropy`), as
tests/library/test_optim.py checks; the trainer uses PyTorch's, the course explains these.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn


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


def global_grad_norm(grads: Sequence[Tensor]) -> Tensor:
    """The L2 norm of all gradients taken as one vector: sqrt of the sum of every squared entry.

    Computed as the norm of the per-tensor norms, as torch.nn.utils.clip_grad_norm_ does, so the
    two agree to the last bit.
    """
    if len(grads) == 0:
        raise ValueError("global_grad_norm needs at least one gradient tensor")
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def clip_by_global_norm(grads: Sequence[Tensor], max_norm: float) -> tuple[Tensor, ...]:
    """The gradients scaled by one common factor so that their global norm is at most max_norm.

    One factor for all tensors keeps the update's direction; clipping each tensor on its own
    would change it. Gradients already inside the ball are returned unscaled (factor 1, never
    above). The 1e-6 in the factor is PyTorch's, and keeps a zero gradient finite.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    total = global_grad_norm(grads)
    factor = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    return tuple(g * factor.to(g.dtype) for g in grads)


def adamw_step(
    param: Tensor, grad: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, step: int, lr: float,
    betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
) -> tuple[Tensor, Tensor, Tensor]:
    """One AdamW update; returns (new param, new exp_avg, new exp_avg_sq), inputs untouched.

    `step` counts updates from 1 (this one included), as torch.optim.AdamW's state does. The
    decay is decoupled (Loshchilov & Hutter): the weights shrink by lr * weight_decay directly,
    outside the adaptive step, instead of weight_decay * param joining the gradient (that would
    be L2, which Adam divides by sqrt(v) like any gradient). Both moments are bias-corrected:
    they start at 0, so early averages are too small by 1 - beta^step.
    """
    if step < 1:
        raise ValueError(f"step counts updates from 1, got {step}")
    beta1, beta2 = betas
    exp_avg = beta1 * exp_avg + (1 - beta1) * grad
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad * grad
    m_hat = exp_avg / (1 - beta1 ** step)
    denom = (exp_avg_sq / (1 - beta2 ** step)).sqrt() + eps
    new_param = param * (1 - lr * weight_decay) - lr * m_hat / denom
    return new_param, exp_avg, exp_avg_sq


def masked_cross_entropy(logits: Tensor, targets: Tensor, ignore_index: int = -100) -> Tensor:
    """Mean cross-entropy over the positions whose target is not ignore_index.

    logits (..., V), targets (...) of class ids. Padding and prompt positions carry
    ignore_index: they add nothing to the sum and are not counted in the mean's denominator,
    so a batch's loss does not depend on how much padding it has. log-softmax subtracts the
    row maximum first, so large logits do not overflow. All positions ignored gives NaN (0/0),
    as F.cross_entropy does.
    """
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} need targets of shape "
                         f"{tuple(logits.shape[:-1])}, got {tuple(targets.shape)}")
    logits = logits.reshape(-1, logits.shape[-1]).float()
    targets = targets.reshape(-1)
    keep = targets != ignore_index
    shifted = logits - logits.max(-1, keepdim=True).values
    log_probs = shifted - shifted.exp().sum(-1, keepdim=True).log()
    picked = log_probs.gather(-1, torch.where(keep, targets, 0)[:, None])[:, 0]
    return -(picked * keep).sum() / keep.sum()


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
