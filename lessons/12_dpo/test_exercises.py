"""Exercise tests for lesson 12: each passes on a right answer and names the mistake otherwise."""
import math

import pytest
import torch

from minimind.course import check_close
from minimind.dpo import dpo_loss, sequence_logprob

ATOL, RTOL = 1e-5, 1e-5


def _scored(seed: int, B: int = 3, T: int = 7, V: int = 11):
    """Random logits and ids, and a mask marking a different answer span in each row."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, V, generator=g) * 2
    ids = torch.randint(V, (B, T), generator=g)
    mask = torch.zeros(B, T, dtype=torch.bool)
    for row, (start, end) in enumerate([(3, 7), (2, 5), (5, 6)][:B]):
        mask[row, start:end] = True  # the prompt before start, padding after end
    return logits, ids, mask


@pytest.mark.exercise("sequence_logprob")
def test_sequence_logprob_sums_the_answer_tokens_log_probabilities(impl):
    """The sum over masked tokens of log p(token | everything before it)."""
    logits, ids, mask = _scored(0)
    check_close(impl.sequence_logprob(logits, ids, mask), sequence_logprob(logits, ids, mask),
                atol=ATOL, rtol=RTOL, what="sequence log-probability")


@pytest.mark.exercise("sequence_logprob")
def test_sequence_logprob_average_divides_by_the_answer_length(impl):
    """average=True divides each row's sum by its number of scored tokens."""
    logits, ids, mask = _scored(1)
    check_close(impl.sequence_logprob(logits, ids, mask, average=True),
                sequence_logprob(logits, ids, mask, average=True), atol=ATOL, rtol=RTOL,
                what="averaged log-probability")


@pytest.mark.exercise("sequence_logprob")
def test_sequence_logprob_of_uniform_logits_is_minus_length_times_log_vocab(impl):
    """With equal logits every token has probability 1/V: n scored tokens sum to -n ln V."""
    _, ids, mask = _scored(2)
    V = 11
    found = impl.sequence_logprob(torch.zeros(*ids.shape, V), ids, mask)
    expected = -mask[:, 1:].sum(-1).float() * math.log(V)
    check_close(found, expected, atol=ATOL, rtol=RTOL, what="sequence log-probability")


@pytest.mark.exercise("sequence_logprob")
def test_sequence_logprob_reads_each_token_from_the_position_before_it(impl):
    """Logits that put all mass on token t+1 at position t give log-probability 0: certain."""
    V = 5
    ids = torch.tensor([[1, 3, 0, 4, 2, 2]])
    logits = torch.full((1, 6, V), -30.0)
    logits[0, torch.arange(5), ids[0, 1:]] = 30.0  # position t is sure of token t + 1
    mask = torch.tensor([[False, False, True, True, True, False]])
    check_close(impl.sequence_logprob(logits, ids, mask), torch.zeros(1), atol=1e-6, rtol=0,
                what="log-probability of tokens the model was sure of")


@pytest.mark.exercise("dpo_loss")
def test_dpo_loss_is_ln2_when_the_policy_is_the_reference(impl):
    """Policy log-probs equal to the reference's give exactly ln 2 for every pair."""
    g = torch.Generator().manual_seed(3)
    chosen, rejected = -torch.rand(6, generator=g) * 20, -torch.rand(6, generator=g) * 20
    check_close(impl.dpo_loss(chosen, rejected, chosen.clone(), rejected.clone(), beta=0.1),
                torch.full((6,), math.log(2)), atol=1e-6, rtol=0, what="DPO loss")


@pytest.mark.exercise("dpo_loss")
@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_loss_matches_the_formula(impl, beta):
    """-logsigmoid(beta * ((pi_c - pi_r) - (ref_c - ref_r))), one loss per pair."""
    g = torch.Generator().manual_seed(4)
    pc, pr, rc, rr = (-torch.rand(8, generator=g) * 30 for _ in range(4))
    check_close(impl.dpo_loss(pc, pr, rc, rr, beta=beta), dpo_loss(pc, pr, rc, rr, beta),
                atol=ATOL, rtol=RTOL, what="DPO loss")


@pytest.mark.exercise("dpo_loss")
def test_dpo_loss_falls_as_the_policy_prefers_the_chosen_answer(impl):
    """Raising the chosen answer's log-prob under the policy lowers the loss below ln 2."""
    zero = torch.zeros(3)
    up = torch.tensor([1.0, 5.0, 20.0])
    check_close(impl.dpo_loss(up, zero, zero, zero, beta=0.1), dpo_loss(up, zero, zero, zero),
                atol=ATOL, rtol=RTOL, what="DPO loss")


@pytest.mark.exercise("dpo_loss")
def test_dpo_loss_is_finite_for_huge_margins(impl):
    """Margins of +-10,000 nats give 0 and beta * 10,000, not inf or NaN."""
    zero = torch.zeros(2)
    m = torch.tensor([1e4, -1e4])
    check_close(impl.dpo_loss(m, zero, zero, zero, beta=0.1), dpo_loss(m, zero, zero, zero),
                atol=1e-3, rtol=1e-6, what="DPO loss at huge margins")
