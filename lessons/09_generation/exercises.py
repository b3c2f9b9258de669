"""Lesson 09 exercises: choosing the next token. Replace each `raise NotImplementedError` with code.

Check your work with `pytest -m exercise lessons/09_generation` (seconds). The README explains
what each function must do and why; `pytest --solutions` shows the reference passing.
"""
import math  # noqa: F401  (you may need it)

import torch  # noqa: F401  (you will need it)
from torch import Tensor

from minimind.model import MiniMindForCausalLM

REFERENCE = "minimind.generate"  # where the answers live; peek only when stuck


def sample_next(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None,
    top_p: float | None = None, generator: torch.Generator | None = None,
) -> Tensor:
    """(B, vocab) next-token logits -> (B, 1) int64 token ids, one per row.

    temperature == 0 is greedy decoding: return each row's argmax and draw nothing. A negative
    temperature raises ValueError. Otherwise, in this order:
      1. divide the logits by temperature;
      2. with top_k: keep every token whose logit is at least the k-th largest of its row
         (tokens tied with the k-th are all kept); the others can never be drawn;
      3. softmax over what is kept;
      4. with top_p < 1: keep the smallest set of most probable tokens whose probabilities
         (from step 3) add up to at least top_p: a token stays when the tokens more probable
         than it hold less than top_p, so the one that crosses top_p stays;
      5. draw with torch.multinomial(probs, 1, generator=generator), probs of shape
         (B, vocab) with zeros for the removed tokens (it renormalises by itself), so that a
         seeded generator replays the reference's draws.
    """
    raise NotImplementedError


def apply_repetition_penalty(logits: Tensor, ids: Tensor, penalty: float) -> Tensor:
    """The repetition penalty of CTRL and Hugging Face, (B, vocab) logits -> new (B, vocab).

    ids (B, T) are the tokens so far in each row (prompt and generated). Every token that
    occurs in its row's ids, however often, gets logit / penalty if its logit is positive and
    logit * penalty otherwise; every other token keeps its logit. Return a new tensor.
    """
    raise NotImplementedError


def greedy_decode(
    model: MiniMindForCausalLM, input_ids: Tensor, max_new_tokens: int,
    repetition_penalty: float = 1.0,
) -> Tensor:
    """Append max_new_tokens tokens to input_ids (B, T) and return all of them, (B, T + new).

    No cache: every step runs model(ids).logits on the whole sequence so far, takes the logits
    of the last position, applies the repetition penalty for every token in ids (the prompt
    and everything generated so far), and appends each row's argmax.
    """
    raise NotImplementedError


def decode_with_cache(
    model: MiniMindForCausalLM, input_ids: Tensor, max_new_tokens: int,
    repetition_penalty: float = 1.0,
) -> Tensor:
    """greedy_decode's tokens, computed with the KV cache.

    The first call runs the whole prompt: out = model(input_ids, use_cache=True). After that,
    each call feeds only the newest token, (B, 1), with past_key_values=out.past_key_values
    and use_cache=True: the model places it at position len(cache) and attends to the cached
    keys and values. max_new_tokens tokens take max_new_tokens calls.
    """
    raise NotImplementedError
