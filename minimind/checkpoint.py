"""Checkpoints: written atomically (a crash mid-save never leaves a half-written file in place),
read back with errors that say what is wrong."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from minimind.config import ConfigError, ModelConfig
from minimind.model import MiniMindForCausalLM

FORMAT = "minimind-checkpoint-v1"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, truncated, corrupt, or does not fit the model."""


def atomic_write(path: str | Path, write: Callable[[str], Any]) -> Path:
    """Call write(temp_path) beside `path`, fsync, then rename over `path`: all or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())  # on disk before the rename makes it visible
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a checkpoint is meant to be shared
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
    except Exception as err:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(err).__name__}: {err})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a minimind checkpoint (no '{FORMAT}' marker)")
    return state


def load_checkpoint(path: str | Path) -> tuple[MiniMindForCausalLM, dict[str, Any]]:
    """The model rebuilt from the checkpoint's config with its weights, and the whole state."""
    state = read_checkpoint(path)
    try:
        config = ModelConfig.from_dict(state["config"])
    except (ConfigError, TypeError) as err:
        raise CheckpointError(f"checkpoint {path} holds an invalid config: {err}") from None
    model = MiniMindForCausalLM(config)
    missing, unexpected = model.load_state_dict(state["model"], strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path} does not fit its config: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    return model, state
