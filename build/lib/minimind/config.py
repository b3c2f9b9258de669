"""Model configuration: one dataclass, its validation, and named presets.

Field names follow MiniMind / Hugging Face Llama so a config moves between them by name.
The ablation switches (``norm``, ``norm_position``, ``position``, ``ffn``, ``residual``,
``causal``) each change exactly one thing in the model; the lessons compare models that
differ in one of them.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

NORM_KINDS = ("rms", "layer", "none")
NORM_POSITIONS = ("pre", "post")
POSITION_KINDS = ("rope", "learned", "none")
FFN_KINDS = ("swiglu", "gelu", "relu", "none")
ROPE_SCALINGS = (None, "ntk", "yarn")


class ConfigError(ValueError):
    """An invalid model configuration; the message names the fields involved."""


# Far beyond any model this library trains; a config past them is a typo or a hostile file, and
# building it would try to allocate terabytes before any other check could run.
MAX_SIZE = 1 << 20
MAX_SIZES = {"vocab_size": 1 << 22, "max_position_embeddings": 1 << 22,
             "original_max_position_embeddings": 1 << 22, "intermediate_size": 1 << 22}


def _check_types(config: ModelConfig) -> None:
    """Each init field has its annotated type: no "no" for a bool, no NaN or inf for a float.

    Python's truthiness would otherwise switch `residual="no"` on, and NaN passes every `<`
    comparison, so range checks alone cannot catch it.
    """
    for f in dataclasses.fields(config):
        if not f.init:
            continue
        value, kind = getattr(config, f.name), str(f.type)
        if value is None and "None" in kind:
            continue
        if kind.startswith("bool"):
            ok = isinstance(value, bool)
        elif kind.startswith("int"):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind.startswith("float"):
            ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
                  and math.isfinite(value))
        elif kind.startswith("str"):
            ok = isinstance(value, str)
        else:
            ok = True
        if not ok:
            want = kind.replace("float", "a finite float").replace(" | None", " or None")
            raise ConfigError(f"{f.name} must be {want}, got {value!r}")


def config_diff(a: ModelConfig, b: ModelConfig) -> list[str]:
    """The fields where two configs differ, as "name: a_value != b_value"."""
    da, db = a.to_dict(), b.to_dict()
    return [f"{k}: {da[k]!r} != {db[k]!r}" for k in da if da[k] != db[k]]


def swiglu_intermediate_size(hidden_size: int, multiple_of: int = 64) -> int:
    """MiniMind's SwiGLU width: 8/3 of hidden, rounded up to a multiple of `multiple_of`.

    A SwiGLU FFN has three matrices instead of two; 8/3 * d keeps its parameter count equal to
    the classic 4 * d two-matrix MLP (3 * 8/3 = 2 * 4).
    """
    raw = int(hidden_size * 8 / 3)
    return multiple_of * ((raw + multiple_of - 1) // multiple_of)


@dataclass
class ModelConfig:
    """Everything that defines a MiniMind-style decoder; __post_init__ sets the derived fields."""

    # --- sizes -------------------------------------------------------------------------------
    vocab_size: int = 6400  # tokens in the vocabulary (MiniMind's BPE has 6400)
    hidden_size: int = 512  # width of the residual stream, d_model
    num_hidden_layers: int = 8  # number of transformer blocks
    num_attention_heads: int = 8  # query heads
    num_key_value_heads: int | None = 2  # key/value heads (GQA); None means = query heads
    intermediate_size: int | None = None  # FFN width; None derives it from `ffn` and hidden
    max_position_embeddings: int = 32768  # longest sequence the RoPE table / learned PE covers
    # --- numerics ----------------------------------------------------------------------------
    rope_theta: float = 1e6  # RoPE base; larger means slower-turning low frequencies
    rms_norm_eps: float = 1e-5  # epsilon inside the norm's square root
    dropout: float = 0.0  # dropout on attention weights and residual branches
    initializer_range: float = 0.02  # std of the normal init for Linear and Embedding weights
    tie_word_embeddings: bool = True  # lm_head shares the embedding matrix
    flash_attn: bool = True  # use PyTorch's fused SDPA kernel; False runs the naive reference
    # --- long context (inference-time RoPE scaling) ------------------------------------------
    rope_scaling: str | None = None  # None, "ntk" (NTK-aware theta) or "yarn"
    rope_scaling_factor: float = 16.0  # how many times longer than the trained context
    original_max_position_embeddings: int = 2048  # the context length trained at
    yarn_beta_fast: float = 32.0  # YaRN: dims turning more than this often are left alone
    yarn_beta_slow: float = 1.0  # YaRN: dims turning fewer times than this are interpolated
    # --- ablation switches: each changes one thing --------------------------------------------
    norm: str = "rms"  # "rms" (RMSNorm), "layer" (LayerNorm) or "none"
    norm_position: str = "pre"  # "pre" (x + f(norm(x))) or "post" (norm(x + f(x)))
    position: str = "rope"  # "rope", "learned" (absolute embeddings, GPT-2) or "none"
    ffn: str = "swiglu"  # "swiglu", "gelu", "relu" (two-matrix MLPs) or "none"
    residual: bool = True  # False drops every skip connection
    causal: bool = True  # False lets every position attend to every other
    # --- mixture of experts ------------------------------------------------------------------
    use_moe: bool = False  # replace each dense FFN with a routed mixture of experts
    n_routed_experts: int = 4  # experts the router chooses among
    num_experts_per_tok: int = 2  # top-k experts per token
    n_shared_experts: int = 1  # experts every token always goes through
    norm_topk_prob: bool = True  # renormalise the top-k router weights to sum to 1
    aux_loss_alpha: float = 0.01  # weight of the load-balancing loss; 0 disables it
    # --- derived (set in __post_init__) ------------------------------------------------------
    head_dim: int = field(init=False)  # hidden_size // num_attention_heads
    n_rep: int = field(init=False)  # query heads per key/value head

    def __post_init__(self) -> None:
        _check_types(self)  # before deriving sizes from fields that might not be numbers
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.intermediate_size is None:
            self.intermediate_size = (
                swiglu_intermediate_size(self.hidden_size)
                if self.ffn == "swiglu"
                else 4 * self.hidden_size
            )
        self.validate()
        self.head_dim = self.hidden_size // self.num_attention_heads
        self.n_rep = self.num_attention_heads // self.num_key_value_heads

    def validate(self) -> None:
        """Raise ConfigError naming the offending fields; called on construction."""
        _check_types(self)
        for name in (
            "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "max_position_embeddings", "intermediate_size",
            "original_max_position_embeddings", "n_routed_experts", "num_experts_per_tok",
        ):
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"{name} must be a positive int, got {value!r}")
            if value > MAX_SIZES.get(name, MAX_SIZE):
                raise ConfigError(f"{name}={value} is absurdly large (the limit is "
                                  f"{MAX_SIZES.get(name, MAX_SIZE):,})")
        if self.n_shared_experts < 0:
            raise ConfigError(f"n_shared_experts must be >= 0, got {self.n_shared_experts}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(
                f"num_attention_heads ({self.num_attention_heads}) must be divisible by "
                f"num_key_value_heads ({self.num_key_value_heads})"
            )
        head_dim = self.hidden_size // self.num_attention_heads
        if self.position == "rope" and head_dim % 2:
            raise ConfigError(
                f"RoPE rotates pairs of dimensions, so head_dim must be even; hidden_size "
                f"{self.hidden_size} / num_attention_heads {self.num_attention_heads} = {head_dim}"
            )
        choices = {
            "norm": NORM_KINDS, "norm_position": NORM_POSITIONS, "position": POSITION_KINDS,
            "ffn": FFN_KINDS, "rope_scaling": ROPE_SCALINGS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        positive = ("rms_norm_eps", "initializer_range", "yarn_beta_fast", "yarn_beta_slow")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.rope_theta <= 1:
            raise ConfigError(f"rope_theta must be > 1, got {self.rope_theta}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.aux_loss_alpha < 0:
            raise ConfigError(f"aux_loss_alpha must be >= 0, got {self.aux_loss_alpha}")
        if self.rope_scaling_factor < 1:
            raise ConfigError(f"rope_scaling_factor must be >= 1, got {self.rope_scaling_factor}")
        if self.use_moe:
            if self.ffn != "swiglu":
                raise ConfigError(f"use_moe needs ffn='swiglu' experts, got ffn={self.ffn!r}")
            if not 1 <= self.num_experts_per_tok <= self.n_routed_experts:
                raise ConfigError(
                    f"num_experts_per_tok ({self.num_experts_per_tok}) must be between 1 and "
                    f"n_routed_experts ({self.n_routed_experts})"
                )

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed; derived fields are recomputed and re-validated.

        `intermediate_size` is re-derived when `ffn` or `hidden_size` changes and it was not
        given explicitly, so `cfg.replace(ffn="gelu")` gets the GELU default width.
        """
        kwargs = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        if ("ffn" in changes or "hidden_size" in changes) and "intermediate_size" not in changes:
            kwargs["intermediate_size"] = None
        unknown = set(changes) - set(kwargs)
        if unknown:
            raise ConfigError(f"unknown config field(s): {sorted(unknown)}")
        kwargs.update(changes)
        return ModelConfig(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown config field(s): {sorted(unknown)}")
        return cls(**data)


PRESETS: dict[str, dict[str, Any]] = {
    # MiniMind2-Small: 25,829,888 parameters.
    "minimind2-small": {
        "vocab_size": 6400, "hidden_size": 512, "num_hidden_layers": 8, "num_attention_heads": 8,
        "num_key_value_heads": 2, "rope_theta": 1e6, "rms_norm_eps": 1e-5,
    },
    # MiniMind2: 104,030,976 parameters.
    "minimind2": {
        "vocab_size": 6400, "hidden_size": 768, "num_hidden_layers": 16, "num_attention_heads": 8,
        "num_key_value_heads": 2, "rope_theta": 1e6, "rms_norm_eps": 1e-5,
    },
    # MiniMind2-MoE: MiniMind2-Small's shape with routed experts.
    "minimind2-moe": {
        "vocab_size": 6400, "hidden_size": 640, "num_hidden_layers": 8, "num_attention_heads": 8,
        "num_key_value_heads": 2, "use_moe": True,
    },
    # `minimind train`'s default: a BPE model that learns Shakespeare on a CPU in minutes.
    "small": {
        "vocab_size": 2048, "hidden_size": 192, "num_hidden_layers": 4, "num_attention_heads": 6,
        "num_key_value_heads": 2, "max_position_embeddings": 1024,
    },
    # Character-level experiments on a CPU: seconds per hundred steps.
    "char-small": {
        "vocab_size": 128, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 4, "max_position_embeddings": 512,
    },
    # Unit tests: milliseconds.
    "tiny": {
        "vocab_size": 32, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 64,
    },
}


def preset(name: str, **overrides: Any) -> ModelConfig:
    """A named configuration, optionally with some fields changed."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return ModelConfig(**{**PRESETS[name], **overrides})
