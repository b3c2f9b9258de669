"""Checkpoints: written atomically (a crash mid-save never leaves a half-written file in place),
read back with errors that say what is wrong."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from minimind.config import ConfigError, ModelConfig, config_diff
from minimind.model import MiniMindForCausalLM

FORMAT = "minimind-checkpoint-v1"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, truncated, corrupt, or does not fit the model."""


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def temp_files_of(path: str | Path) -> list[Path]:
    """Temp files an atomic_write of `path` left behind (only a SIGKILL mid-write can)."""
    path = Path(path)
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


def atomic_write(path: str | Path, write: Callable[[str], Any]) -> Path:
    """Call write(temp_path) beside `path`, fsync, then rename over `path`: all or nothing.

    The file gets the mode a plain `open(path, "w")` would (0o666 less the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())  # on disk before the rename makes it visible
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private (0o600)
        os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new, never half
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(
    path: str | Path, model: MiniMindForCausalLM, *, step: int = 0,
    optimizer: torch.optim.Optimizer | None = None, extra: dict[str, Any] | None = None,
) -> Path:
    """Model config and weights (plus optimizer state and extras) in one file, atomically."""
    state = {
        "format": FORMAT,
        "config": model.config.to_dict(),
        "model": model.state_dict(),
        "step": step,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "extra": extra or {},
    }
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch.load raises many types; all mean unreadable
        raise CheckpointError(f"checkpoint {path} {_load_failure(err)}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a minimind checkpoint (no '{FORMAT}' marker)")
    return state


def _load_failure(err: Exception) -> str:
    """Why torch.load failed, in our words: its own advice (weights_only=False) would run
    whatever code a hostile file carries, so it is not repeated."""
    text = str(err)
    if "weights_only" in text or "Unsupported global" in text:
        return ("holds Python objects other than tensors and plain data; refused, because "
                "unpickling them could run arbitrary code")
    first = text.strip().splitlines()[0][:200] if text.strip() else type(err).__name__
    return f"is corrupt or truncated ({first})"


def expected_shapes(config: ModelConfig,
                    lora: dict[str, Any] | None = None) -> dict[str, tuple[int, ...]]:
    """Every state-dict entry's shape for `config`, without allocating any weights; with a
    LoRA spec ({"rank", "alpha"}, MiniMind's square-matrix rule) also each adapter's A and B."""
    with torch.device("meta"):
        model = MiniMindForCausalLM(config)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    if lora:
        from minimind.lora import square  # lora imports this module

        rank = int(lora["rank"])
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.Linear) and square(name, m):
                shapes[f"{name}.lora_A"] = (rank, m.in_features)
                shapes[f"{name}.lora_B"] = (m.out_features, rank)
    return shapes


def state_dict_mismatch(
    expected: dict[str, tuple[int, ...]], state: dict[str, Any]
) -> list[str]:
    """What differs between the shapes a config declares and the tensors a file holds."""
    problems = []
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing:
        problems.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        problems.append(f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    for name, shape in expected.items():
        tensor = state.get(name)
        if tensor is not None and (not isinstance(tensor, torch.Tensor)
                                   or tuple(tensor.shape) != shape):
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor)
            problems.append(f"{name} is {got} in the file but the config declares {shape}")
    return problems


def config_of(state: dict[str, Any], path: str | Path) -> ModelConfig:
    """The checkpoint's config, validated, and checked against the tensors actually stored."""
    try:
        config = ModelConfig.from_dict(state["config"])
    except (ConfigError, TypeError, KeyError, AttributeError) as err:
        raise CheckpointError(f"checkpoint {path} holds an invalid config: {err}") from None
    weights = state.get("model")
    if not isinstance(weights, dict):
        raise CheckpointError(f"checkpoint {path} holds no model weights")
    lora = (state.get("extra") or {}).get("lora")
    problems = state_dict_mismatch(expected_shapes(config, lora), weights)
    if problems:
        raise CheckpointError(f"checkpoint {path} does not fit its config: "
                              + "; ".join(problems[:4]))
    return config


def load_weights(model: MiniMindForCausalLM, state: dict[str, Any], path: str | Path) -> None:
    """Load a checkpoint's weights into an existing model, saying what differs if they don't fit."""
    theirs = ModelConfig.from_dict(state["config"])
    diff = config_diff(theirs, model.config)
    if diff:
        raise CheckpointError(f"checkpoint {path} has another config (checkpoint != model): "
                              + ", ".join(diff))
    problems = state_dict_mismatch(
        {k: tuple(v.shape) for k, v in model.state_dict().items()}, state["model"])
    if problems:
        raise CheckpointError(f"checkpoint {path} does not fit the model: " + "; ".join(problems))
    model.load_state_dict(state["model"])


def load_checkpoint(path: str | Path) -> tuple[MiniMindForCausalLM, dict[str, Any]]:
    """The model rebuilt from the checkpoint's config with its weights, and the whole state.

    Shapes are checked on the meta device first, so a file whose config declares an enormous
    model is refused before anything that size is allocated.
    """
    state = read_checkpoint(path)
    model = MiniMindForCausalLM(config_of(state, path))
    lora = (state.get("extra") or {}).get("lora")
    if lora:  # saved by `minimind sft --lora`: the base weights plus A and B, merged on load
        from minimind.lora import apply_lora, merge_adapters

        apply_lora(model, int(lora["rank"]), float(lora["alpha"]))
        model.load_state_dict(state["model"])
        merge_adapters(model).requires_grad_(True)
    else:
        model.load_state_dict(state["model"])
    return model, state
