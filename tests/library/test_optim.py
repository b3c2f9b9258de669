"""The schedule and the optimizer's parameter groups."""
from __future__ import annotations

import math

from minimind.config import preset
from minimind.model import MiniMindForCausalLM
from minimind.optim import lr_at, param_groups


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
