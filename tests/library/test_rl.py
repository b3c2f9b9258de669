"""GRPO: group advantages, the clipped loss, the KL estimate, rollouts and a training run."""
from __future__ import annotations

import pytest
import torch

from minimind.lab.chat import chat_config, chat_tokenizer
from minimind.model import MiniMindForCausalLM
from minimind.rl import (
    clipped_policy_loss,
    group_advantages,
    grpo_loss,
    kl_estimate,
    sample_groups,
    token_logprobs,
    train_grpo,
)
from minimind.tasks import make_tasks

TOK = chat_tokenizer()


def test_group_advantages_standardise_within_groups_with_bessel():
    """(r - mean) / (std + eps) per contiguous group, std with n - 1; equal groups give 0."""
    r = torch.tensor([1.0, 0.0, 0.1, 0.1, 0.1, 0.1])
    adv = group_advantages(r, 3)
    torch.testing.assert_close(adv[:3], (r[:3] - r[:3].mean()) / (r[:3].std() + 1e-4))
    assert torch.equal(adv[3:], torch.zeros(3))  # all 0.1: exactly 0 despite float rounding
    with pytest.raises(ValueError, match="groups of 4"):
        group_advantages(r, 4)


def test_clipped_loss_and_kl_estimate_at_the_start():
    """On-policy the loss is -A per token; the KL estimate is 0 where the models agree."""
    logp = -torch.rand(2, 3)
    adv = torch.tensor([0.5, -1.0])
    torch.testing.assert_close(clipped_policy_loss(logp, logp, adv), -adv[:, None].expand(2, 3))
    assert torch.equal(kl_estimate(logp, logp), torch.zeros(2, 3))
    assert (kl_estimate(logp, logp - 1) > 0).all() and (kl_estimate(logp, logp + 1) > 0).all()


def test_sample_groups_masks_each_answer_through_its_end_marker():
    """Rows are prompt + answer; the target mask covers exactly the answer tokens."""
    torch.manual_seed(0)
    model = MiniMindForCausalLM(chat_config(TOK.vocab_size, hidden_size=32))
    tasks = make_tasks("addition", 2, seed=0, digits=1)
    ro = sample_groups(model, TOK, tasks, 3, 4, 1.0, torch.Generator().manual_seed(0))
    assert ro.ids.shape[0] == 6 and ro.mask.shape == (6, ro.ids.shape[1] - 1)
    assert ro.rewards.shape == (6,) and ro.mask.sum(-1).ge(1).all()
    logp = token_logprobs(model, ro.ids)
    loss = grpo_loss(logp, logp.detach(), logp.detach(), group_advantages(ro.rewards, 3),
                     ro.mask)
    assert torch.isfinite(loss)


def test_train_grpo_runs_and_records_its_measurements():
    """Two steps: rewards, KL estimates, all-equal group shares and accuracy are recorded."""
    torch.manual_seed(0)
    model = MiniMindForCausalLM(chat_config(TOK.vocab_size, hidden_size=32))
    tasks = make_tasks("addition", 8, seed=0, digits=1)
    r = train_grpo(model, TOK, tasks, 2, prompts_per_step=2, group_size=4, max_new_tokens=3,
                   eval_tasks=tasks[:4], eval_every=1)
    assert len(r.rewards) == len(r.kls) == len(r.zero_groups) == 2
    assert [s for s, _ in r.accuracy] == [0, 1, 2]
