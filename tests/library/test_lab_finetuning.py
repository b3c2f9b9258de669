"""minimind.lab.finetuning: the masks of the two target choices, seeded SFT batches, stop rates."""
from __future__ import annotations

import torch

from minimind.dataset import IGNORE
from minimind.lab.finetuning import chat_config, eos_rate, examples, sft_batches
from minimind.tasks import make_tasks
from minimind.tokenizer import EOS_ID, PAD_ID, byte_tokenizer


def test_examples_mask_the_prompt_or_keep_every_token():
    """'assistant' labels only the answer span; 'none' labels every token."""
    tasks = make_tasks("addition", 3, seed=0, digits=1)
    for (ids, masked), (ids2, full) in zip(examples(tasks), examples(tasks, "none")):
        assert ids == ids2 and full == ids
        assert masked[-2:] == [EOS_ID, byte_tokenizer().encode("\n")[0]]
        assert all(lab == IGNORE for lab in masked[:len(ids) - 4])


def test_sft_batches_are_seeded_and_pad_with_the_chosen_label():
    """The same seed draws the same batches; padding gets -100 or the pad id as asked."""
    pairs = examples(make_tasks(["addition", "countdown"], 20, seed=1))
    a, b = sft_batches(pairs, 4, seed=3), sft_batches(pairs, 4, seed=3)
    for step in range(3):
        (xa, ya), (xb, yb) = a(step), b(step)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    x, y = sft_batches(pairs, 8, seed=0, pad_label=PAD_ID)(0)
    assert (y == IGNORE).any()  # the prompts are never targets
    assert (y == PAD_ID).any()  # the shorter rows' padding is


def test_chat_config_covers_the_byte_tokenizer_and_eos_rate_counts_stops():
    """The model's vocabulary is the tokenizer's; eos_rate is the share that emitted EOS."""
    assert chat_config().vocab_size == byte_tokenizer().vocab_size
    assert eos_rate([[5, EOS_ID], [5, 6], [EOS_ID], [7]]) == 0.5
