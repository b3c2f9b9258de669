"""Export a MiniMind model to the Hugging Face Llama format, and read one back.

A folder holds `config.json` (a `LlamaConfig`) and `model.safetensors` (the weights under the
names MiniMind already uses: `model.layers.0.self_attn.q_proj.weight`, ...), so
`transformers.LlamaForCausalLM.from_pretrained(folder)` loads it and gives the same logits.
Only the modern recipe maps onto Llama: RMSNorm, Pre-LN, RoPE, SwiGLU, residuals, causal, dense.
The rest (LayerNorm, learned positions, GELU, MoE, ...) is refused with an error naming the field.

Nothing here imports `transformers`; safetensors is the only dependency.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import Tensor

from minimind.checkpoint import atomic_write, expected_shapes, state_dict_mismatch
from minimind.config import ConfigError, ModelConfig
from minimind.model import MiniMindForCausalLM

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

# What a Llama checkpoint cannot express, as (field, the only value Llama has).
_LLAMA_FIXED = (
    ("norm", "rms"), ("norm_position", "pre"), ("position", "rope"), ("ffn", "swiglu"),
    ("residual", True), ("causal", True), ("use_moe", False), ("rope_scaling", None),
)


class ExportError(ValueError):
    """A model or folder that cannot be written or read as a Hugging Face Llama checkpoint."""


def check_llama_compatible(config: ModelConfig) -> None:
    """Raise ExportError naming every field Llama cannot represent."""
    bad = [f"{name}={getattr(config, name)!r} (Llama has {want!r})"
           for name, want in _LLAMA_FIXED if getattr(config, name) != want]
    if bad:
        raise ExportError("Hugging Face Llama cannot represent " + ", ".join(bad))


def to_llama_config(config: ModelConfig) -> dict[str, Any]:
    """The config.json a `LlamaConfig` reads, for a Llama-compatible MiniMind config."""
    check_llama_compatible(config)
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.num_key_value_heads,
        "head_dim": config.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": config.max_position_embeddings,
        "rms_norm_eps": config.rms_norm_eps,
        # transformers >= 5 reads rope_parameters; older versions read rope_theta.
        "rope_theta": config.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_theta},
        "tie_word_embeddings": config.tie_word_embeddings,
        "attention_bias": False,
        "mlp_bias": False,
        "attention_dropout": config.dropout,
        "initializer_range": config.initializer_range,
        "torch_dtype": "float32",
    }


def _rope_theta(data: dict[str, Any]) -> float:
    params = data.get("rope_parameters") or data.get("rope_scaling") or {}
    kind = params.get("rope_type", params.get("type", "default"))
    if kind != "default":
        raise ExportError(f"rope type {kind!r} is not supported (only plain RoPE)")
    theta = params.get("rope_theta", data.get("rope_theta"))
    if theta is None:
        raise ExportError("config.json gives no rope_theta")
    return float(theta)


def from_llama_config(data: dict[str, Any]) -> ModelConfig:
    """The MiniMind config for a Llama config.json (as a dict); unsupported options raise."""
    if data.get("model_type") != "llama":
        raise ExportError(f"model_type must be 'llama', got {data.get('model_type')!r}")
    for key, want in (("hidden_act", "silu"), ("attention_bias", False), ("mlp_bias", False)):
        if data.get(key, want) != want:
            raise ExportError(f"{key}={data[key]!r} is not supported (MiniMind has {want!r})")
    required = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads")
    missing = [k for k in required if k not in data]
    if missing:
        raise ExportError(f"config.json lacks {missing}")
    H = data["num_attention_heads"]
    head_dim = data.get("head_dim") or data["hidden_size"] // H
    if head_dim * H != data["hidden_size"]:
        raise ExportError(f"head_dim={head_dim} x {H} heads != hidden_size={data['hidden_size']}"
                          " (MiniMind needs head_dim = hidden_size / heads)")
    try:
        return ModelConfig(
            vocab_size=data["vocab_size"], hidden_size=data["hidden_size"],
            intermediate_size=data["intermediate_size"],
            num_hidden_layers=data["num_hidden_layers"], num_attention_heads=H,
            num_key_value_heads=data.get("num_key_value_heads") or H,
            max_position_embeddings=data.get("max_position_embeddings", 2048),
            rms_norm_eps=data.get("rms_norm_eps", 1e-6), rope_theta=_rope_theta(data),
            tie_word_embeddings=data.get("tie_word_embeddings", False),
            dropout=data.get("attention_dropout", 0.0),
            initializer_range=data.get("initializer_range", 0.02),
        )
    except ConfigError as err:
        raise ExportError(f"config.json describes an invalid model: {err}") from None


def export_llama(model: MiniMindForCausalLM, folder: str | Path) -> Path:
    """Write config.json and model.safetensors to `folder` (created if needed); returns it.

    Tied embeddings are one tensor, so `lm_head.weight` is left out of the file and the config
    says tie_word_embeddings=true, as Hugging Face does. The RoPE tables are not weights (they
    follow from rope_theta), so they are not saved either.
    """
    from safetensors.torch import save_file

    config_json = to_llama_config(model.config)
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"{folder} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight")
    # Weights first, config last: a folder whose config.json is new has its weights in place.
    atomic_write(folder / WEIGHTS_NAME,
                  lambda p: save_file(state, p, metadata={"format": "pt"}))
    text = json.dumps(config_json, indent=2) + "\n"
    atomic_write(folder / CONFIG_NAME, lambda p: Path(p).write_text(text, encoding="utf-8"))
    return folder


def read_llama_config(folder: str | Path) -> ModelConfig:
    """The MiniMind config stored in `folder`/config.json, with errors that name the problem."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ExportError(f"no such folder: {folder}")
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise ExportError(f"{folder} has no {CONFIG_NAME}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ExportError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ExportError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return from_llama_config(data)


def _read_weights(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise ExportError(f"{path.parent} has no {path.name}")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise ExportError(f"{path} is not a readable safetensors file: {err}") from None


def load_llama(folder: str | Path) -> MiniMindForCausalLM:
    """A MiniMindForCausalLM with the config and weights of a Llama folder (ours or HF's).

    The shapes config.json declares are compared with the tensors in the file on the meta
    device first, so a config that declares a huge model is refused before any allocation.
    """
    folder = Path(folder)
    config = read_llama_config(folder)
    state = _read_weights(folder / WEIGHTS_NAME)
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)  # some writers store the tied copy; it is one tensor
    expected = {n: s for n, s in expected_shapes(config).items()
                if not (config.tie_word_embeddings and n == "lm_head.weight")}
    problems = state_dict_mismatch(expected, state)
    if problems:
        raise ExportError(f"{folder / WEIGHTS_NAME} does not match its config.json: "
                          + "; ".join(problems[:4]))
    model = MiniMindForCausalLM(config)
    # strict=False only for the tied lm_head, which is the embedding itself (checked above).
    model.load_state_dict({n: t.float() for n, t in state.items()}, strict=False)
    return model.eval()


def export_with_tokenizer(
    model: MiniMindForCausalLM, folder: str | Path, tokenizer: Any | None = None
) -> Path:
    """`export_llama` plus the tokenizer files and a generation config, when there is a BPE
    tokenizer, so `AutoTokenizer` and `LlamaForCausalLM.generate` work from the folder."""
    folder = export_llama(model, folder)
    if tokenizer is None:
        return folder
    from minimind.tokenizer import BOS_ID, EOS_ID, PAD_ID

    tokenizer.save(folder)
    ids = {"bos_token_id": BOS_ID, "eos_token_id": EOS_ID, "pad_token_id": PAD_ID}
    config = json.loads((folder / CONFIG_NAME).read_text("utf-8")) | ids
    for name, data in ((CONFIG_NAME, config), ("generation_config.json", ids)):
        text = json.dumps(data, indent=2) + "\n"
        atomic_write(folder / name, lambda p, t=text: Path(p).write_text(t, encoding="utf-8"))
    return folder
