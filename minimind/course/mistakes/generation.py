"""Lesson 09 (generation): the exercises and their known wrong versions."""
import torch

from minimind.course.mistakes import mistake
from minimind.generate import apply_repetition_penalty as _penalty
from minimind.generate import top_k_mask as _top_k_mask
from minimind.generate import top_p_mask as _top_p_mask

REFERENCE = "minimind.generate"
EXERCISES = ("sample_next", "apply_repetition_penalty", "greedy_decode", "decode_with_cache")

_NEG_INF = float("-inf")


# --- sample_next: each wrong version differs from the reference in one step ---------------------

def _sample(logits, temperature, top_k, top_p, generator, *, scale=None, keep_k=None,
            keep_p=None, p_before_k=False):
    """The reference's steps, any one of which a wrong version replaces."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = scale(logits, temperature) if scale else logits / temperature
    unfiltered = torch.softmax(logits, dim=-1)
    if top_k is not None:
        logits = logits.masked_fill(~(keep_k or _top_k_mask)(logits, top_k), _NEG_INF)
    probs = torch.softmax(logits, dim=-1)
    if top_p is not None and top_p < 1:
        keep = (keep_p or _top_p_mask)(unfiltered if p_before_k else probs, top_p)
        probs = probs * keep
    return torch.multinomial(probs, 1, generator=generator)


@mistake("sample_next", "temperature applied after the softmax (it then changes nothing)",
         hint="temperature sharpens or flattens the distribution only when it scales the "
              "logits, before the softmax")
def sample_temperature_after_softmax(logits, temperature=1.0, top_k=None, top_p=None,
                                     generator=None):
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    probs = torch.softmax(logits, dim=-1) / temperature
    if top_k is not None:
        probs = probs * _top_k_mask(logits, top_k)
    if top_p is not None and top_p < 1:
        probs = probs * _top_p_mask(probs / probs.sum(-1, keepdim=True), top_p)
    return torch.multinomial(probs, 1, generator=generator)


@mistake("sample_next", "logits multiplied by the temperature instead of divided",
         hint="a low temperature must make the distribution sharper, a high one flatter")
def sample_temperature_multiplied(logits, temperature=1.0, top_k=None, top_p=None,
                                  generator=None):
    return _sample(logits, temperature, top_k, top_p, generator,
                   scale=lambda x, t: x * t)


@mistake("sample_next", "temperature 0 not treated as greedy (divides by zero)",
         hint="temperature 0 is the limit of ever sharper distributions: return the argmax "
              "without dividing or drawing")
def sample_zero_temperature_divides(logits, temperature=1.0, top_k=None, top_p=None,
                                    generator=None):
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)


@mistake("sample_next", "top-k keeps exactly k tokens, breaking ties with the k-th by index",
         hint="keep every token whose logit is at least the k-th largest: a token tied with "
              "the k-th is as likely as it and stays too")
def sample_top_k_exactly_k(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    def exactly_k(x, k):
        idx = torch.topk(x, min(k, x.shape[-1]), dim=-1).indices
        return torch.zeros_like(x, dtype=torch.bool).scatter(-1, idx, True)

    return _sample(logits, temperature, top_k, top_p, generator, keep_k=exactly_k)


def _cumsum_keep(probs, p, *, inclusive=False, descending=True, sort=True):
    """Keep a token when the running sum of the tokens ranked before it is below p (or, with
    inclusive=True, the running sum up to and including it)."""
    if sort:
        ranked, order = torch.sort(probs, dim=-1, descending=descending, stable=True)
    else:
        ranked, order = probs, torch.arange(probs.shape[-1]).expand_as(probs)
    running = ranked.cumsum(dim=-1)
    keep = (running if inclusive else running - ranked) < p
    return keep.scatter(-1, order, keep)


@mistake("sample_next", "top-p drops the token that crosses p (keeps only cumsum < p)",
         hint="the kept set must reach p: the token whose probability takes the running sum "
              "past p belongs to it, and the most probable token is always kept")
def sample_top_p_drops_crossing_token(logits, temperature=1.0, top_k=None, top_p=None,
                                      generator=None):
    return _sample(logits, temperature, top_k, top_p, generator,
                   keep_p=lambda x, p: _cumsum_keep(x, p, inclusive=True))


# Before the ascending ranking: on the test that combines top-k and top-p both keep the
# same tokens, and the diagnosis names the first match.
@mistake("sample_next", "top-p measured on the distribution before top-k removed tokens",
         hint="filter in order: after top-k, softmax over the tokens that are left, and run "
              "top-p on those renormalised probabilities")
def sample_top_p_before_top_k(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    return _sample(logits, temperature, top_k, top_p, generator, p_before_k=True)


@mistake("sample_next", "top-p ranks the tokens from least to most probable",
         hint="the nucleus is the most probable tokens: sort in descending order before the "
              "running sum")
def sample_top_p_ascending(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    return _sample(logits, temperature, top_k, top_p, generator,
                   keep_p=lambda x, p: _cumsum_keep(x, p, descending=False))


@mistake("sample_next", "top-p sums the probabilities in vocabulary order, unsorted",
         hint="rank the tokens by probability before the running sum: the nucleus is the "
              "most probable tokens, wherever they sit in the vocabulary")
def sample_top_p_unsorted(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    return _sample(logits, temperature, top_k, top_p, generator,
                   keep_p=lambda x, p: _cumsum_keep(x, p, sort=False))


# --- apply_repetition_penalty ----------------------------------------------------------------

@mistake("apply_repetition_penalty", "penalty applied to every token, seen or not",
         hint="only tokens that occur in the row's ids are penalised; the others keep their "
              "logits")
def penalty_every_token(logits, ids, penalty):
    return torch.where(logits > 0, logits / penalty, logits * penalty)


@mistake("apply_repetition_penalty", "rule swapped: positive logits multiplied, negative divided",
         hint="with penalty > 1 a seen token must become less likely: shrink a positive logit "
              "towards 0 and push a negative one further down")
def penalty_rule_swapped(logits, ids, penalty):
    seen = torch.gather(logits, 1, ids)
    seen = torch.where(seen > 0, seen * penalty, seen / penalty)
    return logits.scatter(1, ids, seen)


@mistake("apply_repetition_penalty", "every seen logit divided, negative ones too (they rise)",
         hint="dividing a negative logit by penalty > 1 moves it towards 0 and makes the token "
              "more likely: negative logits are multiplied")
def penalty_always_divides(logits, ids, penalty):
    return logits.scatter(1, ids, torch.gather(logits, 1, ids) / penalty)


@mistake("apply_repetition_penalty", "penalty compounded once per occurrence",
         hint="a token seen three times is penalised once, like a token seen once")
def penalty_per_occurrence(logits, ids, penalty):
    out = logits.clone()
    for b in range(ids.shape[0]):
        for t in ids[b].tolist():
            x = out[b, t]
            out[b, t] = x / penalty if x > 0 else x * penalty
    return out


@mistake("apply_repetition_penalty", "tokens seen in any row penalised in every row",
         hint="each row of the batch is its own text: penalise row b for the tokens in "
              "ids[b] only")
def penalty_across_batch(logits, ids, penalty):
    every = ids.reshape(1, -1).expand(logits.shape[0], -1)
    return _penalty(logits, every, penalty)


@mistake("apply_repetition_penalty", "penalty subtracted from seen logits (a presence penalty)",
         hint="the repetition penalty is a factor: divide positive logits by it and multiply "
              "negative ones")
def penalty_subtracted(logits, ids, penalty):
    return logits.scatter(1, ids, torch.gather(logits, 1, ids) - penalty)


# --- greedy_decode -----------------------------------------------------------------------------

def _greedy(model, input_ids, max_new_tokens, repetition_penalty=1.0, *, pick=None,
            penalised=None):
    ids = input_ids
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits = model(ids).logits[:, -1, :]
            seen = penalised(input_ids, ids) if penalised else ids
            if seen.shape[1]:
                logits = _penalty(logits, seen, repetition_penalty)
            token = pick(logits) if pick else logits.argmax(dim=-1, keepdim=True)
            ids = torch.cat([ids, token], dim=1)
    return ids


@mistake("greedy_decode", "sampling with a fixed seed instead of the argmax",
         hint="greedy decoding draws nothing: take each row's most likely token, every step")
def greedy_sampled_with_fixed_seed(model, input_ids, max_new_tokens, repetition_penalty=1.0):
    g = torch.Generator().manual_seed(0)
    return _greedy(model, input_ids, max_new_tokens, repetition_penalty,
                   pick=lambda x: torch.multinomial(torch.softmax(x, -1), 1, generator=g))


@mistake("greedy_decode", "repetition penalty for the prompt's tokens only",
         hint="the penalty covers every token so far: the prompt and what has been generated")
def greedy_penalty_prompt_only(model, input_ids, max_new_tokens, repetition_penalty=1.0):
    return _greedy(model, input_ids, max_new_tokens, repetition_penalty,
                   penalised=lambda prompt, ids: prompt)


@mistake("greedy_decode", "repetition penalty for the generated tokens only",
         hint="the prompt's tokens count as seen too (Hugging Face penalises all of input_ids)")
def greedy_penalty_generated_only(model, input_ids, max_new_tokens, repetition_penalty=1.0):
    return _greedy(model, input_ids, max_new_tokens, repetition_penalty,
                   penalised=lambda prompt, ids: ids[:, prompt.shape[1]:])


@mistake("greedy_decode", "returns only the new tokens, without the prompt",
         hint="return the whole sequence, prompt first: (B, T + max_new_tokens)")
def greedy_new_tokens_only(model, input_ids, max_new_tokens, repetition_penalty=1.0):
    ids = _greedy(model, input_ids, max_new_tokens, repetition_penalty)
    return ids[:, input_ids.shape[1]:]


@mistake("greedy_decode", "next token read from the first position's logits",
         hint="the logits that predict the next token are those of the last position")
def greedy_first_position(model, input_ids, max_new_tokens, repetition_penalty=1.0):
    ids = input_ids
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits = _penalty(model(ids).logits[:, 0, :], ids, repetition_penalty)
            ids = torch.cat([ids, logits.argmax(dim=-1, keepdim=True)], dim=1)
    return ids


# --- decode_with_cache -------------------------------------------------------------------------

def _cached(model, input_ids, max_new_tokens, repetition_penalty=1.0, *, feed_next=None,
            keep_past=True, first_past=False, refeed_last=False):
    ids, feed, past = input_ids, input_ids, None
    with torch.no_grad():
        if refeed_last:
            past = model(input_ids, use_cache=True).past_key_values
            feed = input_ids[:, -1:]
        for step in range(max_new_tokens):
            out = model(feed, past_key_values=past, use_cache=True)
            if keep_past or (first_past and step == 0):
                past = out.past_key_values
            logits = _penalty(out.logits[:, -1, :], ids, repetition_penalty)
            token = logits.argmax(dim=-1, keepdim=True)
            ids = torch.cat([ids, token], dim=1)
            feed = feed_next(ids, token) if feed_next else token
    return ids


@mistake("decode_with_cache", "the whole sequence fed again at every step, on top of the cache",
         hint="the cache already holds every earlier position: feed only the newest token, "
              "which the model then places right after them")
def cache_refeeds_whole_sequence(model, input_ids, max_new_tokens, repetition_penalty=1.0):
    return _cached(model, input_ids, max_new_tokens, repetition_penalty,
                   feed_next=lambda ids, token: ids)


@mistake("decode_with_cache", "no cache: the whole sequence recomputed at every step",
         hint="keep out.past_key_values and pass it back with only the newest token; the "
              "tokens are right but every step redoes all the earlier positions")
def cache_never_used(model, input_ids, max_new_tokens, repetition_penalty=1.0):
    ids = input_ids
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits = _penalty(model(ids).logits[:, -1, :], ids, repetition_penalty)
            ids = torch.cat([ids, logits.argmax(dim=-1, keepdim=True)], dim=1)
    return ids


@mistake("decode_with_cache", "cache kept from the prompt only, never updated",
         hint="each call returns a longer cache: pass the newest past_key_values to the next "
              "call, or every new token sits at the same position and forgets the ones before")
def cache_stale(model, input_ids, max_new_tokens, repetition_penalty=1.0):
    return _cached(model, input_ids, max_new_tokens, repetition_penalty, keep_past=False,
                   first_past=True)


@mistake("decode_with_cache", "newest token fed without the cache",
         hint="a single token without past_key_values is a new text of one token at position "
              "0: pass the cache with it")
def cache_dropped(model, input_ids, max_new_tokens, repetition_penalty=1.0):
    return _cached(model, input_ids, max_new_tokens, repetition_penalty, keep_past=False)


@mistake("decode_with_cache", "last prompt token fed twice: in the prompt and again as a step",
         hint="the prompt's call already gives the logits for the first new token; feeding its "
              "last token again stores it twice and shifts every later position by one")
def cache_refeeds_last_prompt_token(model, input_ids, max_new_tokens, repetition_penalty=1.0):
    return _cached(model, input_ids, max_new_tokens, repetition_penalty, refeed_last=True)


@mistake("decode_with_cache", "repetition penalty ignored",
         hint="apply the penalty for every token so far to each step's logits, as "
              "greedy_decode does")
def cache_without_penalty(model, input_ids, max_new_tokens, repetition_penalty=1.0):
    return _cached(model, input_ids, max_new_tokens, 1.0)
