"""Sampling: every meaningless request is refused before the first token; new knobs behave."""
from __future__ import annotations

import pytest
import torch

from minimind.config import preset
from minimind.generate import (
    apply_repetition_penalty,
    decode_with_cache,
    generate,
    greedy_decode,
    logits_to_probs,
    penalize_seen_tokens,
    repeated_ngram_fraction,
    sample_next,
    top_k_mask,
    top_p_mask,
)
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


def test_sample_next_at_temperature_zero_is_the_argmax_and_draws_nothing():
    """Temperature 0 returns the argmax and leaves the generator's state as it was."""
    logits = torch.randn(5, 11, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    state = g.get_state()
    assert torch.equal(sample_next(logits, 0.0, top_k=3, top_p=0.5, generator=g),
                       logits.argmax(-1, keepdim=True))
    assert torch.equal(g.get_state(), state)


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": -1.0}, "temperature must be a finite number >= 0"),
    ({"temperature": float("nan")}, "temperature"),
    ({"top_k": 0}, "top_k must be an int >= 1"),
    ({"temperature": 0.0, "top_p": 1.5}, "top_p must be in"),
])
def test_sample_next_refuses_meaningless_settings(kwargs, message):
    """A negative or NaN temperature, top_k 0 or top_p 1.5 is a ValueError, greedy or not."""
    with pytest.raises(ValueError, match=message):
        sample_next(torch.zeros(1, 4), **kwargs)


def test_sample_next_replays_with_a_seeded_generator():
    """The same seed gives the same draws; the draws follow logits_to_probs."""
    logits = torch.randn(64, 9, generator=torch.Generator().manual_seed(2))
    a = sample_next(logits, 0.7, top_p=0.9, generator=torch.Generator().manual_seed(3))
    b = sample_next(logits, 0.7, top_p=0.9, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (64, 1) and a.dtype == torch.int64
    probs = logits_to_probs(logits, 0.7, top_p=0.9)
    assert bool((probs.gather(1, a) > 0).all()), "a token top-p removed was drawn"


def test_top_k_mask_keeps_every_token_tied_with_the_kth():
    """Logits 3, 2, 2, 1 with k = 2 keep three tokens; k past the vocabulary keeps all."""
    logits = torch.tensor([[3.0, 2.0, 2.0, 1.0]])
    assert top_k_mask(logits, 2).tolist() == [[True, True, True, False]]
    assert bool(top_k_mask(logits, 10).all())


@pytest.mark.parametrize("p, kept", [
    (0.5, [True, False, False, False]),   # the first token alone reaches .5 exactly
    (0.51, [True, True, False, False]),  # the token that crosses p is kept
    (0.8, [True, True, False, False]),
    (0.81, [True, True, True, False]),
    (1.0, [True, True, True, True]),
])
def test_top_p_mask_keeps_the_smallest_set_reaching_p(p, kept):
    """Probabilities .5/.3/.125/.075 (in shuffled order): the kept set is the smallest prefix of
    the ranking whose mass reaches p."""
    probs = torch.tensor([[0.3, 0.075, 0.5, 0.125]], dtype=torch.float64)
    order = [2, 0, 3, 1]  # token ids from most to least probable
    assert top_p_mask(probs, p)[0, order].tolist() == kept


@pytest.mark.parametrize("penalty", [1.0, 1.5])
def test_decode_with_cache_gives_the_tokens_of_greedy_decode_and_of_generate(model, penalty):
    """Cache or not, the lesson's decoders and generate(greedy=True) append the same tokens."""
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    cached = decode_with_cache(model, prompt, 20, repetition_penalty=penalty)
    assert torch.equal(cached, greedy_decode(model, prompt, 20, repetition_penalty=penalty))
    assert torch.equal(cached, generate(model, prompt, 20, greedy=True,
                                        repetition_penalty=penalty))


def test_decode_with_cache_feeds_one_position_per_step(model):
    """The prompt once, then one token per call: 3 + 4 calls of 1 position for 5 new tokens."""
    fed = []
    hook = model.register_forward_pre_hook(lambda m, args: fed.append(args[0].shape[1]))
    try:
        decode_with_cache(model, PROMPT, 5)
    finally:
        hook.remove()
    assert fed == [3, 1, 1, 1, 1]


def test_decoders_return_the_prompt_for_zero_new_tokens_and_refuse_bad_requests(model):
    """0 new tokens returns the prompt; past the context or a NaN penalty is a ValueError."""
    for decode in (greedy_decode, decode_with_cache):
        assert torch.equal(decode(model, PROMPT, 0), PROMPT)
        with pytest.raises(ValueError, match="exceeds the model's context"):
            decode(model, PROMPT, 62)
        with pytest.raises(ValueError, match="repetition_penalty"):
            decode(model, PROMPT, 2, repetition_penalty=float("nan"))


def test_repetition_penalty_refuses_ids_of_another_batch():
    """ids with a different batch size than the logits are a ValueError, not a silent gather."""
    with pytest.raises(ValueError, match="ids must be int token ids"):
        apply_repetition_penalty(torch.zeros(2, 5), torch.tensor([[0, 1]]), 1.5)


def test_penalize_seen_tokens_at_each_position_is_the_decoders_penalty():
    """Position t's logits get apply_repetition_penalty for the tokens ids[:, :t + 1]."""
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 7, 10, generator=g) * 2
    ids = torch.randint(0, 10, (2, 7), generator=g)
    out = penalize_seen_tokens(logits, ids, 1.7)
    for t in range(7):
        torch.testing.assert_close(out[:, t], apply_repetition_penalty(logits[:, t], ids[:, :t + 1],
                                                                      1.7), rtol=0, atol=0)
    with pytest.raises(ValueError, match="must agree"):
        penalize_seen_tokens(logits, ids[:, :3], 1.7)


def test_repeated_ngram_fraction_is_zero_for_distinct_text_and_near_one_for_a_loop():
    """abcdef repeats nothing; a loop of period 3 repeats every n-gram after its first three."""
    assert repeated_ngram_fraction([1, 2, 3, 4, 5, 6], 2) == 0.0
    loop = [1, 2, 3] * 10  # 28 trigrams, 3 distinct
    assert repeated_ngram_fraction(torch.tensor(loop), 3) == pytest.approx(25 / 28)
    assert repeated_ngram_fraction([1, 2], 4) == 0.0
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        repeated_ngram_fraction([1, 2], 0)
    with pytest.raises(ValueError, match="one sequence"):
        repeated_ngram_fraction(torch.tensor([loop, loop]), 3)
