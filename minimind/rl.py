"""GRPO: reinforcement learning on verifiable rewards, MiniMind's way (no critic).

For each prompt the policy samples a group of G answers; a verifier (minimind.tasks) scores
each. An answer's advantage is its reward standardised within its own group,

    A = (r - mean(group)) / (std(group) + eps),   std with Bessel's correction (torch's
                                                  default, MiniMind's), eps = 1e-4

so only the differences between answers to the same prompt teach anything: a group whose
rewards are all equal (all right, or all wrong) has A = 0 and contributes exactly no gradient.
The loss per answer token is PPO's clipped surrogate plus beta times a KL estimate to the
frozen reference, averaged over each answer's tokens, then over answers:

    ratio = exp(logp - logp_old)
    pg    = -min(ratio * A, clip(ratio, 1 - c, 1 + c) * A)
    kl    = exp(d) - d - 1,   d = logp_ref - logp       (>= 0, 0 only where they agree)
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from minimind.dataset import IGNORE
from minimind.dpo import frozen_copy
from minimind.sft import accuracy, prompt_ids
from minimind.tokenizer import EOS_ID, PAD_ID, Tokenizer

ADV_EPS = 1e-4  # MiniMind's eps in the advantage's denominator


def group_advantages(rewards: Tensor, group_size: int, eps: float = ADV_EPS) -> Tensor:
    """(N,) advantages of N = groups * group_size rewards, each group contiguous.

    Standardised within each group with the Bessel-corrected std (see the module doc); a group
    whose rewards are all equal gets exactly 0.
    """
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D, got shape {tuple(rewards.shape)}")
    if group_size < 2 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size} "
                         "(group_size must be >= 2 and divide the count)")
    g = rewards.float().view(-1, group_size)
    adv = (g - g.mean(1, keepdim=True)) / (g.std(1, keepdim=True) + eps)
    # In float32 the mean of eight 0.1s is not exactly 0.1, which would leave an all-equal
    # group advantages of ~1e-4 instead of 0: such a group is set to exactly 0.
    equal = (g == g[:, :1]).all(1, keepdim=True)
    return adv.masked_fill(equal, 0.0).view(-1)


def clipped_policy_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor,
                        clip: float = 0.2) -> Tensor:
    """(B, T) PPO clipped surrogate per token; `advantages` (B,) is shared by a row's tokens."""
    if logp.shape != old_logp.shape or advantages.shape != logp.shape[:1]:
        raise ValueError(f"logp {tuple(logp.shape)}, old_logp {tuple(old_logp.shape)} and "
                         f"advantages {tuple(advantages.shape)} do not match (B, T), (B, T), (B,)")
    ratio = torch.exp(logp - old_logp)
    a = advantages[:, None]
    return -torch.min(ratio * a, torch.clamp(ratio, 1 - clip, 1 + clip) * a)


def kl_estimate(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Per-token estimate of KL(policy || reference) on tokens the policy sampled (k3)."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def token_logprobs(model: nn.Module, ids: Tensor) -> Tensor:
    """(B, T-1) log p(ids[:, t] | ids[:, < t]) for t >= 1."""
    logp = torch.log_softmax(model(ids).logits[:, :-1].float(), -1)
    return logp.gather(-1, ids[:, 1:, None]).squeeze(-1)


def grpo_loss(logp: Tensor, old_logp: Tensor, ref_logp: Tensor, advantages: Tensor,
              mask: Tensor, clip: float = 0.2, kl_beta: float = 0.02) -> Tensor:
    """The scalar GRPO loss: (pg + kl_beta * kl) averaged over each answer's tokens, then rows."""
    per_token = clipped_policy_loss(logp, old_logp, advantages, clip)
    if kl_beta:
        per_token = per_token + kl_beta * kl_estimate(logp, ref_logp)
    m = mask.to(per_token.dtype)
    return ((per_token * m).sum(-1) / m.sum(-1).clamp(min=1)).mean()


# --- rollouts ------------------------------------------------------------------------------------

@dataclass
class Rollout:
    """G sampled answers per prompt: ids (N, T) prompt + answer, answer mask on the targets
    (N, T-1) (aligned with token_logprobs), rewards (N,), group size."""

    ids: Tensor
    mask: Tensor
    rewards: Tensor
    group_size: int


@torch.no_grad()
def sample_groups(model: nn.Module, tokenizer: Tokenizer, tasks: Sequence, group_size: int,
                  max_new_tokens: int, temperature: float,
                  generator: torch.Generator) -> Rollout:
    """Sample `group_size` answers to each task's prompt and score them with its verifier.

    An answer ends with its first <|im_end|> (included); later positions are padding, masked.
    """
    from minimind.generate import generate

    prompts = [prompt_ids(tokenizer, t.prompt_messages()) for t in tasks]
    rows: list[list[int]] = []
    masks: list[list[bool]] = []
    rewards: list[float] = []
    model.eval()
    for task, p in zip(tasks, prompts):
        x = torch.tensor([p] * group_size)
        y = generate(model, x, max_new_tokens, temperature=temperature, generator=generator,
                     eos_id=EOS_ID)
        for new in y[:, len(p):].tolist():
            answer = new[:new.index(EOS_ID) + 1] if EOS_ID in new else new
            rows.append(p + answer)
            masks.append([False] * (len(p) - 1) + [True] * len(answer))
            rewards.append(task.reward(tokenizer.decode(answer)))
    L = max(len(r) for r in rows)
    ids = torch.full((len(rows), L), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(rows), L - 1), dtype=torch.bool)
    for i, (r, m) in enumerate(zip(rows, masks)):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(m)] = torch.tensor(m)
    return Rollout(ids, mask, torch.tensor(rewards), group_size)


# --- training ------------------------------------------------------------------------------------

@dataclass
class GRPOResult:
    policy: nn.Module
    reference: nn.Module
    rewards: list[float] = field(default_factory=list)  # mean sampled reward per step
    kls: list[float] = field(default_factory=list)  # mean KL estimate on sampled tokens
    zero_groups: list[float] = field(default_factory=list)  # share of all-equal groups
    accuracy: list[tuple[int, float]] = field(default_factory=list)  # (step, held-out acc)


def grpo_step(policy: nn.Module, reference: nn.Module, rollout: Rollout,
              optimizer: torch.optim.Optimizer, clip: float = 0.2, kl_beta: float = 0.02,
              grad_clip: float | None = 1.0) -> float:
    """One update on a rollout (one pass, as MiniMind: old = current policy); returns the
    mean KL estimate over answer tokens."""
    adv = group_advantages(rollout.rewards, rollout.group_size)
    policy.train()
    logp = token_logprobs(policy, rollout.ids)
    with torch.no_grad():
        ref_logp = token_logprobs(reference, rollout.ids)
    loss = grpo_loss(logp, logp.detach(), ref_logp, adv, rollout.mask, clip, kl_beta)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(policy.parameters(), grad_clip)
    optimizer.step()
    kl = kl_estimate(logp.detach(), ref_logp)
    return (kl[rollout.mask].mean().item() if rollout.mask.any() else 0.0)


def train_grpo(policy: nn.Module, tokenizer: Tokenizer, tasks: Sequence, steps: int,
               prompts_per_step: int = 8, group_size: int = 8, lr: float = 1e-4,
               kl_beta: float = 0.02, clip: float = 0.2, temperature: float = 0.8,
               max_new_tokens: int = 8, seed: int = 0, eval_tasks: Sequence = (),
               eval_every: int = 0, reference: nn.Module | None = None,
               optimizer: torch.optim.Optimizer | None = None,
               on_step: Callable[[int, dict[str, float]], None] | None = None) -> GRPOResult:
    """Train `policy` in place by GRPO on `tasks` (minimind.tasks.Task, verifiable rewards).

    The reference defaults to a frozen copy of the policy as given. With `eval_tasks` and
    `eval_every`, greedy held-out accuracy is recorded every `eval_every` steps and at the end.
    `on_step(step, {"reward", "kl"})` is called after every step (a progress bar).
    """
    if steps < 0 or prompts_per_step < 1:
        raise ValueError(f"steps must be >= 0 and prompts_per_step >= 1, got {steps}, "
                         f"{prompts_per_step}")
    if not tasks:
        raise ValueError("train_grpo needs at least one task")
    reference = frozen_copy(policy) if reference is None else reference
    if optimizer is None:
        optimizer = torch.optim.AdamW(policy.parameters(), lr=lr, weight_decay=0.0)
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    result = GRPOResult(policy, reference)
    for step in range(steps):
        if eval_tasks and eval_every and step % eval_every == 0:
            result.accuracy.append((step, accuracy(policy, tokenizer, eval_tasks,
                                                   max_new_tokens)))
        batch = [tasks[rng.randrange(len(tasks))] for _ in range(prompts_per_step)]
        rollout = sample_groups(policy, tokenizer, batch, group_size, max_new_tokens,
                                temperature, gen)
        groups = rollout.rewards.view(-1, group_size)
        result.rewards.append(rollout.rewards.mean().item())
        result.zero_groups.append((groups == groups[:, :1]).all(1).float().mean().item())
        result.kls.append(grpo_step(policy, reference, rollout, optimizer, clip, kl_beta))
        if on_step is not None:
            on_step(step + 1, {"reward": result.rewards[-1], "kl": result.kls[-1]})
    if eval_tasks:
        result.accuracy.append((steps, accuracy(policy, tokenizer, eval_tasks, max_new_tokens)))
    policy.eval()
    return result


def answer_mask_from_labels(labels: Tensor) -> Tensor:
    """(B, T-1) target mask from labels aligned with ids (-100 outside the answer)."""
    return labels[:, 1:] != IGNORE
