"""Exercise tests for lesson 08: each passes on a right answer and names the mistake otherwise."""
import math
import random

import pytest
import torch

from minimind.course import check_close
from minimind.optim import adamw_step, clip_by_global_norm, global_grad_norm, lr_at

# --- lr_at ---------------------------------------------------------------------------------

SCHEDULES = [(1000, 1e-3, 100, 0.1), (50, 5e-4, 0, 0.1), (20, 2e-2, 5, 0.0), (7, 1.0, 3, 0.5)]


@pytest.mark.exercise("lr_at")
@pytest.mark.parametrize("total, peak, warmup, min_ratio", SCHEDULES)
def test_lr_at_matches_the_reference_schedule_at_every_step(impl, total, peak, warmup,
                                                            min_ratio):
    """Every step's rate, from 0 to past the end, equals the warmup-then-cosine reference."""
    for step in range(total + 3):
        check_close(impl.lr_at(step, total, peak, warmup, min_ratio),
                    lr_at(step, total, peak, warmup, min_ratio), atol=0, rtol=1e-9,
                    what=f"learning rate at step {step}")


@pytest.mark.exercise("lr_at")
def test_lr_at_first_warmup_step_already_moves_the_weights(impl):
    """Step 0 of a 10-step warmup is peak / 10, not 0; step 9 is the peak."""
    check_close(impl.lr_at(0, 100, 1e-3, 10), 1e-4, atol=0, rtol=1e-9,
                what="learning rate at step 0")
    check_close(impl.lr_at(9, 100, 1e-3, 10), 1e-3, atol=0, rtol=1e-9,
                what="learning rate at the last warmup step")


@pytest.mark.exercise("lr_at")
def test_lr_at_reaches_the_floor_exactly_at_total_steps(impl):
    """The floor min_ratio * peak is reached at step total_steps, not a step before or after."""
    check_close(impl.lr_at(100, 100, 1.0, 10), 0.1, atol=0, rtol=1e-9,
                what="learning rate at step total_steps")
    before = impl.lr_at(99, 100, 1.0, 10)
    assert before > 0.1 + 1e-6, (
        f"lr_at(99) = {before:.6g} is already the floor 0.1: the cosine ends a step early")
    check_close(impl.lr_at(150, 100, 1.0, 10), 0.1, atol=0, rtol=1e-9,
                what="learning rate after total_steps")


@pytest.mark.exercise("lr_at")
def test_lr_at_never_rises_after_warmup_and_stays_between_floor_and_peak(impl):
    """After warmup the rate never rises, and it is always within [floor, peak]."""
    rng = random.Random(0)  # 300 random schedules and steps, the same every run
    for _ in range(300):
        total = rng.randint(2, 400)
        warmup, min_ratio = min(rng.randint(0, 50), total - 1), rng.uniform(0.0, 0.9)
        step = rng.randint(warmup, total + 5)
        now = impl.lr_at(step, total, 1.0, warmup, min_ratio)
        after = impl.lr_at(step + 1, total, 1.0, warmup, min_ratio)
        where = f"lr_at(step, total_steps={total}, 1.0, warmup={warmup}, {min_ratio:.3f})"
        assert min_ratio - 1e-12 <= now <= 1.0 + 1e-12, (
            f"{where} at step {step} = {now:.6g}, outside [floor, peak]")
        assert after <= now + 1e-12, (
            f"{where}: the rate rises from step {step} ({now:.6g}) to {step + 1} ({after:.6g})")


# --- clip_by_global_norm -------------------------------------------------------------------

def _grads(seed: int, scale: float = 1.0) -> list[torch.Tensor]:
    """Three gradients of very different sizes: per-tensor and global clipping disagree."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 3, generator=g) * 3 * scale, torch.randn(7, generator=g) * 0.2 * scale,
            torch.randn(2, 2, 2, generator=g) * scale]


def _check_clipped(found, expected):
    assert isinstance(found, tuple) and len(found) == len(expected), (
        f"expected a tuple of {len(expected)} tensors, got {type(found).__name__}")
    for i, (a, b) in enumerate(zip(found, expected)):
        check_close(a, b, atol=1e-6, rtol=1e-5, what=f"gradient {i}")


@pytest.mark.exercise("clip_by_global_norm")
def test_clip_by_global_norm_equals_pytorch_clip_grad_norm(impl):
    """Large gradients are scaled exactly as torch.nn.utils.clip_grad_norm_ scales them."""
    grads = _grads(0)
    params = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    _check_clipped(impl.clip_by_global_norm(grads, 1.0), [p.grad for p in params])


@pytest.mark.exercise("clip_by_global_norm")
def test_clip_by_global_norm_keeps_the_direction_of_the_whole_gradient(impl):
    """Every tensor shrinks by the same factor, so the clipped gradient points the same way."""
    grads = _grads(1, scale=10.0)
    clipped = impl.clip_by_global_norm(grads, 2.0)
    flat = torch.cat([g.flatten() for g in grads])
    new = torch.cat([torch.as_tensor(c).flatten() for c in clipped])
    cosine = torch.nn.functional.cosine_similarity(flat, new, dim=0).item()
    assert cosine > 1 - 1e-6, (
        f"cosine between the gradient and its clipped version is {cosine:.6f}, not 1: each "
        "tensor was scaled by a different factor")
    _check_clipped(clipped, clip_by_global_norm(grads, 2.0))


@pytest.mark.exercise("clip_by_global_norm")
def test_clip_by_global_norm_leaves_small_gradients_alone(impl):
    """A gradient whose global norm is below max_norm comes back unchanged."""
    grads = _grads(2, scale=0.01)
    assert global_grad_norm(grads) < 1.0
    _check_clipped(impl.clip_by_global_norm(grads, 1.0), grads)


@pytest.mark.exercise("clip_by_global_norm")
def test_clip_by_global_norm_result_never_exceeds_max_norm(impl):
    """Whatever the gradients, the clipped global norm is at most max_norm."""
    rng = random.Random(1)  # 40 random cases, the same every run
    for _ in range(40):
        seed, scale, max_norm = rng.randint(0, 999), 10 ** rng.uniform(-3, 3), \
            10 ** rng.uniform(-2, 2)
        clipped = impl.clip_by_global_norm(_grads(seed, scale), max_norm)
        norm = global_grad_norm([torch.as_tensor(c) for c in clipped]).item()
        assert norm <= max_norm * (1 + 1e-5), (
            f"gradients of scale {scale:.3g}: clipped global norm {norm:.6g} > max_norm "
            f"{max_norm:.6g}")


@pytest.mark.exercise("clip_by_global_norm")
@pytest.mark.parametrize("max_norm", [0.0, -1.0])
def test_clip_by_global_norm_rejects_a_non_positive_max_norm(impl, max_norm):
    """max_norm <= 0 would zero or flip every gradient: ValueError naming max_norm."""
    with pytest.raises(ValueError, match="max_norm"):
        impl.clip_by_global_norm(_grads(3), max_norm)


# --- adamw_step ----------------------------------------------------------------------------

def _adamw_case(seed: int):
    g = torch.Generator().manual_seed(seed)
    start = torch.randn(6, 5, generator=g)
    # gradients whose size changes by 100x over the steps: bias correction and eps both show
    grads = [torch.randn(6, 5, generator=g) * 10.0 ** (k - 3) for k in range(6)]
    return start, grads


def _reference_adamw(start, grads, **hyper):
    """The reference's weights and moments after each step. tests/library/test_optim.py proves
    it equal to torch.optim.AdamW (whose first step imports seconds of compiler machinery)."""
    param, m, v = start, torch.zeros_like(start), torch.zeros_like(start)
    states = []
    for step, grad in enumerate(grads, 1):
        param, m, v = adamw_step(param, grad, m, v, step, **hyper)
        states.append((param, m, v))
    return states


HYPER = [dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1),
         dict(lr=0.3, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.5)]


@pytest.mark.exercise("adamw_step")
@pytest.mark.parametrize("hyper", HYPER, ids=["defaults-like", "large-lr-decay-eps"])
def test_adamw_step_equals_torch_adamw_step_after_step(impl, hyper):
    """Six steps give torch.optim.AdamW's weights and moments after every step."""
    start, grads = _adamw_case(0)
    expected = _reference_adamw(start, grads, **hyper)
    param, m, v = start.clone(), torch.zeros_like(start), torch.zeros_like(start)
    for step, (grad, (want_p, want_m, want_v)) in enumerate(zip(grads, expected), 1):
        param, m, v = impl.adamw_step(param, grad, m, v, step, **hyper)
        check_close(m, want_m, atol=1e-7, rtol=1e-5, what=f"exp_avg after step {step}")
        check_close(v, want_v, atol=1e-9, rtol=1e-5, what=f"exp_avg_sq after step {step}")
        check_close(param, want_p, atol=1e-5, rtol=1e-5, what=f"weights after step {step}")


@pytest.mark.exercise("adamw_step")
def test_adamw_first_step_moves_every_weight_by_about_lr(impl):
    """Bias-corrected, the first step is lr * sign(grad) (plus the decay), whatever the grad's
    size: a gradient of 1e-4 moves a weight as far as one of 1e4."""
    g = torch.Generator().manual_seed(1)
    grad = torch.randn(8, generator=g) * torch.logspace(-4, 4, 8)
    param = torch.zeros(8)
    new, _, _ = impl.adamw_step(param, grad, torch.zeros(8), torch.zeros(8), 1, lr=0.01,
                                weight_decay=0.0)
    check_close(new, -0.01 * grad.sign(), atol=1e-6, rtol=1e-4, what="weights after step 1")


@pytest.mark.exercise("adamw_step")
def test_adamw_weight_decay_is_decoupled_from_the_gradient(impl):
    """With a zero gradient, a weight shrinks by exactly lr * weight_decay of itself."""
    param = torch.tensor([2.0, -4.0, 0.5])
    zeros = torch.zeros(3)
    new, _, _ = impl.adamw_step(param, zeros, zeros, zeros, 3, lr=0.1, weight_decay=0.5)
    check_close(new, param * (1 - 0.1 * 0.5), atol=1e-7, rtol=1e-6,
                what="weights after a zero-gradient step")


@pytest.mark.exercise("adamw_step")
@pytest.mark.parametrize("step", [0, -1])
def test_adamw_step_rejects_a_step_count_below_one(impl, step):
    """step counts updates from 1: at 0 the bias correction would divide by 0."""
    t = torch.ones(2)
    with pytest.raises(ValueError, match="step"):
        impl.adamw_step(t, t, t * 0, t * 0, step, lr=0.1)


# --- masked_cross_entropy ------------------------------------------------------------------

def _ce_case(seed: int, scale: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 7, 11, generator=g) * scale
    targets = torch.randint(11, (3, 7), generator=g)
    targets[0, 4:] = -100  # right padding
    targets[1, :2] = -100  # a masked prompt
    return logits, targets


def _torch_ce(logits, targets, ignore_index=-100):
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                             targets.reshape(-1), ignore_index=ignore_index)


@pytest.mark.exercise("masked_cross_entropy")
def test_masked_cross_entropy_equals_pytorch_with_ignore_index(impl):
    """Equal to F.cross_entropy(..., ignore_index=-100) on a padded batch."""
    logits, targets = _ce_case(0)
    check_close(impl.masked_cross_entropy(logits, targets), _torch_ce(logits, targets),
                atol=1e-5, rtol=1e-5, what="loss")


@pytest.mark.exercise("masked_cross_entropy")
def test_masked_cross_entropy_does_not_change_when_padding_is_added(impl):
    """Appending padded positions to a batch leaves the loss exactly where it was."""
    logits, targets = _ce_case(1)
    pad_logits = torch.randn(3, 5, 11, generator=torch.Generator().manual_seed(9))
    padded = torch.cat([logits, pad_logits], 1), torch.cat([targets, torch.full((3, 5), -100)], 1)
    check_close(impl.masked_cross_entropy(*padded), _torch_ce(logits, targets), atol=1e-5,
                rtol=1e-5, what="loss of the padded batch")


@pytest.mark.exercise("masked_cross_entropy")
def test_masked_cross_entropy_is_finite_for_large_logits(impl):
    """Logits around 1000 (exp overflows float32) still give PyTorch's finite loss."""
    logits, targets = _ce_case(2, scale=1000.0)
    found = impl.masked_cross_entropy(logits, targets)
    check_close(found, _torch_ce(logits, targets), atol=1e-2, rtol=1e-5, what="loss")


@pytest.mark.exercise("masked_cross_entropy")
def test_masked_cross_entropy_uses_its_ignore_index_argument(impl):
    """With ignore_index=0 the positions whose target is 0 are the ones left out."""
    logits, targets = _ce_case(3)
    targets = targets.clamp(min=0)
    targets[2, 3:] = 0
    check_close(impl.masked_cross_entropy(logits, targets, ignore_index=0),
                _torch_ce(logits, targets, ignore_index=0), atol=1e-5, rtol=1e-5, what="loss")


@pytest.mark.exercise("masked_cross_entropy")
def test_masked_cross_entropy_of_uniform_logits_is_log_vocab(impl):
    """Equal logits give every class 1/V: the loss is ln V however many positions are padding."""
    targets = torch.tensor([[3, 1, -100, -100], [0, -100, -100, -100]])
    found = impl.masked_cross_entropy(torch.zeros(2, 4, 11), targets)
    check_close(found, torch.tensor(math.log(11)), atol=1e-6, rtol=1e-6, what="loss")


@pytest.mark.exercise("masked_cross_entropy")
def test_masked_cross_entropy_rejects_targets_of_the_wrong_shape(impl):
    """Targets must be the logits' shape without the vocabulary axis: ValueError otherwise."""
    with pytest.raises(ValueError, match="targets"):
        impl.masked_cross_entropy(torch.zeros(2, 3, 5), torch.zeros(2, 4, dtype=torch.long))
