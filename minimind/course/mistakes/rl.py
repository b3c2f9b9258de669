"""Lesson 13 (RL): the exercises and their known wrong versions."""
import torch

from minimind.course.mistakes import mistake

REFERENCE = "minimind.rl"
EXERCISES = ("group_advantages", "clipped_policy_loss", "kl_estimate")


@mistake("group_advantages", "normalised over the whole batch instead of per group",
         hint="each prompt's answers are compared only with each other: take the mean and std "
              "within each group")
def adv_whole_batch(rewards, group_size, eps=1e-4):
    r = rewards.float()
    return (r - r.mean()) / (r.std() + eps)


@mistake("group_advantages", "std without Bessel's correction (divides by n)",
         hint="use torch's default std, which divides by n - 1, as MiniMind does")
def adv_population_std(rewards, group_size, eps=1e-4):
    g = rewards.float().view(-1, group_size)
    return ((g - g.mean(1, keepdim=True)) / (g.std(1, unbiased=False, keepdim=True) + eps)
            ).view(-1)


@mistake("group_advantages", "eps inside the square root",
         hint="eps is added to the standard deviation, after the root")
def adv_eps_inside_sqrt(rewards, group_size, eps=1e-4):
    g = rewards.float().view(-1, group_size)
    return ((g - g.mean(1, keepdim=True)) / torch.sqrt(g.var(1, keepdim=True) + eps)).view(-1)


@mistake("group_advantages", "groups taken as every n-th reward (interleaved)",
         hint="a group is group_size consecutive rewards: reshape to (groups, group_size)")
def adv_interleaved(rewards, group_size, eps=1e-4):
    g = rewards.float().view(group_size, -1)
    return ((g - g.mean(0, keepdim=True)) / (g.std(0, keepdim=True) + eps)).view(-1)


@mistake("group_advantages", "centred but not divided by the std",
         hint="after subtracting the group mean, divide by the group's std plus eps")
def adv_no_std(rewards, group_size, eps=1e-4):
    g = rewards.float().view(-1, group_size)
    return (g - g.mean(1, keepdim=True)).view(-1)


@mistake("group_advantages", "no eps: a group of equal rewards gives 0 / 0 = NaN",
         hint="add eps to the std so a group whose rewards are all equal gets advantage 0")
def adv_no_eps(rewards, group_size, eps=1e-4):
    g = rewards.float().view(-1, group_size)
    return ((g - g.mean(1, keepdim=True)) / g.std(1, keepdim=True)).view(-1)


def _surrogates(ratio, advantages, clip):
    a = advantages[:, None]
    return ratio * a, torch.clamp(ratio, 1 - clip, 1 + clip) * a


@mistake("clipped_policy_loss", "min and max swapped",
         hint="PPO takes the pessimistic (smaller) surrogate, so a large ratio earns no "
              "extra credit")
def pg_max(logp, old_logp, advantages, clip=0.2):
    u, c = _surrogates(torch.exp(logp - old_logp), advantages, clip)
    return -torch.max(u, c)


@mistake("clipped_policy_loss", "ratio taken as the difference of log-probs, not its exp",
         hint="the ratio of probabilities is the exponential of the difference of "
              "log-probabilities")
def pg_ratio_not_exp(logp, old_logp, advantages, clip=0.2):
    u, c = _surrogates(logp - old_logp, advantages, clip)
    return -torch.min(u, c)


@mistake("clipped_policy_loss", "ratio taken as logp / old_logp",
         hint="dividing log-probabilities is not dividing probabilities: exponentiate their "
              "difference")
def pg_ratio_divided(logp, old_logp, advantages, clip=0.2):
    u, c = _surrogates(logp / old_logp, advantages, clip)
    return -torch.min(u, c)


@mistake("clipped_policy_loss", "only the clipped term, no min",
         hint="take the smaller of the unclipped and the clipped surrogate")
def pg_clipped_only(logp, old_logp, advantages, clip=0.2):
    _, c = _surrogates(torch.exp(logp - old_logp), advantages, clip)
    return -c


@mistake("clipped_policy_loss", "sign dropped: the surrogate is maximised by descent",
         hint="the loss is minus the surrogate, so that gradient descent raises the surrogate")
def pg_no_minus(logp, old_logp, advantages, clip=0.2):
    u, c = _surrogates(torch.exp(logp - old_logp), advantages, clip)
    return torch.min(u, c)


@mistake("clipped_policy_loss", "ratio clipped to [-clip, clip] instead of [1 - clip, 1 + clip]",
         hint="the ratio is near 1, so the clip range is centred on 1")
def pg_clip_around_zero(logp, old_logp, advantages, clip=0.2):
    ratio = torch.exp(logp - old_logp)
    a = advantages[:, None]
    return -torch.min(ratio * a, torch.clamp(ratio, -clip, clip) * a)


@mistake("kl_estimate", "d with the wrong sign (logp - ref_logp)",
         hint="d is the reference's log-prob minus the policy's, for tokens the policy sampled")
def kl_wrong_sign(logp, ref_logp):
    d = logp - ref_logp
    return torch.exp(d) - d - 1


@mistake("kl_estimate", "the plain log-ratio logp - ref_logp (k1), negative on some tokens",
         hint="MiniMind's estimate is exp(d) - d - 1, never negative")
def kl_log_ratio(logp, ref_logp):
    return logp - ref_logp


@mistake("kl_estimate", "half the squared log-ratio (k2)",
         hint="the estimate is exp(d) - d - 1, not d^2 / 2 (its second-order approximation)")
def kl_squared(logp, ref_logp):
    return 0.5 * (ref_logp - logp) ** 2


@mistake("kl_estimate", "the - 1 forgotten: 1 where policy and reference agree",
         hint="where the two log-probs are equal the estimate must be exactly 0")
def kl_no_minus_one(logp, ref_logp):
    d = ref_logp - logp
    return torch.exp(d) - d
