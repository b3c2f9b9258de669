"""Distillation: the mixed loss on assistant tokens and a training run."""
from __future__ import annotations

import pytest
import torch

from minimind.dataset import IGNORE, encode_chat
from minimind.distill import distill_loss, soft_kl, train_distill
from minimind.lab.chat import chat_config, chat_tokenizer
from minimind.model import MiniMindForCausalLM
from minimind.sft import sft_loss
from minimind.tasks import make_tasks


def test_distill_loss_mixes_hard_and_soft_terms_on_answer_tokens():
    """alpha * CE + (1 - alpha) * T^2 * KL; a teacher equal to the student adds nothing."""
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 4, 7, generator=g), torch.randn(2, 4, 7, generator=g)
    y = torch.tensor([[IGNORE, 3, 4, IGNORE], [1, IGNORE, 2, 6]])
    expected = 0.5 * sft_loss(s, y) + 0.5 * 1.5 ** 2 * soft_kl(s, t, y != IGNORE, 1.5)
    torch.testing.assert_close(distill_loss(s, t, y), expected)
    torch.testing.assert_close(distill_loss(s, s, y, alpha=0.3), 0.3 * sft_loss(s, y))
    torch.testing.assert_close(distill_loss(s, t, y, alpha=1.0), sft_loss(s, y))
    with pytest.raises(ValueError, match="alpha"):
        distill_loss(s, t, y, alpha=1.5)
    with pytest.raises(ValueError, match="shape"):
        soft_kl(s, t[:, :2], y != IGNORE)


def test_train_distill_runs_with_and_without_a_teacher():
    """A few steps each; the hard-only run's loss is the SFT loss."""
    tok = chat_tokenizer()
    examples = [encode_chat(tok, t.messages()) for t in make_tasks("addition", 16, digits=1)]
    cfg = chat_config(tok.vocab_size, hidden_size=32)
    torch.manual_seed(0)
    teacher = MiniMindForCausalLM(cfg)
    a = train_distill(MiniMindForCausalLM(cfg), teacher, examples, 2, batch_size=4)
    b = train_distill(MiniMindForCausalLM(cfg), None, examples, 2, batch_size=4)
    assert len(a.losses) == len(b.losses) == 2
