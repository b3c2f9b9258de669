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
    """The repetition penalty of CTRL and Hugging Face: every token already in its row of `ids`
    (B, T) (prompt and generated so far) gets logit / penalty if positive, logit * penalty if
    not, so with penalty > 1 it becomes less likely whatever its sign. Each seen token is
    penalised once, however often it occurred; the others keep their logits. (B, vocab) in and
    out, a new tensor."""
    if ids.dim() != 2 or ids.shape[0] != logits.shape[0] or ids.is_floating_point():
        raise ValueError(f"ids must be int token ids of shape (batch, seq) with the logits' "
                         f"batch {logits.shape[0]}, got {ids.dtype} {tuple(ids.shape)}")
    if penalty == 1.0:
        return logits
    seen = torch.gather(logits, 1, ids)  # (B, T): a token seen twice is gathered twice ...
    seen = torch.where(seen > 0, seen / penalty, seen * penalty)
    return logits.scatter(1, ids, seen)  # ... and written twice with the same value: once


def top_k_mask(logits: Tensor, k: int) -> Tensor:
    """True where top-k sampling keeps a token: every logit at least the k-th largest of its
    row. Tokens tied with the k-th are all kept, so the set never depends on how a sort breaks
    ties (Hugging Face's rule too); k >= vocab keeps every token."""
    kth = torch.topk(logits, min(k, logits.shape[-1]), dim=-1).values[..., -1:]
    return logits >= kth


def top_p_mask(probs: Tensor, p: float) -> Tensor:
    """True on the smallest set of most probable tokens whose total probability reaches p
    (nucleus sampling): a token is kept when the tokens ranked above it hold less than p.

    So the token whose probability crosses p is kept, and the most probable token always is.
    Among tokens of equal probability the lower id ranks first.
    """
    ranked, order = torch.sort(probs, dim=-1, descending=True, stable=True)
    # The mass ranked above each token (an exclusive cumsum, so no subtraction rounds it).
    above = torch.cat([torch.zeros_like(ranked[..., :1]), ranked.cumsum(dim=-1)[..., :-1]], -1)
    keep = above < p
    return keep.scatter(-1, order, keep)


def logits_to_probs(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None,
    top_p: float | None = None,
) -> Tensor:
    """Temperature-scaled softmax over the last dim, keeping the top_k logits and then the
    smallest set of tokens whose (renormalised) probability reaches top_p."""
    check_sampling(temperature, top_k, top_p)
    logits = logits / temperature
    if top_k is not None:
        logits = logits.masked_fill(~top_k_mask(logits, top_k), float("-inf"))
    if top_p is not None and top_p < 1:
        keep = top_p_mask(torch.softmax(logits, dim=-1), top_p)
        logits = logits.masked_fill(~keep, float("-inf"))
    return torch.softmax(logits, dim=-1)


def sample_next(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None,
    top_p: float | None = None, generator: torch.Generator | None = None,
) -> Tensor:
    """(B, vocab) logits of the last position -> (B, 1) sampled token ids.

    Temperature 0 is greedy decoding (the argmax, no randomness drawn), the limit of
    softmax(logits / T) as T -> 0. Otherwise one multinomial draw per row from
    logits_to_probs(...), so a seeded generator replays the same tokens.
    """
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0 (0 is greedy), "
                         f"got {temperature}")
    if temperature == 0:
        check_sampling(1.0, top_k, top_p)
        return logits.argmax(dim=-1, keepdim=True)
    probs = logits_to_probs(logits, temperature, top_k, top_p)
    return torch.multinomial(probs, 1, generator=generator)


def next_token(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None, greedy: bool = False,
    generator: torch.Generator | None = None, top_p: float | None = None,
) -> Tensor:
    """(B, vocab) logits of the last position -> (B, 1) token ids."""
    return sample_next(logits, 0.0 if greedy else temperature, top_k, top_p, generator)


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


def _check_decode(model: MiniMindForCausalLM, input_ids: Tensor, max_new_tokens: int,
                  repetition_penalty: float) -> None:
    check_request(model, input_ids, max_new_tokens)
    check_sampling(repetition_penalty=repetition_penalty, greedy=True)


@torch.no_grad()
def greedy_decode(
    model: MiniMindForCausalLM, input_ids: Tensor, max_new_tokens: int,
    repetition_penalty: float = 1.0,
) -> Tensor:
    """Append max_new_tokens argmax tokens to input_ids (B, T), recomputing the whole sequence
    at every step (no cache). The penalty sees the prompt and every token generated so far."""
    _check_decode(model, input_ids, max_new_tokens, repetition_penalty)
    ids = input_ids
    for _ in range(max_new_tokens):
        logits = model(ids).logits[:, -1, :]  # (B, vocab): the next token after all of ids
        logits = apply_repetition_penalty(logits, ids, repetition_penalty)
        ids = torch.cat([ids, logits.argmax(dim=-1, keepdim=True)], dim=1)
    return ids


@torch.no_grad()
def decode_with_cache(
    model: MiniMindForCausalLM, input_ids: Tensor, max_new_tokens: int,
    repetition_penalty: float = 1.0,
) -> Tensor:
    """greedy_decode with the KV cache: the prompt runs once, then each step feeds only the
    newest token, which the model places at position len(cache) (RoPE), attending to the
    cached keys and values. max_new_tokens forward calls: T positions, then 1 each."""
    _check_decode(model, input_ids, max_new_tokens, repetition_penalty)
    ids, feed, past = input_ids, input_ids, None
    for _ in range(max_new_tokens):
        out = model(feed, past_key_values=past, use_cache=True)
        past = out.past_key_values
        logits = apply_repetition_penalty(out.logits[:, -1, :], ids, repetition_penalty)
        feed = logits.argmax(dim=-1, keepdim=True)  # (B, 1): the only input of the next step
        ids = torch.cat([ids, feed], dim=1)
    return ids


def penalize_seen_tokens(logits: Tensor, ids: Tensor, penalty: float) -> Tensor:
    """The repetition penalty at every position of a text at once, as a decoder would have
    applied it: logits (B, T, vocab) at position t are penalised for the tokens ids[:, :t + 1].

    Scoring held-out text under these logits measures what the penalty costs in likelihood.
    """
    if logits.dim() != 3 or ids.shape != logits.shape[:2]:
        raise ValueError(f"logits (batch, seq, vocab) and ids (batch, seq) must agree, got "
                         f"{tuple(logits.shape)} and {tuple(ids.shape)}")
    if not (math.isfinite(penalty) and penalty > 0):
        raise ValueError(f"penalty must be a finite number > 0 (1 is off), got {penalty}")
    seen = torch.nn.functional.one_hot(ids, logits.shape[-1]).cummax(dim=1).values.bool()
    penalized = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalized, logits)


def repeated_ngram_fraction(ids: Tensor | list[int], n: int) -> float:
    """Fraction of a sequence's n-grams that already occurred earlier in it: near 0 for varied
    text, approaching 1 for a loop (in a loop of period q every n-gram after the first q
    repeats). 0 for a sequence shorter than n."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    tokens = ids.tolist() if isinstance(ids, Tensor) else list(ids)
    if tokens and isinstance(tokens[0], list):
        raise ValueError("repeated_ngram_fraction takes one sequence, not a batch")
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    return 1 - len(set(grams)) / len(grams)
