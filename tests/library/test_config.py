"""ModelConfig refuses wrong types and out-of-range values instead of switching features on."""
from __future__ import annotations

import pytest

from minimind.config import PRESETS, ConfigError, ModelConfig, config_diff, preset

NAN = float("nan")


@pytest.mark.parametrize("fields, named", [
    ({"residual": "no"}, "residual"),
    ({"use_moe": "false"}, "use_moe"),
    ({"causal": 1}, "causal"),
    ({"rope_theta": NAN}, "rope_theta"),
    ({"rms_norm_eps": NAN}, "rms_norm_eps"),
    ({"rope_scaling": "yarn", "rope_scaling_factor": NAN}, "rope_scaling_factor"),
    ({"rope_scaling_factor": float("inf")}, "rope_scaling_factor"),
    ({"n_shared_experts": -1}, "n_shared_experts"),
    ({"aux_loss_alpha": -5}, "aux_loss_alpha"),
    ({"hidden_size": 64.0}, "hidden_size"),
    ({"hidden_size": "64"}, "hidden_size"),
    ({"vocab_size": 400_000_000}, "vocab_size"),
    ({"dropout": NAN}, "dropout"),
    ({"initializer_range": 0.0}, "initializer_range"),
])
def test_a_config_with_a_wrong_type_or_range_is_refused_naming_the_field(fields, named):
    """Strings for bools, NaN or inf floats, negatives and absurd sizes raise ConfigError."""
    with pytest.raises(ConfigError, match=named):
        ModelConfig(**fields)


def test_every_preset_is_a_valid_config():
    """The named presets all pass validation, including the trainer's default 'small'."""
    for name in PRESETS:
        assert preset(name).vocab_size >= 1


def test_ints_are_accepted_where_floats_are_expected():
    """rope_theta=10000 (an int) is a float value, as JSON and Hugging Face configs write it."""
    assert ModelConfig(rope_theta=10000, dropout=0).rope_theta == 10000


def test_config_diff_lists_exactly_the_fields_that_differ():
    """Two configs differing in one field produce one 'name: a != b' line."""
    a, b = preset("tiny"), preset("tiny", num_hidden_layers=3)
    assert config_diff(a, b) == ["num_hidden_layers: 2 != 3"]


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
