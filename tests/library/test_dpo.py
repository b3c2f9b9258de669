"""DPO: sequence log-probabilities under a mask, the loss, pair batches, a training run."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from minimind.dpo import (
    LN2,
    dpo_loss,
    encode_pairs,
    evaluate_pairs,
    frozen_copy,
    pair_batch,
    policy_kl,
    sequence_logprob,
    train_dpo,
)
from minimind.lab.chat import chat_config, chat_tokenizer
from minimind.model import MiniMindForCausalLM
from minimind.tasks import make_preferences

TOK = chat_tokenizer()


def test_sequence_logprob_matches_a_loop_over_tokens():
    """The sum (and mean) over masked tokens of log p(ids[t] | < t), read at position t - 1."""
    g = torch.Generator().manual_seed(0)
    logits, ids = torch.randn(2, 6, 9, generator=g), torch.randint(9, (2, 6), generator=g)
    mask = torch.tensor([[0, 0, 1, 1, 1, 0], [1, 0, 0, 1, 1, 1]], dtype=torch.bool)
    logp = torch.log_softmax(logits, -1)
    expected = [sum(logp[b, t - 1, ids[b, t]].item() for t in range(1, 6) if mask[b, t])
                for b in range(2)]
    torch.testing.assert_close(sequence_logprob(logits, ids, mask), torch.tensor(expected),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sequence_logprob(logits, ids, mask, average=True),
                               torch.tensor([expected[0] / 3, expected[1] / 3]), atol=1e-5,
                               rtol=1e-5)
    with pytest.raises(ValueError, match="mask"):
        sequence_logprob(logits, ids, mask[:, :3])


def test_dpo_loss_is_ln2_at_the_start_and_refuses_bad_beta():
    """Equal policy and reference give ln 2; beta <= 0 is an error."""
    x = torch.tensor([-3.0, -7.0])
    torch.testing.assert_close(dpo_loss(x, x + 1, x, x + 1), torch.full((2,), math.log(2)))
    assert dpo_loss(x + 1, x, x, x).lt(LN2).all()
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(x, x, x, x, beta=0)


def test_pair_batch_puts_chosen_rows_first_and_masks_only_answers():
    """Chosen then rejected, padded; the mask covers each answer and its closing marker."""
    records = make_preferences("addition", 3, seed=0, digits=1)
    batch = pair_batch(encode_pairs(TOK, records))
    assert batch.ids.shape[0] == 6 and batch.pairs == 3
    for row, rec in enumerate(records):
        answer = rec["chosen"][-1]["content"]
        scored = batch.ids[row][batch.mask[row]].tolist()
        assert TOK.decode(scored).startswith(answer)
    with pytest.raises(ValueError, match="at least one"):
        pair_batch([])


def test_train_dpo_starts_at_ln2_and_raises_the_margin():
    """A few steps on addition pairs: loss 0 is ln 2, the training margin grows, KL > 0."""
    torch.manual_seed(0)
    model = MiniMindForCausalLM(chat_config(TOK.vocab_size, hidden_size=32))
    records = make_preferences("addition", 64, seed=0, digits=1)
    ref = frozen_copy(model)
    result = train_dpo(copy.deepcopy(model), TOK, records, 8, lr=3e-3, batch_size=8,
                       reference=ref)
    assert abs(result.losses[0] - LN2) < 1e-6
    batch = pair_batch(encode_pairs(TOK, records))
    assert evaluate_pairs(result.policy, ref, batch)["margin"] > 0
    assert policy_kl(result.policy, ref, batch.ids, batch.mask) > 0
    assert policy_kl(ref, ref, batch.ids, batch.mask) == 0
