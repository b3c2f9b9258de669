"""Sampling from a trained model, with or without the KV cache.

Every knob is checked before the first token, so a bad request fails at once with a message
instead of after (or in the middle of) generating: an empty prompt, top_k < 1, top_p outside
(0, 1], a temperature that is not a finite positive number, a negative token count, or a
prompt plus new tokens longer than the model's context.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from minimind.model import MiniMindForCausalLM


def check_sampling(
    temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
    repetition_penalty: float = 1.0, greedy: bool = False,
) -> None:
    """Raise ValueError naming the first sampling setting that has no meaning."""
    if not greedy and not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0 (greedy=True for argmax), "
                         f"got {temperature}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)
                              or top_k < 1):
        raise ValueError(f"top_k must be an int >= 1 (None keeps every token), got {top_k!r}")
    if top_p is not None and not (math.isfinite(top_p) and 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1] (1 keeps every token), got {top_p}")
    if not (math.isfinite(repetition_penalty) and repetition_penalty > 0):
        raise ValueError(f"repetition_penalty must be a finite number > 0 (1 is off), "
                         f"got {repetition_penalty}")


def apply_repetition_penalty(logits: Tensor, ids: Tensor, penalty: float) -> Tensor:
    """CTRL's penalty: tokens already in `ids` (B, T) get logits / penalty if positive, else
    * penalty, so either way they become less likely when penalty > 1."""
    if penalty == 1.0:
        return logits
    seen = torch.gather(logits, 1, ids)  # (B, T)
    seen = torch.where(seen > 0, seen / penalty, seen * penalty)
    return logits.scatter(1, ids, seen)


def logits_to_probs(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None,
    top_p: float | None = None,
) -> Tensor:
    """Temperature-scaled softmax over the last dim, keeping the top_k logits and the smallest
    set of tokens whose probability reaches top_p (nucleus sampling)."""
    check_sampling(temperature, top_k, top_p)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # Drop a token when the ones before it already reach top_p; the first always stays.
        drop = (cum - torch.softmax(sorted_logits, dim=-1)) >= top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return torch.softmax(logits, dim=-1)


def next_token(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None, greedy: bool = False,
    generator: torch.Generator | None = None, top_p: float | None = None,
) -> Tensor:
    """(B, vocab) logits of the last position -> (B, 1) token ids."""
    if greedy:
        return logits.argmax(dim=-1, keepdim=True)
    probs = logits_to_probs(logits, temperature, top_k, top_p)
    return torch.multinomial(probs, 1, generator=generator)


def check_request(model: MiniMindForCausalLM, input_ids: Tensor, max_new_tokens: int) -> None:
    if input_ids.dim() != 2 or input_ids.shape[1] == 0:
        raise ValueError(f"the prompt is empty (input_ids of shape {tuple(input_ids.shape)}); "
                         "give at least one token")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) \
            or max_new_tokens < 0:
        raise ValueError(f"the number of new tokens must be an int >= 0, got {max_new_tokens!r}")
    context = model.config.max_position_embeddings
    if input_ids.shape[1] + max_new_tokens > context:
        raise ValueError(f"a prompt of {input_ids.shape[1]} tokens plus {max_new_tokens} new "
                         f"tokens exceeds the model's context of {context} positions")


@torch.no_grad()
def stream(
    model: MiniMindForCausalLM, input_ids: Tensor, max_new_tokens: int,
    temperature: float = 1.0, top_k: int | None = None, greedy: bool = False,
    use_cache: bool = True, generator: torch.Generator | None = None,
    top_p: float | None = None, repetition_penalty: float = 1.0, eos_id: int | None = None,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield (token (B, 1), its logits (B, vocab)) one new token at a time.

    Stops early once every row has produced `eos_id` (when given).
    """
    check_request(model, input_ids, max_new_tokens)
    check_sampling(temperature, top_k, top_p, repetition_penalty, greedy)
    model.eval()
    ids, past = input_ids, None
    done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
    for _ in range(max_new_tokens):
        if use_cache:
            feed = ids if past is None else ids[:, -1:]
            out = model(feed, past_key_values=past, use_cache=True)
            past = out.past_key_values
        else:
            out = model(ids)
        logits = out.logits[:, -1, :]  # (B, vocab)
        raw = logits
        logits = apply_repetition_penalty(logits, ids, repetition_penalty)
        token = next_token(logits, temperature, top_k, greedy, generator, top_p)
        ids = torch.cat([ids, token], dim=1)
        yield token, raw
        if eos_id is not None:
            done |= token[:, 0] == eos_id
            if bool(done.all()):
                return


@torch.no_grad()
def generate(
    model: MiniMindForCausalLM, input_ids: Tensor, max_new_tokens: int,
    temperature: float = 1.0, top_k: int | None = None, greedy: bool = False,
    use_cache: bool = True, generator: torch.Generator | None = None,
    return_logits: bool = False, top_p: float | None = None,
    repetition_penalty: float = 1.0, eos_id: int | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Append up to max_new_tokens tokens to input_ids (B, T).

    With the cache, the prompt is run once and every later step feeds only the newest token;
    without it, every step recomputes the whole prefix. Both give the same tokens.
    """
    tokens, step_logits = [], []
    for token, logits in stream(model, input_ids, max_new_tokens, temperature, top_k, greedy,
                                use_cache, generator, top_p, repetition_penalty, eos_id):
        tokens.append(token)
        step_logits.append(logits)
    ids = torch.cat([input_ids, *tokens], dim=1)
    if return_logits:
        vocab = model.config.vocab_size
        stacked = (torch.stack(step_logits, dim=1) if step_logits
                   else input_ids.new_zeros((input_ids.shape[0], 0, vocab), dtype=torch.float))
        return ids, stacked  # (B, new tokens, vocab)
    return ids
