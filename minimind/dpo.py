"""Direct preference optimisation: learn from (chosen, rejected) answer pairs, no reward model.

The policy starts as a copy of the SFT model; a second, frozen copy is the reference. For a
pair, each model scores both answers by the log-probability of the answer's tokens (the
assistant span, MiniMind's SFT mask), and the loss is

    -logsigmoid(beta * ((pi_chosen - pi_rejected) - (ref_chosen - ref_rejected)))

At the start policy == reference, the argument is exactly 0 and the loss is ln 2 = 0.693
whatever the data: a DPO run "stuck at 0.693" is one whose policy has not moved. beta sets how
far the policy may move: the loss saturates once beta times the gained margin is large, so a
larger beta stops it sooner (closer to the reference). MiniMind2 averaged the log-probability
over the answer's tokens; later versions sum it (`average=False`, the default here).
"""
from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minimind.dataset import IGNORE, encode_chat, preference_pair
from minimind.tokenizer import PAD_ID, Tokenizer

LN2 = math.log(2.0)  # the DPO loss of a policy equal to its reference


def sequence_logprob(logits: Tensor, ids: Tensor, mask: Tensor, average: bool = False) -> Tensor:
    """(B,) log-probability of the masked tokens of each row of `ids` under `logits`.

    `logits` (B, T, V) come from running the model on `ids` (B, T): position t predicts token
    t + 1, so token t's log-probability is read from position t - 1 and the first token (which
    nothing predicts) never counts. `mask` (B, T) marks the tokens to score (the answer). With
    `average`, the sum is divided by the number of scored tokens (MiniMind2's choice).
    """
    if logits.dim() != 3 or ids.shape != logits.shape[:2]:
        raise ValueError(f"logits {tuple(logits.shape)} must be (B, T, V) for ids "
                         f"{tuple(ids.shape)}")
    if mask.shape != ids.shape:
        raise ValueError(f"mask {tuple(mask.shape)} must have the shape of ids {tuple(ids.shape)}")
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    token = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)  # (B, T-1): log p(ids[t] | < t)
    m = mask[:, 1:].to(token.dtype)
    total = (token * m).sum(-1)
    return total / m.sum(-1).clamp(min=1) if average else total


def dpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor,
             ref_rejected: Tensor, beta: float = 0.1) -> Tensor:
    """(B,) DPO loss per pair from the four sequence log-probabilities (see the module doc)."""
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    margin = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected)
    return -F.logsigmoid(beta * margin)


def reward_margin(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor,
                  ref_rejected: Tensor) -> Tensor:
    """(B,) the implicit reward margin without beta: how much more the policy than the
    reference prefers the chosen answer (> 0: the pair is learned)."""
    return (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected)


# --- data ----------------------------------------------------------------------------------------

@dataclass
class PairBatch:
    """Chosen rows then rejected rows, right-padded: ids (2B, T), answer mask (2B, T)."""

    ids: Tensor
    mask: Tensor

    @property
    def pairs(self) -> int:
        return self.ids.shape[0] // 2


def encode_pairs(tokenizer: Tokenizer,
                 records: Sequence[dict[str, Any]]) -> list[tuple[list[int], list[int],
                                                                  list[int], list[int]]]:
    """(chosen ids, chosen labels, rejected ids, rejected labels) of MiniMind DPO records."""
    out = []
    for i, rec in enumerate(records):
        chosen, rejected = preference_pair(rec, f"preference record {i}")
        out.append((*encode_chat(tokenizer, chosen), *encode_chat(tokenizer, rejected)))
    return out


def pair_batch(encoded: Sequence[tuple[list[int], list[int], list[int], list[int]]],
               max_len: int | None = None) -> PairBatch:
    """One padded batch: the chosen sequences first, then the rejected, as MiniMind batches."""
    if not encoded:
        raise ValueError("pair_batch needs at least one pair")
    rows = [(e[0], e[1]) for e in encoded] + [(e[2], e[3]) for e in encoded]
    L = max(len(ids) for ids, _ in rows)
    L = min(L, max_len) if max_len else L
    ids = torch.full((len(rows), L), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(rows), L), dtype=torch.bool)
    for r, (seq, labels) in enumerate(rows):
        n = min(len(seq), L)
        ids[r, :n] = torch.tensor(seq[:n])
        mask[r, :n] = torch.tensor([lab != IGNORE for lab in labels[:n]])
    return PairBatch(ids, mask)


def pair_logprobs(model: nn.Module, batch: PairBatch,
                  average: bool = False) -> tuple[Tensor, Tensor]:
    """(chosen, rejected) sequence log-probabilities, each (B,), from one forward pass."""
    logp = sequence_logprob(model(batch.ids).logits, batch.ids, batch.mask, average)
    return logp[:batch.pairs], logp[batch.pairs:]


@torch.no_grad()
def evaluate_pairs(policy: nn.Module, reference: nn.Module, batch: PairBatch,
                   beta: float = 0.1, average: bool = False) -> dict[str, float]:
    """Mean DPO loss, mean reward margin and the share of pairs with a positive margin."""
    was = policy.training
    policy.eval()
    pc, pr = pair_logprobs(policy, batch, average)
    rc, rr = pair_logprobs(reference, batch, average)
    policy.train(was)
    margin = reward_margin(pc, pr, rc, rr)
    return {"loss": dpo_loss(pc, pr, rc, rr, beta).mean().item(),
            "margin": margin.mean().item(),
            "accuracy": (margin > 0).float().mean().item()}


@torch.no_grad()
def policy_kl(policy: nn.Module, reference: nn.Module, ids: Tensor, mask: Tensor) -> float:
    """Mean over masked positions of KL(policy || reference) of the next-token distributions.

    Exact (summed over the vocabulary), on given sequences: how far the policy has moved.
    """
    pol = torch.log_softmax(policy(ids).logits[:, :-1].float(), -1)
    ref = torch.log_softmax(reference(ids).logits[:, :-1].float(), -1)
    kl = (pol.exp() * (pol - ref)).sum(-1)  # (B, T-1)
    m = mask[:, 1:].to(kl.dtype)
    return ((kl * m).sum() / m.sum().clamp(min=1)).item()


def frozen_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` in eval mode with no gradients: the reference."""
    ref = copy.deepcopy(model).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


# --- training ------------------------------------------------------------------------------------

@dataclass
class DPOResult:
    policy: nn.Module
    reference: nn.Module
    losses: list[float] = field(default_factory=list)  # the training loss per step
    margins: list[float] = field(default_factory=list)  # the mean reward margin per step


def dpo_step(policy: nn.Module, reference: nn.Module, batch: PairBatch,
             optimizer: torch.optim.Optimizer, beta: float = 0.1,
             average: bool = False, grad_clip: float | None = 1.0) -> tuple[float, float]:
    """One optimizer step on a batch of pairs; returns (loss, mean reward margin) before it."""
    policy.train()
    pc, pr = pair_logprobs(policy, batch, average)
    with torch.no_grad():
        rc, rr = pair_logprobs(reference, batch, average)
    loss = dpo_loss(pc, pr, rc, rr, beta).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(policy.parameters(), grad_clip)
    optimizer.step()
    return loss.item(), reward_margin(pc, pr, rc, rr).mean().item()


def train_dpo(policy: nn.Module, tokenizer: Tokenizer, records: Sequence[dict[str, Any]],
              steps: int, beta: float = 0.1, lr: float = 1e-4, batch_size: int = 16,
              average: bool = False, seed: int = 0, reference: nn.Module | None = None,
              grad_clip: float | None = 1.0,
              on_step: Callable[[int, dict[str, float]], None] | None = None) -> DPOResult:
    """Train `policy` in place by DPO on MiniMind preference records; the reference defaults
    to a frozen copy of the policy as given (the SFT model). Pairs are drawn with a seeded RNG.
    `on_step(step, {"loss", "margin"})` is called after every step (a progress bar).
    """
    if steps < 0 or batch_size < 1:
        raise ValueError(f"steps must be >= 0 and batch_size >= 1, got {steps}, {batch_size}")
    encoded = encode_pairs(tokenizer, records)
    if not encoded:
        raise ValueError("train_dpo needs at least one preference record")
    reference = frozen_copy(policy) if reference is None else reference
    optimizer = torch.optim.AdamW(policy.parameters(), lr=lr, weight_decay=0.0)
    rng = random.Random(seed)
    result = DPOResult(policy, reference)
    for step in range(1, steps + 1):
        batch = pair_batch([encoded[rng.randrange(len(encoded))] for _ in range(batch_size)])
        loss, margin = dpo_step(policy, reference, batch, optimizer, beta, average, grad_clip)
        result.losses.append(loss)
        result.margins.append(margin)
        if on_step is not None:
            on_step(step, {"loss": loss, "margin": margin})
    policy.eval()
    return result
