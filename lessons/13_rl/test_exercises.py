"""Exercise tests for lesson 13: each passes on a right answer and names the mistake otherwise."""
import pytest
import torch

from minimind.course import check_close
from minimind.rl import clipped_policy_loss, group_advantages, kl_estimate

ATOL, RTOL = 1e-5, 1e-5


@pytest.mark.exercise("group_advantages")
def test_group_advantages_standardise_each_group_on_its_own(impl):
    """Three groups of four at different reward levels: each is standardised on its own."""
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.1, 1.0, 1.0, 0.1, 1.0, 0.0, 0.1, 0.1, 0.3])
    check_close(impl.group_advantages(rewards, 4), group_advantages(rewards, 4),
                atol=ATOL, rtol=RTOL, what="advantages")


@pytest.mark.exercise("group_advantages")
def test_group_advantages_of_a_group_of_equal_rewards_are_exactly_zero(impl):
    """All right or all wrong: every advantage is 0 (not NaN), so the group teaches nothing."""
    rewards = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    found = impl.group_advantages(rewards, 3)
    check_close(found, group_advantages(rewards, 3), atol=ATOL, rtol=RTOL, what="advantages")
    assert torch.equal(found[:6], torch.zeros(6)), f"equal-reward groups gave {found[:6]}"


@pytest.mark.exercise("group_advantages")
def test_group_advantages_eps_matters_for_nearly_equal_rewards(impl):
    """A group whose rewards differ by 1e-4 shows where eps sits: added to the std."""
    rewards = torch.tensor([0.0, 1e-4, 0.0, 1e-4, 1.0, 0.0])
    check_close(impl.group_advantages(rewards, 2, eps=1e-4),
                group_advantages(rewards, 2, eps=1e-4), atol=1e-4, rtol=1e-4,
                what="advantages")


@pytest.mark.exercise("group_advantages")
@pytest.mark.parametrize("group_size", [2, 4, 8])
def test_group_advantages_have_zero_mean_in_every_group(impl, group_size):
    """Random rewards in [0, 1]: each group's advantages sum to 0 and match the reference."""
    rewards = torch.randint(0, 11, (16,), generator=torch.Generator().manual_seed(group_size))
    rewards = rewards.float() / 10
    found = impl.group_advantages(rewards, group_size)
    check_close(found, group_advantages(rewards, group_size), atol=1e-4, rtol=1e-4,
                what="advantages")
    sums = found.view(-1, group_size).sum(-1)
    check_close(sums, torch.zeros_like(sums), atol=1e-4, rtol=0, what="sum per group")


def _policy_batch(seed: int):
    """Log-probs whose ratios spread from 0.5 to 2 (inside and outside the clip range)."""
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(4, 6, generator=g) * 3 - 0.1
    logp = old + (torch.rand(4, 6, generator=g) - 0.5) * 1.4
    return logp, old, torch.tensor([1.5, -0.7, 0.3, -2.0])


@pytest.mark.exercise("clipped_policy_loss")
def test_clipped_policy_loss_matches_ppo_for_both_signs_of_advantage(impl):
    """Per token: -min(ratio A, clip(ratio, 0.8, 1.2) A) with ratio = exp(logp - old_logp)."""
    logp, old, adv = _policy_batch(0)
    check_close(impl.clipped_policy_loss(logp, old, adv, clip=0.2),
                clipped_policy_loss(logp, old, adv, 0.2), atol=ATOL, rtol=RTOL,
                what="per-token loss")


@pytest.mark.exercise("clipped_policy_loss")
def test_clipped_policy_loss_at_ratio_one_is_minus_the_advantage(impl):
    """On-policy (logp == old_logp) the loss of every token is -A of its answer."""
    logp, _, adv = _policy_batch(1)
    check_close(impl.clipped_policy_loss(logp, logp.clone(), adv),
                -adv[:, None].expand_as(logp), atol=ATOL, rtol=RTOL, what="per-token loss")


@pytest.mark.exercise("clipped_policy_loss")
def test_clipped_policy_loss_gives_no_gradient_beyond_the_clip(impl):
    """A token already 1.5x likelier with A > 0 gets no further push (the clip holds it)."""
    old = torch.log(torch.tensor([[0.2, 0.2]]))
    logp = torch.log(torch.tensor([[0.3, 0.21]])).requires_grad_(True)  # ratios 1.5, 1.05
    impl.clipped_policy_loss(logp, old, torch.tensor([1.0]), clip=0.2).sum().backward()
    expected = torch.tensor([[0.0, -1.05]])  # d(-ratio)/dlogp = -ratio inside the clip
    check_close(logp.grad, expected, atol=1e-5, rtol=1e-5, what="gradient")


@pytest.mark.exercise("kl_estimate")
def test_kl_estimate_is_exp_d_minus_d_minus_1(impl):
    """exp(d) - d - 1 with d = ref_logp - logp, token by token."""
    g = torch.Generator().manual_seed(2)
    logp, ref = -torch.rand(3, 5, generator=g) * 4, -torch.rand(3, 5, generator=g) * 4
    check_close(impl.kl_estimate(logp, ref), kl_estimate(logp, ref), atol=ATOL, rtol=RTOL,
                what="KL estimate")


@pytest.mark.exercise("kl_estimate")
def test_kl_estimate_is_zero_where_policy_and_reference_agree(impl):
    """Equal log-probs give exactly 0 on every token."""
    logp = -torch.rand(2, 4) * 3
    check_close(impl.kl_estimate(logp, logp.clone()), torch.zeros(2, 4), atol=0, rtol=0,
                what="KL estimate")


@pytest.mark.exercise("kl_estimate")
def test_kl_estimate_is_never_negative(impl):
    """On a grid of log-prob pairs from -8 to 0 the estimate is >= 0 and equals the formula."""
    grid = torch.linspace(-8, 0, 17)
    logp, ref = grid[:, None].expand(17, 17), grid[None, :].expand(17, 17)
    found = impl.kl_estimate(logp, ref)
    check_close(found, kl_estimate(logp, ref), atol=1e-5, rtol=1e-5, what="KL estimate")
    assert (found >= 0).all(), f"negative estimates: {found[found < 0][:5]}"
