"""Exercise tests for lesson 09: each passes on a right answer and names the mistake otherwise."""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from minimind.config import preset
from minimind.course import check_close
from minimind.generate import (
    apply_repetition_penalty,
    greedy_decode,
    logits_to_probs,
    sample_next,
)
from minimind.lab import randomize_weights, threads
from minimind.model import MiniMindForCausalLM


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: the tiny models here only slow down when threads share busy cores."""
    with threads(1):
        yield


# --- sample_next -------------------------------------------------------------------------------

ROWS = 2000  # draws per distribution where the set of drawn tokens is checked


def _logits(seed: int, rows: int = 512, vocab: int = 20, scale: float = 2.0) -> torch.Tensor:
    return torch.randn(rows, vocab, generator=torch.Generator().manual_seed(seed)) * scale


def _draw(fn, logits, seed: int = 7, **kwargs) -> torch.Tensor:
    """fn(logits, ..., generator) with a generator freshly seeded: the same draws every call."""
    return fn(logits, generator=torch.Generator().manual_seed(seed), **kwargs)


def _rows_of(probs: list[float]) -> torch.Tensor:
    """ROWS copies of the logits of one distribution."""
    return torch.tensor(probs).log().expand(ROWS, len(probs)).clone()


@pytest.mark.exercise("sample_next")
def test_sample_next_at_temperature_zero_is_the_argmax_and_draws_nothing(impl):
    """Temperature 0 returns each row's argmax, (B, 1) int64, and leaves the generator alone."""
    logits = _logits(0, rows=16)
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    found = impl.sample_next(logits, 0.0, generator=g)
    check_close(found, logits.argmax(-1, keepdim=True), atol=0, rtol=0)
    assert torch.equal(g.get_state(), state), (
        "temperature 0 drew random numbers: greedy decoding takes the argmax, it never samples")


@pytest.mark.exercise("sample_next")
@pytest.mark.parametrize("temperature", [0.3, 1.0, 2.5])
def test_sample_next_replays_the_reference_draws_at_any_temperature(impl, temperature):
    """With the same seeded generator, sample_next draws the reference's tokens (512 rows)."""
    logits = _logits(1)
    check_close(_draw(impl.sample_next, logits, temperature=temperature),
                _draw(sample_next, logits, temperature=temperature), atol=0, rtol=0)


@pytest.mark.exercise("sample_next")
def test_sample_next_draws_tokens_with_the_tempered_probabilities(impl):
    """Over 20,000 draws at T = 0.5 each token's frequency is within 0.015 of softmax(z / T)."""
    logits = _logits(2, rows=1, vocab=6, scale=1.0).expand(20_000, 6).clone()
    draws = _draw(impl.sample_next, logits, temperature=0.5)
    freq = torch.bincount(draws.flatten(), minlength=6).double() / len(draws)
    check_close(freq, logits_to_probs(logits[0], 0.5).double(), atol=0.015, rtol=0,
                what="frequency of each token over 20,000 draws")


@pytest.mark.exercise("sample_next")
def test_sample_next_top_k_keeps_every_token_tied_with_the_kth(impl):
    """Logits 3, 2, 2, 1, 0 with top_k=2: the tie at 2 keeps tokens 0, 1 and 2, and only them."""
    logits = torch.tensor([3.0, 2.0, 2.0, 1.0, 0.0]).expand(ROWS, 5).clone()
    draws = _draw(impl.sample_next, logits, top_k=2)
    assert set(draws.flatten().tolist()) == {0, 1, 2}, (
        f"drew tokens {sorted(set(draws.flatten().tolist()))}, expected exactly [0, 1, 2]")
    check_close(draws, _draw(sample_next, logits, top_k=2), atol=0, rtol=0)


@pytest.mark.exercise("sample_next")
@pytest.mark.parametrize("top_p, kept", [(0.7, {3, 1}), (0.45, {3}), (0.3, {3}),
                                         (0.85, {3, 1, 2})])
def test_sample_next_top_p_keeps_the_smallest_set_reaching_p(impl, top_p, kept):
    """Probabilities .05/.3/.15/.5: top_p .7 keeps {3, 1} (.8 >= .7), .45 keeps {3}, .85 adds
    token 2: the token that crosses p is kept, and only tokens ranked above it."""
    logits = _rows_of([0.05, 0.3, 0.15, 0.5])
    found = _draw(impl.sample_next, logits, top_p=top_p)
    check_close(found, _draw(sample_next, logits, top_p=top_p), atol=0, rtol=0)
    drawn = set(found.flatten().tolist())
    assert drawn == kept, f"top_p={top_p} drew tokens {sorted(drawn)}, expected {sorted(kept)}"


@pytest.mark.exercise("sample_next")
def test_sample_next_applies_top_p_to_the_probabilities_left_after_top_k(impl):
    """.35/.25/.2/.2 with top_k=2 leaves .58/.42; top_p .5 then keeps token 0 alone."""
    logits = _rows_of([0.35, 0.25, 0.2, 0.2])
    found = _draw(impl.sample_next, logits, top_k=2, top_p=0.5)
    check_close(found, _draw(sample_next, logits, top_k=2, top_p=0.5), atol=0, rtol=0)


@pytest.mark.exercise("sample_next")
def test_sample_next_rejects_a_negative_temperature(impl):
    """A negative temperature has no meaning: ValueError naming temperature."""
    with pytest.raises(ValueError, match="temperature"):
        impl.sample_next(_logits(3, rows=2), -0.5)


# --- apply_repetition_penalty ------------------------------------------------------------------

@pytest.mark.exercise("apply_repetition_penalty")
def test_repetition_penalty_divides_positive_and_multiplies_negative_seen_logits(impl):
    """Penalty 2: row 0 saw tokens 0, 1, 1 and row 1 saw 2, 4, 4; each seen token once, per row."""
    logits = torch.tensor([[2.0, -2.0, 1.0, 0.5, -1.0], [2.0, -2.0, 1.0, 0.5, -1.0]])
    ids = torch.tensor([[0, 1, 1], [2, 4, 4]])
    expected = torch.tensor([[1.0, -4.0, 1.0, 0.5, -1.0], [2.0, -2.0, 0.5, 0.5, -2.0]])
    check_close(impl.apply_repetition_penalty(logits, ids, 2.0), expected, atol=0, rtol=0)


@pytest.mark.exercise("apply_repetition_penalty")
@given(batch=st.integers(1, 3), vocab=st.integers(2, 12), seq=st.integers(1, 10),
       penalty=st.floats(1.01, 5.0), seed=st.integers(0, 2**16))
def test_repetition_penalty_matches_the_reference_on_any_batch(
    impl, batch, vocab, seq, penalty, seed
):
    """For random logits, token ids with repeats and any penalty > 1, the reference's result."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, vocab, generator=g) * 3
    ids = torch.randint(0, vocab, (batch, seq), generator=g)
    check_close(impl.apply_repetition_penalty(logits, ids, penalty),
                apply_repetition_penalty(logits, ids, penalty), atol=1e-6, rtol=1e-6)


@pytest.mark.exercise("apply_repetition_penalty")
def test_repetition_penalty_never_raises_a_seen_logit_and_keeps_the_others(impl):
    """With penalty 1.5 no seen token's logit rises (whatever its sign); unseen logits stay."""
    logits = _logits(4, rows=4, vocab=10)
    ids = torch.tensor([[0, 1, 2], [3, 3, 3], [9, 0, 5], [7, 8, 9]])
    out = impl.apply_repetition_penalty(logits, ids, 1.5)
    seen = torch.zeros_like(logits, dtype=torch.bool).scatter(1, ids, True)
    risen = (out > logits) & seen
    assert not risen.any(), (
        f"{int(risen.sum())} seen logits rose, e.g. {logits[risen][0]:.3f} -> "
        f"{out[risen][0]:.3f}: a penalty must never make a seen token more likely")
    check_close(out[~seen], logits[~seen], atol=0, rtol=0, what="logits of unseen tokens")


# --- greedy_decode and decode_with_cache -------------------------------------------------------

PROMPT_LEN, NEW = 8, 12


@pytest.fixture(scope="module")
def model() -> MiniMindForCausalLM:
    """A random-weight tiny model in float64: any two correct decoders agree on every argmax."""
    torch.manual_seed(0)
    config = preset("tiny", max_position_embeddings=256)  # vocab 32, 2 blocks
    return randomize_weights(MiniMindForCausalLM(config), seed=0).double()


def _prompt(seed: int = 0, batch: int = 3) -> torch.Tensor:
    return torch.randint(0, 32, (batch, PROMPT_LEN), generator=torch.Generator().manual_seed(seed))


@pytest.mark.exercise("greedy_decode")
def test_greedy_decode_appends_the_argmax_of_the_last_position_at_every_step(impl, model):
    """Without penalty, 12 tokens after 3 prompts are the reference's argmax tokens."""
    prompt = _prompt(1)
    check_close(impl.greedy_decode(model, prompt, NEW), greedy_decode(model, prompt, NEW),
                atol=0, rtol=0)


@pytest.mark.exercise("greedy_decode")
def test_greedy_decode_returns_the_prompt_followed_by_the_new_tokens(impl, model):
    """The output is (B, T + new) and starts with the prompt unchanged."""
    prompt = _prompt(2)
    out = impl.greedy_decode(model, prompt, 5)
    assert tuple(out.shape) == (3, PROMPT_LEN + 5), (
        f"shape {tuple(out.shape)}, expected {(3, PROMPT_LEN + 5)}: the prompt and the new tokens")
    check_close(out[:, :PROMPT_LEN], prompt, atol=0, rtol=0, what="prompt part of the output")


@pytest.mark.exercise("greedy_decode")
@pytest.mark.parametrize("penalty", [1.5, 3.0])
def test_greedy_decode_penalises_the_prompt_and_every_generated_token(impl, model, penalty):
    """With a repetition penalty, the reference's tokens: every token so far counts as seen."""
    prompt = _prompt(3)
    check_close(impl.greedy_decode(model, prompt, NEW, repetition_penalty=penalty),
                greedy_decode(model, prompt, NEW, repetition_penalty=penalty), atol=0, rtol=0)


@pytest.mark.exercise("decode_with_cache")
def test_decode_with_cache_gives_exactly_the_tokens_of_greedy_decode(impl, model):
    """With the KV cache, the same 12 tokens as recomputing the whole sequence every step."""
    prompt = _prompt(4)
    check_close(impl.decode_with_cache(model, prompt, NEW), greedy_decode(model, prompt, NEW),
                atol=0, rtol=0)


@pytest.mark.exercise("decode_with_cache")
def test_decode_with_cache_feeds_the_prompt_once_then_one_token_per_step(impl, model):
    """Every call's (positions fed, positions already cached): (8, 0), then (1, 8), (1, 9), ..."""
    calls = []

    def record(module, args):  # MiniMindModel.forward(input_ids, past_key_values, ...)
        past = args[1] if len(args) > 1 else None
        calls.append([args[0].shape[1], past[0][0].shape[1] if past else 0])

    hook = model.model.register_forward_pre_hook(record)
    try:
        impl.decode_with_cache(model, _prompt(5), NEW)
    finally:
        hook.remove()
    expected = [[PROMPT_LEN, 0]] + [[1, PROMPT_LEN + i] for i in range(NEW - 1)]
    check_close(torch.tensor(calls), torch.tensor(expected), atol=0, rtol=0,
                what="list of [positions fed, positions cached] per model call")


@pytest.mark.exercise("decode_with_cache")
def test_decode_with_cache_applies_the_repetition_penalty_like_greedy_decode(impl, model):
    """With penalty 3, the cache gives greedy_decode's penalised tokens."""
    prompt = _prompt(6)
    check_close(impl.decode_with_cache(model, prompt, NEW, repetition_penalty=3.0),
                greedy_decode(model, prompt, NEW, repetition_penalty=3.0), atol=0, rtol=0)

