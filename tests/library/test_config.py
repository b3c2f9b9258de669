"""Configs: the published presets, and clear errors naming bad fields."""

import pytest

from minimind.config import ConfigError, preset


def test_minimind2_small_preset_fields_match_the_published_model():
    """Hidden 512, 8 layers, 8 heads, 2 KV heads, vocab 6400, theta 1e6, eps 1e-5, FFN 1408."""
    c = preset("minimind2-small")
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads,
            c.vocab_size, c.rope_theta, c.rms_norm_eps, c.intermediate_size,
            c.tie_word_embeddings) == (512, 8, 8, 2, 6400, 1e6, 1e-5, 1408, True)


@pytest.mark.parametrize("changes, words", [
    (dict(hidden_size=30, num_attention_heads=4), ["hidden_size (30)", "num_attention_heads (4)"]),
    (dict(num_attention_heads=4, num_key_value_heads=3), ["num_key_value_heads (3)"]),
    (dict(hidden_size=36, num_attention_heads=4, num_key_value_heads=4), ["head_dim", "even"]),
    (dict(norm="batch"), ["norm", "'batch'"]),
    (dict(position="alibi"), ["position"]),
    (dict(vocab_size=0), ["vocab_size"]),
    (dict(rms_norm_eps=0.0), ["rms_norm_eps"]),
    (dict(use_moe=True, num_experts_per_tok=5, n_routed_experts=4), ["num_experts_per_tok"]),
])
def test_invalid_config_raises_an_error_naming_the_fields(changes, words):
    """A config that cannot build a model fails at construction, naming what is wrong."""
    with pytest.raises(ConfigError) as err:
        preset("tiny", **changes)
    for word in words:
        assert word in str(err.value)


def test_replace_rederives_intermediate_size_and_rejects_unknown_fields():
    """replace() recomputes derived fields and refuses misspelt ones."""
    c = preset("minimind2-small")
    assert c.replace(ffn="gelu").intermediate_size == 4 * 512
    assert c.replace(hidden_size=768).intermediate_size == 2048
    with pytest.raises(ConfigError, match="hiden_size"):
        c.replace(hiden_size=3)
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("gpt-5")
