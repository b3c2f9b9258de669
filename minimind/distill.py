"""Knowledge distillation: a student learns from a teacher's whole next-token distribution.

On the assistant tokens (labels != -100, already shifted as `minimind.sft.pad_batch` gives
them) the loss mixes the hard labels with the teacher's soft targets at temperature T:

    alpha * CE(student, labels) + (1 - alpha) * T^2 * KL(teacher_T || student_T)

with x_T = softmax(logits / T).

The T^2 keeps the soft term's gradient on the scale of the hard term's as T grows (the
softened distributions' gradients shrink like 1/T^2). MiniMind: alpha 0.5, T 1.5.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from minimind.dataset import IGNORE
from minimind.sft import pad_batch, sft_loss

ALPHA, TEMPERATURE = 0.5, 1.5  # MiniMind's


def soft_kl(student_logits: Tensor, teacher_logits: Tensor, mask: Tensor,
            temperature: float = TEMPERATURE) -> Tensor:
    """Mean over masked positions of KL(teacher_T || student_T), summed over the vocabulary."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ in shape")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    s = torch.log_softmax(student_logits.float() / temperature, -1)
    t = torch.log_softmax(teacher_logits.float() / temperature, -1)
    kl = (t.exp() * (t - s)).sum(-1)
    m = mask.to(kl.dtype)
    return (kl * m).sum() / m.sum().clamp(min=1)


def distill_loss(student_logits: Tensor, teacher_logits: Tensor, targets: Tensor,
                 alpha: float = ALPHA, temperature: float = TEMPERATURE) -> Tensor:
    """alpha * CE + (1 - alpha) * T^2 * KL on the positions whose target is not -100."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    hard = sft_loss(student_logits, targets)
    if alpha == 1.0:
        return hard
    soft = soft_kl(student_logits, teacher_logits.detach(), targets != IGNORE, temperature)
    return alpha * hard + (1 - alpha) * temperature ** 2 * soft


@dataclass
class DistillResult:
    student: nn.Module
    losses: list[float] = field(default_factory=list)


def train_distill(student: nn.Module, teacher: nn.Module | None,
                  examples: Sequence[tuple[list[int], list[int]]], steps: int,
                  alpha: float = ALPHA, temperature: float = TEMPERATURE, lr: float = 3e-3,
                  batch_size: int = 16, seed: int = 0,
                  on_step: Callable[[int, dict[str, float]], None] | None = None
                  ) -> DistillResult:
    """Train `student` in place on encoded conversations (ids, labels); with teacher None (or
    alpha 1) on the hard labels alone, with the same batches and steps. `on_step(step,
    {"loss"})` is called after every step (a progress bar)."""
    if steps < 0 or batch_size < 1:
        raise ValueError(f"steps must be >= 0 and batch_size >= 1, got {steps}, {batch_size}")
    if not examples:
        raise ValueError("train_distill needs at least one example")
    if teacher is None and alpha != 1.0:
        alpha = 1.0
    optimizer = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.0)
    rng = random.Random(seed)
    result = DistillResult(student)
    if teacher is not None:
        teacher.eval()
    student.train()
    for step in range(1, steps + 1):
        x, y = pad_batch([examples[rng.randrange(len(examples))] for _ in range(batch_size)])
        logits = student(x).logits
        if teacher is not None and alpha < 1.0:
            with torch.no_grad():
                t_logits = teacher(x).logits
            loss = distill_loss(logits, t_logits, y, alpha, temperature)
        else:
            loss = sft_loss(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        result.losses.append(loss.item())
        if on_step is not None:
            on_step(step, {"loss": result.losses[-1]})
    student.eval()
    return result
