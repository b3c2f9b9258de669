"""Sampling from a trained model, with or without the KV cache."""
from __future__ import annotations

import torch
from torch import Tensor

from minimind.model import MiniMindForCausalLM


def logits_to_probs(logits: Tensor, temperature: float = 1.0, top_k: int | None = None) -> Tensor:
    """Temperature-scaled softmax over the last dim, keeping only the top_k logits."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (greedy=True for argmax), got {temperature}")
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.softmax(logits, dim=-1)


def next_token(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None, greedy: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """(B, vocab) logits of the last position -> (B, 1) token ids."""
    if greedy:
        return logits.argmax(dim=-1, keepdim=True)
    return torch.multinomial(logits_to_probs(logits, temperature, top_k), 1, generator=generator)


@torch.no_grad()
def generate(
    model: MiniMindForCausalLM, input_ids: Tensor, max_new_tokens: int,
    temperature: float = 1.0, top_k: int | None = None, greedy: bool = False,
    use_cache: bool = True, generator: torch.Generator | None = None,
    return_logits: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Append max_new_tokens tokens to input_ids (B, T).

    With the cache, the prompt is run once and every later step feeds only the newest token;
    without it, every step recomputes the whole prefix. Both give the same tokens.
    """
    model.eval()
    ids, past, step_logits = input_ids, None, []
    for _ in range(max_new_tokens):
        if use_cache:
            feed = ids if past is None else ids[:, -1:]
            out = model(feed, past_key_values=past, use_cache=True)
            past = out.past_key_values
        else:
            out = model(ids)
        logits = out.logits[:, -1, :]  # (B, vocab)
        step_logits.append(logits)
        ids = torch.cat([ids, next_token(logits, temperature, top_k, greedy, generator)], dim=1)
    if return_logits:
        return ids, torch.stack(step_logits, dim=1)  # (B, max_new_tokens, vocab)
    return ids
