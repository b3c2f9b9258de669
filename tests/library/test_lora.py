"""LoRA: exact equality at init, r*(in+out) parameters, merge == adapter, adapter-only files."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from minimind.config import preset
from minimind.lora import (
    LoRAError,
    LoRALinear,
    adapter_state,
    apply_lora,
    load_adapter,
    lora_init,
    lora_linear,
    lora_parameter_count,
    merge_adapters,
    merge_lora,
    save_adapter,
    trainable_parameters,
)
from minimind.model import MiniMindForCausalLM


def _model(seed: int = 0, **changes) -> MiniMindForCausalLM:
    torch.manual_seed(seed)
    return MiniMindForCausalLM(preset("tiny", **changes)).eval()


def _ids(seed: int = 1) -> torch.Tensor:
    return torch.randint(32, (2, 12), generator=torch.Generator().manual_seed(seed))


def test_lora_init_is_a_small_random_A_and_a_zero_B():
    """A (r, in) ~ N(0, 0.02^2), B (out, r) exactly zero."""
    a, b = lora_init(64, 48, 8, generator=torch.Generator().manual_seed(0))
    assert a.shape == (8, 64) and b.shape == (48, 8)
    assert torch.count_nonzero(b) == 0
    assert 0.015 < a.std().item() < 0.025
    with pytest.raises(LoRAError, match="rank"):
        lora_init(4, 4, 0)


def test_a_lora_model_at_init_equals_the_base_model_exactly():
    """B = 0 makes every wrapped layer return exactly what the base layer returns."""
    base = _model()
    wrapped = copy.deepcopy(base)
    names = apply_lora(wrapped, rank=4)
    assert names and all(n.endswith(("q_proj", "o_proj")) for n in names)  # GQA: square only
    assert torch.equal(base(_ids()).logits, wrapped(_ids()).logits)


def test_only_the_adapter_trains_and_it_counts_r_times_in_plus_out():
    """Trainable parameters: r * (in + out) per wrapped matrix; the base is frozen."""
    model = _model()
    apply_lora(model, rank=4)
    layers = [m for m in model.modules() if isinstance(m, LoRALinear)]
    expected = sum(lora_parameter_count(m.in_features, m.out_features, 4) for m in layers)
    assert trainable_parameters(model) == expected == 2 * 2 * 4 * (32 + 32)
    assert not any(p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)


def test_merged_weights_give_the_adapters_logits():
    """After training moves B, merge_adapters gives the same logits as the adapter model."""
    model = _model()
    apply_lora(model, rank=4, alpha=8)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LoRALinear):
                m.lora_B.normal_(0, 0.1)
    adapted = model(_ids()).logits
    merged = merge_adapters(copy.deepcopy(model))
    assert not any(isinstance(m, LoRALinear) for m in merged.modules())
    torch.testing.assert_close(merged(_ids()).logits, adapted, atol=1e-5, rtol=1e-5)


def test_lora_linear_scales_the_update_by_alpha_over_rank():
    """lora_linear = x W^T + (alpha / r) x A^T B^T, and merge_lora folds the same update."""
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(3, 6, generator=g), torch.randn(5, 6, generator=g)
    a, b = torch.randn(2, 6, generator=g), torch.randn(5, 2, generator=g)
    expected = x @ w.T + 8 / 2 * (x @ a.T @ b.T)
    torch.testing.assert_close(lora_linear(x, w, a, b, alpha=8), expected)
    torch.testing.assert_close(x @ merge_lora(w, a, b, alpha=8).T, expected)


def test_an_adapter_file_holds_only_the_adapter_and_restores_the_model(tmp_path):
    """save_adapter writes lora_A/lora_B only; load_adapter on the base gives the same logits."""
    base = _model()
    tuned = copy.deepcopy(base)
    apply_lora(tuned, rank=4)
    with torch.no_grad():
        for m in tuned.modules():
            if isinstance(m, LoRALinear):
                m.lora_B.normal_(0, 0.1)
    path = save_adapter(tuned, tmp_path / "adapter.pt")
    payload = torch.load(path, weights_only=True)
    assert set(payload["weights"]) == set(adapter_state(tuned))
    assert all("lora_" in k for k in payload["weights"])
    restored = load_adapter(copy.deepcopy(base), path)
    assert torch.equal(restored(_ids()).logits, tuned(_ids()).logits)
    other = _model(hidden_size=64, num_attention_heads=4)
    with pytest.raises(LoRAError, match="shape"):
        load_adapter(other, path)


def test_a_base_checkpoint_loads_into_a_lora_model():
    """The frozen weight keeps its name, so base state-dict keys still match."""
    base = _model()
    wrapped = copy.deepcopy(base)
    apply_lora(wrapped, rank=2)
    missing, unexpected = wrapped.load_state_dict(base.state_dict(), strict=False)
    assert unexpected == [] and all("lora_" in k for k in missing)


def test_apply_lora_refuses_when_nothing_matches():
    """Targets that match no Linear raise LoRAError instead of training nothing."""
    with pytest.raises(LoRAError, match="no Linear"):
        apply_lora(_model(), targets={"not_a_layer"})
    model = nn.Sequential(nn.Linear(3, 3))
    assert apply_lora(model, rank=1, targets=lambda n, m: True) == ["0"]
