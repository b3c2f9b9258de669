"""LoRA: fine-tune a frozen matrix W through a low-rank update, W + (alpha / r) * B @ A.

A is (r, in) and starts small and random, B is (out, r) and starts at zero, so at
initialization the update is exactly zero and the model is exactly the base model; training
moves only A and B: r * (in + out) numbers per matrix instead of in * out. MiniMind wraps every
`nn.Linear` whose input and output sizes are equal (under grouped-query attention: q_proj and
o_proj), at rank 8 with A ~ N(0, 0.02) and no alpha scaling (alpha = r, scale 1), and saves
only the adapter weights. `merge_adapters` folds B @ A into W for inference at no extra cost.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minimind.checkpoint import atomic_write

LORA_STD = 0.02  # MiniMind's init std of A
ADAPTER_FORMAT = "minimind-lora-1"


class LoRAError(ValueError):
    """A LoRA request that cannot be met: bad rank, nothing to wrap, or a mismatched adapter."""


def lora_init(in_features: int, out_features: int, rank: int, std: float = LORA_STD,
              generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """A (rank, in) ~ N(0, std^2) and B (out, rank) = 0: the update B @ A starts at exactly 0.

    A random and B zero (not the other way round, not both zero): B @ A is zero, yet the
    gradient of B is not (it sees A's projection of the input), so training starts at once.
    """
    if not isinstance(rank, int) or rank < 1:
        raise LoRAError(f"rank must be an int >= 1, got {rank!r}")
    a = torch.randn(rank, in_features, generator=generator) * std
    return a, torch.zeros(out_features, rank)


def lora_linear(x: Tensor, weight: Tensor, lora_A: Tensor, lora_B: Tensor, alpha: float,
                bias: Tensor | None = None) -> Tensor:
    """x W^T (+ bias) + (alpha / r) x A^T B^T, with r the rank (A's first dimension)."""
    scale = alpha / lora_A.shape[0]
    return F.linear(x, weight, bias) + scale * F.linear(F.linear(x, lora_A), lora_B)


def merge_lora(weight: Tensor, lora_A: Tensor, lora_B: Tensor, alpha: float) -> Tensor:
    """The merged matrix W + (alpha / r) B @ A: one Linear computing what the adapter does."""
    return weight + (alpha / lora_A.shape[0]) * (lora_B @ lora_A)


class LoRALinear(nn.Linear):
    """An nn.Linear whose weight (and bias) are frozen, plus trainable `lora_A`, `lora_B`.

    It subclasses nn.Linear so the frozen weight keeps its name (`q_proj.weight`): a base
    checkpoint loads into a LoRA model, and the adapter is exactly the `lora_` entries.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None,
                 std: float = LORA_STD, generator: torch.Generator | None = None):
        super().__init__(base.in_features, base.out_features, bias=base.bias is not None,
                         device=base.weight.device, dtype=base.weight.dtype)
        with torch.no_grad():
            self.weight.copy_(base.weight)
            if base.bias is not None:
                self.bias.copy_(base.bias)
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        a, b = lora_init(base.in_features, base.out_features, rank, std, generator)
        self.rank = rank
        self.alpha = float(rank if alpha is None else alpha)
        self.lora_A = nn.Parameter(a.to(self.weight))
        self.lora_B = nn.Parameter(b.to(self.weight))

    def forward(self, x: Tensor) -> Tensor:
        return lora_linear(x, self.weight, self.lora_A, self.lora_B, self.alpha, self.bias)

    def merged(self) -> nn.Linear:
        """A plain nn.Linear with B @ A folded into its weight."""
        out = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                        device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            out.weight.copy_(merge_lora(self.weight, self.lora_A, self.lora_B, self.alpha))
            if self.bias is not None:
                out.bias.copy_(self.bias)
        return out

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}, alpha={self.alpha:g}"


def square(name: str, module: nn.Linear) -> bool:
    """MiniMind's rule: wrap a Linear whose input and output sizes are equal.

    The LM head is left out even when vocab_size == hidden_size (toy models): it shares its
    weight with the embedding, and wrapping it would untie the two.
    """
    return module.in_features == module.out_features and not name.endswith("lm_head")


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def apply_lora(model: nn.Module, rank: int = 8, alpha: float | None = None,
               targets: Callable[[str, nn.Linear], bool] | Iterable[str] | None = None,
               seed: int = 0) -> list[str]:
    """Freeze every parameter and wrap the chosen Linears in LoRALinear; returns their names.

    `targets`: None is MiniMind's rule (square matrices), a set of name suffixes
    ({"q_proj", "v_proj"}), or a predicate (name, module) -> bool. A is drawn from a generator
    seeded with `seed`, in module order, so the same call gives the same adapter.
    """
    if targets is None:
        pick: Callable[[str, nn.Linear], bool] = square
    elif callable(targets):
        pick = targets
    else:
        suffixes = tuple(targets)
        pick = lambda name, m: name.endswith(suffixes)  # noqa: E731
    chosen = [(n, m) for n, m in model.named_modules()
              if isinstance(m, nn.Linear) and not isinstance(m, LoRALinear) and pick(n, m)]
    if not chosen:
        raise LoRAError("no Linear layer matches the LoRA targets")
    for p in model.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(seed)
    for name, module in chosen:
        _replace(model, name, LoRALinear(module, rank, alpha, generator=g))
    return [n for n, _ in chosen]


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}


def merge_adapters(model: nn.Module) -> nn.Module:
    """Replace every LoRALinear by its merged plain Linear (in place); returns the model."""
    for name, module in lora_layers(model).items():
        _replace(model, name, module.merged())
    return model


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def adapter_state(model: nn.Module) -> dict[str, Tensor]:
    """Only the adapter: the `lora_A` / `lora_B` tensors, by their state-dict names."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()
            if k.endswith((".lora_A", ".lora_B"))}


def save_adapter(model: nn.Module, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write the adapter weights (not the base) with their rank and alpha, atomically."""
    layers = lora_layers(model)
    if not layers:
        raise LoRAError("the model has no LoRA layers to save (apply_lora first)")
    payload = {"format": ADAPTER_FORMAT, "weights": adapter_state(model),
               "layers": {n: {"rank": m.rank, "alpha": m.alpha} for n, m in layers.items()},
               "extra": extra or {}}
    return atomic_write(path, lambda p: torch.save(payload, p))


def load_adapter(model: nn.Module, path: str | Path) -> nn.Module:
    """Wrap the base model's layers as the adapter file says and load its weights."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as err:
        raise LoRAError(f"cannot read adapter {path}: {err}") from None
    if not isinstance(payload, dict) or payload.get("format") != ADAPTER_FORMAT:
        raise LoRAError(f"{path} is not a LoRA adapter written by save_adapter")
    layers = payload["layers"]
    missing = [n for n in layers if n not in dict(model.named_modules())]
    if missing:
        raise LoRAError(f"adapter {path} wraps layers this model lacks: {missing[:3]}")
    for name, spec in layers.items():
        module = model.get_submodule(name)
        if not isinstance(module, LoRALinear):
            apply_lora(model, spec["rank"], spec["alpha"], targets=lambda n, m, t=name: n == t)
    weights = payload["weights"]
    state = model.state_dict()
    for k, v in weights.items():
        if state[k].shape != v.shape:
            raise LoRAError(f"adapter {path}: {k} has shape {tuple(v.shape)}, the model "
                            f"expects {tuple(state[k].shape)}")
    model.load_state_dict(weights, strict=False)
    return model


def lora_parameter_count(in_features: int, out_features: int, rank: int) -> int:
    """r * (in + out): the trainable numbers LoRA adds to one in x out matrix."""
    return rank * (in_features + out_features)


def lora_share(model: nn.Module) -> float:
    """Trainable parameters as a share of all parameters (tied weights counted once)."""
    total = sum(p.numel() for p in model.parameters())
    return trainable_parameters(model) / total if total else math.nan
