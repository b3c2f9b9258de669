"""Lesson 10 exercises: supervised fine-tuning. Replace each `raise NotImplementedError` with code.

Check your work with `pytest -m exercise lessons/10_sft` (seconds). The README explains what
each function must do and why; `pytest --solutions` shows the reference passing.
"""
from typing import Sequence

import torch  # noqa: F401  (you will need it)
from torch import Tensor

REFERENCE = "minimind.sft"  # where the answers live; peek only when stuck
IGNORE = -100  # the label cross-entropy skips


def assistant_labels(ids: Tensor, start: Sequence[int], end: Sequence[int]) -> Tensor:
    """MiniMind's loss mask, as labels for one tokenized ChatML conversation.

    ids: (T,) int64 token ids. start: the ids of `<|im_start|>assistant\\n`. end: the ids of
    `<|im_end|>\\n`. Return a (T,) int64 tensor: labels[i] = ids[i] for every token from the one
    right after an occurrence of `start` through the next occurrence of `end`, inclusive (the
    answer AND its closing marker), and IGNORE (-100) everywhere else (system and user turns,
    every role header, anything after the last answer). Every assistant turn of a multi-turn
    conversation is supervised. A span whose `end` never comes (the conversation was cut off)
    runs to the last token. Raise ValueError when start or end is empty.
    """
    raise NotImplementedError


def masked_mean(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """The mean of `values` over the entries where `mask` (bool, same shape) is True.

    dim=None: one number over the whole tensor; dim=d: the mean along dimension d (that
    dimension disappears). A mean over no entries at all is 0, not NaN. Raise ValueError when
    mask and values differ in shape.
    """
    raise NotImplementedError
