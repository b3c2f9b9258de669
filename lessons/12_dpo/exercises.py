"""Lesson 12 exercises: DPO. Replace each `raise NotImplementedError` with your code.

Check your work with `pytest -m exercise lessons/12_dpo` (seconds). The README explains what
each function must do and why; `pytest --solutions` shows the reference passing.
"""
import torch  # noqa: F401  (you will need it)
import torch.nn.functional as F  # noqa: F401  (you may need it)
from torch import Tensor

REFERENCE = "minimind.dpo"  # where the answers live; peek only when stuck


def sequence_logprob(logits: Tensor, ids: Tensor, mask: Tensor, average: bool = False) -> Tensor:
    """The (B,) log-probability of the masked tokens of each row of ids.

    logits (B, T, V) are the model's output on ids (B, T): the logits at position t are the
    prediction of token t + 1. mask (B, T) is True on the tokens to score (the answer). Sum,
    over the masked tokens t, the log-softmax probability the model gave ids[t] (read from the
    logits that predicted it); with average=True divide each row's sum by its number of scored
    tokens. A masked first token has no prediction and does not count.
    """
    raise NotImplementedError


def dpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor,
             ref_rejected: Tensor, beta: float = 0.1) -> Tensor:
    """The (B,) DPO loss of each pair, from four (B,) sequence log-probabilities.

    -log sigmoid(beta * ((policy_chosen - policy_rejected) - (ref_chosen - ref_rejected))),
    finite for any margin, however large (torch has a stable log-sigmoid).
    """
    raise NotImplementedError
