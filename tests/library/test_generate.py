"""Sampling: every meaningless request is refused before the first token; new knobs behave."""
from __future__ import annotations

import pytest
import torch

from minimind.config import preset
from minimind.generate import apply_repetition_penalty, generate, logits_to_probs
from minimind.model import MiniMindForCausalLM


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MiniMindForCausalLM(preset("tiny")).eval()  # context of 64 positions


PROMPT = torch.tensor([[1, 2, 3]])


@pytest.mark.parametrize("kwargs, message", [
    ({"input_ids": torch.zeros((1, 0), dtype=torch.long)}, "the prompt is empty"),
    ({"top_k": 0}, "top_k must be an int >= 1"),
    ({"top_p": 0.0}, "top_p must be in"),
    ({"temperature": float("inf")}, "temperature must be a finite number > 0"),
    ({"temperature": 0.0}, "temperature must be a finite number > 0"),
    ({"max_new_tokens": -5}, "new tokens must be an int >= 0"),
    ({"max_new_tokens": 62}, "exceeds the model's context of 64"),
    ({"repetition_penalty": float("nan")}, "repetition_penalty"),
])
def test_a_meaningless_request_is_refused_before_generating(model, kwargs, message):
    """Empty prompt, top_k 0, inf temperature, -5 tokens, past the context: ValueError."""
    args = {"input_ids": PROMPT, "max_new_tokens": 5, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate(model, **args)


def test_a_request_filling_the_context_exactly_is_allowed(model):
    """3 prompt tokens + 61 new = 64 positions, the whole context."""
    assert generate(model, PROMPT, 61, greedy=True).shape == (1, 64)


def test_top_p_keeps_the_smallest_set_reaching_p():
    """Probabilities .5/.3/.2 with top_p .7 keep the first two, renormalised to .625/.375."""
    logits = torch.tensor([[0.5, 0.3, 0.2]]).log()
    probs = logits_to_probs(logits, top_p=0.7)
    torch.testing.assert_close(probs, torch.tensor([[0.625, 0.375, 0.0]]), rtol=0, atol=1e-6)


def test_repetition_penalty_lowers_tokens_already_seen():
    """Seen tokens' positive logits are divided and negative ones multiplied by the penalty."""
    logits = torch.tensor([[2.0, -2.0, 1.0]])
    out = apply_repetition_penalty(logits, torch.tensor([[0, 1]]), 2.0)
    torch.testing.assert_close(out, torch.tensor([[1.0, -4.0, 1.0]]), rtol=0, atol=0)


def test_generation_stops_at_the_end_token(model):
    """With eos_id set to the greedy first token, exactly one token is generated."""
    first = generate(model, PROMPT, 1, greedy=True)[0, -1].item()
    assert generate(model, PROMPT, 10, greedy=True, eos_id=first).shape == (1, 4)
