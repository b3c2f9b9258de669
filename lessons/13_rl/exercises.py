"""Lesson 13 exercises: RL with verifiable rewards (GRPO). Replace each
`raise NotImplementedError` with your code.

Check your work with `pytest -m exercise lessons/13_rl` (seconds). The README explains what
each function must do and why; `pytest --solutions` shows the reference passing.
"""
import torch  # noqa: F401  (you will need it)
from torch import Tensor

REFERENCE = "minimind.rl"  # where the answers live; peek only when stuck


def group_advantages(rewards: Tensor, group_size: int, eps: float = 1e-4) -> Tensor:
    """The (N,) advantages of N = groups * group_size rewards; each group is contiguous
    (rewards[0:group_size] are the answers to the first prompt, and so on).

    Within each group: (r - mean) / (std + eps), with torch's default std (Bessel's
    correction, divide by n - 1), as MiniMind computes it.
    """
    raise NotImplementedError


def clipped_policy_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor,
                        clip: float = 0.2) -> Tensor:
    """PPO's clipped surrogate loss per token, (B, T).

    logp and old_logp (B, T) are the log-probabilities of the sampled tokens under the policy
    being trained and under the policy that sampled them; advantages (B,) is one value per
    answer, shared by its tokens. ratio = pi / pi_old; the loss is minus the smaller of
    ratio * A and ratio clipped to [1 - clip, 1 + clip] times A.
    """
    raise NotImplementedError


def kl_estimate(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """MiniMind's per-token estimate of KL(policy || reference) on tokens the policy sampled:
    exp(d) - d - 1 with d = ref_logp - logp. Same shape as the inputs."""
    raise NotImplementedError
