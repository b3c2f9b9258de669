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
