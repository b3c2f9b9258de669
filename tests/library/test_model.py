"""The model: parameter counts, Hugging Face Llama names, tied embeddings, input checks."""

import pytest
import torch

from minimind.config import preset
from minimind.model import MiniMindForCausalLM, count_parameters


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_minimind2_small_preset_has_25_829_888_parameters():
    """minimind2-small counts exactly as MiniMind2-Small does."""
    model = MiniMindForCausalLM(preset("minimind2-small"))
    assert _n_params(model) == 25_829_888 == count_parameters(model.config)


def test_parameter_names_follow_hugging_face_llama():
    """State-dict keys are the MiniMind / HF Llama names, so weights move between them by name."""
    keys = set(MiniMindForCausalLM(preset("tiny")).state_dict())
    layer = "model.layers.1."
    expected = {
        "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
        layer + "input_layernorm.weight", layer + "post_attention_layernorm.weight",
        *(layer + f"self_attn.{p}_proj.weight" for p in "qkvo"),
        *(layer + f"mlp.{p}_proj.weight" for p in ("gate", "up", "down")),
    }
    assert expected <= keys, f"missing: {expected - keys}"
    assert not any("freqs" in k for k in keys), "RoPE tables are derived, not saved"


def test_tied_embeddings_are_one_tensor():
    """With tie_word_embeddings the LM head and the embedding share storage."""
    model = MiniMindForCausalLM(preset("tiny"))
    assert model.lm_head.weight is model.model.embed_tokens.weight


def test_model_rejects_bad_input_with_a_clear_error():
    """Float ids, wrong targets shape and over-long sequences are refused with a message."""
    model = MiniMindForCausalLM(preset("tiny"))
    with pytest.raises(ValueError, match="int tensor"):
        model(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="targets"):
        model(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="max_position_embeddings=64"):
        model(torch.zeros(1, 65, dtype=torch.long))
