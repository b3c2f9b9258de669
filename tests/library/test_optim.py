"""The schedule and the optimizer's parameter groups."""
from __future__ import annotations

import math

import pytest
import torch

from minimind.config import preset
from minimind.model import MiniMindForCausalLM
from minimind.optim import (
    adamw_step,
    clip_by_global_norm,
    global_grad_norm,
    lr_at,
    masked_cross_entropy,
    param_groups,
)


def test_the_schedule_warms_up_linearly_then_decays_by_cosine_to_ten_percent():
    """Step 0 is peak/warmup, the last warmup step is the peak, the end is 10% of the peak."""
    peak, total, warm = 1e-3, 1000, 100
    assert math.isclose(lr_at(0, total, peak, warm), peak / warm)
    assert math.isclose(lr_at(warm - 1, total, peak, warm), peak)
    assert math.isclose(lr_at(warm, total, peak, warm), peak)
    assert math.isclose(lr_at(total, total, peak, warm), 0.1 * peak)
    middle = lr_at(warm + (total - warm) // 2, total, peak, warm)
    assert math.isclose(middle, 0.55 * peak)


def test_without_warmup_it_is_minimind_schedule():
    """lr * (0.1 + 0.45 * (1 + cos(pi t / T))) at every step."""
    for t in range(0, 51, 5):
        want = 5e-4 * (0.1 + 0.45 * (1 + math.cos(math.pi * t / 50)))
        assert math.isclose(lr_at(t, 50, 5e-4), want)


def test_weight_decay_skips_norm_gains_and_counts_tied_weights_once():
    """Matrices decay, 1-D gains do not, and every parameter appears in exactly one group."""
    model = MiniMindForCausalLM(preset("tiny"))
    decay, no_decay = param_groups(model, 0.1)
    assert all(p.dim() >= 2 for p in decay["params"]) and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def _grads(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g) * scale
            for shape, scale in (((4, 3), 1.0), ((7,), 5.0), ((2, 2, 2), 0.1))]


def test_global_grad_norm_is_the_norm_of_all_entries_as_one_vector():
    """The global norm equals the norm of every gradient entry concatenated."""
    grads = _grads(0)
    flat = torch.cat([g.flatten() for g in grads])
    torch.testing.assert_close(global_grad_norm(grads), flat.norm(), atol=0, rtol=1e-6)
    with pytest.raises(ValueError, match="at least one"):
        global_grad_norm([])


@pytest.mark.parametrize("max_norm", [0.5, 3.0, 1e3])
def test_clip_by_global_norm_equals_pytorch_clip_grad_norm(max_norm):
    """Clipped gradients equal torch.nn.utils.clip_grad_norm_'s, inside and outside the ball."""
    grads = _grads(1)
    params = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    clipped = clip_by_global_norm(grads, max_norm)
    torch.testing.assert_close(global_grad_norm(grads), norm, atol=0, rtol=0)
    for mine, theirs in zip(clipped, params):
        torch.testing.assert_close(mine, theirs.grad, atol=0, rtol=0)
    assert global_grad_norm(clipped) <= max_norm * (1 + 1e-6)


def test_clip_by_global_norm_rejects_a_non_positive_max_norm():
    """max_norm 0 would zero every gradient: a clear error instead."""
    with pytest.raises(ValueError, match="max_norm"):
        clip_by_global_norm(_grads(2), 0.0)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1, 0.5])
def test_adamw_step_equals_torch_adamw_over_several_steps(weight_decay):
    """Five hand-written AdamW steps equal torch.optim.AdamW's on the same weights and gradients."""
    g = torch.Generator().manual_seed(3)
    start = torch.randn(5, 4, generator=g)
    grads = [torch.randn(5, 4, generator=g) * 10 ** (k - 2) for k in range(5)]
    param = torch.nn.Parameter(start.clone())
    opt = torch.optim.AdamW([param], lr=0.05, betas=(0.9, 0.95), eps=1e-8,
                            weight_decay=weight_decay, foreach=False)
    mine, m, v = start.clone(), torch.zeros_like(start), torch.zeros_like(start)
    for step, grad in enumerate(grads, 1):
        param.grad = grad.clone()
        opt.step()
        before = mine.clone()
        mine, m, v = adamw_step(mine, grad, m, v, step, lr=0.05, betas=(0.9, 0.95), eps=1e-8,
                                weight_decay=weight_decay)
        assert not torch.equal(before, mine)
        torch.testing.assert_close(mine, param.detach(), atol=1e-6, rtol=1e-6)
    state = opt.state[param]
    torch.testing.assert_close(m, state["exp_avg"], atol=1e-7, rtol=1e-6)
    torch.testing.assert_close(v, state["exp_avg_sq"], atol=1e-7, rtol=1e-6)


def test_adamw_step_leaves_its_inputs_untouched_and_rejects_step_zero():
    """The step is pure, and counts updates from 1 (step 0 would divide by 1 - beta^0 = 0)."""
    p, grad, m, v = (torch.ones(3), torch.ones(3), torch.zeros(3), torch.zeros(3))
    adamw_step(p, grad, m, v, 1, lr=0.1)
    assert torch.equal(p, torch.ones(3)) and torch.equal(m, torch.zeros(3))
    with pytest.raises(ValueError, match="step"):
        adamw_step(p, grad, m, v, 0, lr=0.1)


def test_masked_cross_entropy_equals_pytorch_cross_entropy_with_ignore_index():
    """Equal to F.cross_entropy(ignore_index=-100), large logits and padding included."""
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(3, 6, 11, generator=g) * 30  # exp(90) overflows without the max shift
    targets = torch.randint(11, (3, 6), generator=g)
    targets[0, 3:] = -100
    targets[2, :] = -100
    want = torch.nn.functional.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1),
                                             ignore_index=-100)
    torch.testing.assert_close(masked_cross_entropy(logits, targets), want, atol=1e-5, rtol=1e-6)
    targets[targets == -100] = 7
    want = torch.nn.functional.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1),
                                             ignore_index=7)
    torch.testing.assert_close(masked_cross_entropy(logits, targets, ignore_index=7), want,
                               atol=1e-5, rtol=1e-6)


def test_masked_cross_entropy_rejects_mismatched_shapes():
    """Targets must have the logits' shape without the vocabulary axis."""
    with pytest.raises(ValueError, match="targets"):
        masked_cross_entropy(torch.zeros(2, 3, 5), torch.zeros(2, 4, dtype=torch.long))
