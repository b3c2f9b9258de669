"""Supervised fine-tuning: which tokens a chat model learns from, the loss, batches, decoding.

MiniMind's rule for the loss mask: find every `<|im_start|>assistant\\n` in the token ids and
supervise from the token after it through the closing `<|im_end|>\\n` inclusive; every other
position (system and user turns, the role headers, padding) gets the label -100, which
cross-entropy skips. Every assistant turn of a multi-turn conversation is supervised, and the
closing marker is learned too: that is what teaches the model to stop.

Labels here are aligned with the ids (label[i] is ids[i] or -100); the model predicts
ids[i + 1] from position i, so training feeds x = ids[:-1] against y = labels[1:] (`pad_batch`).
`minimind sft` (the CLI) trains on an SFT jsonl through the same trainer as pretraining.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minimind.data import VAL_FRACTION, DataError
from minimind.dataset import IGNORE, encode_chat, read_jsonl, sft_messages
from minimind.tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer


def chat_markers(tokenizer: Tokenizer) -> tuple[list[int], list[int]]:
    """The ids of `<|im_start|>assistant\\n` and of `<|im_end|>\\n` for this tokenizer."""
    return [BOS_ID, *tokenizer.encode("assistant\n")], [EOS_ID, *tokenizer.encode("\n")]


def _find(ids: Sequence[int], pattern: Sequence[int], start: int) -> int:
    """The first index >= start where `pattern` occurs in `ids`, or -1."""
    n = len(pattern)
    for i in range(start, len(ids) - n + 1):
        if list(ids[i:i + n]) == list(pattern):
            return i
    return -1


def assistant_labels(ids: Tensor, start: Sequence[int], end: Sequence[int]) -> Tensor:
    """MiniMind's loss mask as labels: ids (1-D) inside every assistant span, else IGNORE (-100).

    A span runs from the token after `start` (`<|im_start|>assistant\n`) through `end`
    (`<|im_end|>\n`) inclusive; a span cut off by truncation runs to the last token.
    """
    if not start or not end:
        raise ValueError("the start and end markers must be non-empty id sequences")
    if ids.dim() != 1:
        raise ValueError(f"ids must be 1-D (one conversation), got shape {tuple(ids.shape)}")
    seq = ids.tolist()
    labels = torch.full_like(ids, IGNORE)
    i = _find(seq, start, 0)
    while i >= 0:
        first = i + len(start)
        close = _find(seq, end, first)
        last = len(seq) if close < 0 else close + len(end)
        labels[first:last] = ids[first:last]
        i = _find(seq, start, last)
    return labels


def masked_mean(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """The mean of `values` where `mask` is true (over `dim`, or over everything).

    Only masked-in entries count, in the sum and in the count. A mask with no true entry
    gives 0 (no signal), not NaN: a batch whose answers were all truncated away must not
    poison the weights.
    """
    if mask.shape != values.shape:
        raise ValueError(f"mask {tuple(mask.shape)} must have the shape of values "
                         f"{tuple(values.shape)}")
    m = mask.to(values.dtype)
    total = (values * m).sum() if dim is None else (values * m).sum(dim)
    count = m.sum() if dim is None else m.sum(dim)
    return total / count.clamp(min=1)


def token_losses(logits: Tensor, targets: Tensor) -> Tensor:
    """(B, T) cross-entropy per position of already shifted targets; 0 where a target is -100."""
    flat = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                           ignore_index=IGNORE, reduction="none")
    return flat.view(targets.shape)


def sft_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """The mean cross-entropy over supervised positions (targets != -100), already shifted."""
    return masked_mean(token_losses(logits, targets), targets != IGNORE)


def pad_batch(pairs: Sequence[tuple[Sequence[int], Sequence[int]]], length: int | None = None,
              pad_id: int = PAD_ID, pad_label: int = IGNORE) -> tuple[Tensor, Tensor]:
    """x (B, L-1) inputs and y (B, L-1) shifted labels from (ids, labels) pairs, right-padded.

    Each sequence is cut to `length` tokens (default: the longest) and padded with `pad_id`;
    padded positions get the label `pad_label` (-100, so the loss skips them; pass pad_id to
    see what training on padding does).
    """
    if not pairs:
        raise ValueError("pad_batch needs at least one (ids, labels) pair")
    for ids, labels in pairs:
        if len(ids) != len(labels):
            raise ValueError(f"ids ({len(ids)}) and labels ({len(labels)}) differ in length")
    L = length if length is not None else max(len(ids) for ids, _ in pairs)
    if L < 2:
        raise ValueError(f"length must be >= 2 (one input and one target), got {L}")
    x = torch.full((len(pairs), L), pad_id, dtype=torch.long)
    y = torch.full((len(pairs), L), pad_label, dtype=torch.long)
    for row, (ids, labels) in enumerate(pairs):
        n = min(len(ids), L)
        x[row, :n] = torch.as_tensor(list(ids[:n]), dtype=torch.long)
        y[row, :n] = torch.as_tensor(list(labels[:n]), dtype=torch.long)
    return x[:, :-1], y[:, 1:]


@dataclass
class SFTData:
    """Encoded conversations with a train split and (the last 10%) a validation split.

    What the trainer draws SFT batches from: `draw` picks conversations, `batch` pads them.
    """

    name: str
    examples: list[tuple[list[int], list[int]]]
    n_val: int

    @classmethod
    def from_records(cls, records: Iterable[dict[str, Any]], tokenizer: Tokenizer,
                     name: str = "sft", val_fraction: float = VAL_FRACTION) -> SFTData:
        examples = [encode_chat(tokenizer, sft_messages(r, f"{name} record {i}"))
                    for i, r in enumerate(records)]
        return cls(name, examples, max(int(len(examples) * val_fraction), 1))

    @classmethod
    def from_jsonl(cls, path: str | Path, tokenizer: Tokenizer,
                   val_fraction: float = VAL_FRACTION) -> SFTData:
        records = []
        for n, obj in read_jsonl(path):
            sft_messages(obj, f"{path}:{n}")  # a bad line names its file and line
            records.append(obj)
        return cls.from_records(records, tokenizer, Path(path).stem, val_fraction)

    def split(self, name: str) -> list[tuple[list[int], list[int]]]:
        if name not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {name!r}")
        cut = len(self.examples) - self.n_val
        return self.examples[:cut] if name == "train" else self.examples[cut:]

    def check(self, seq_len: int) -> None:
        """Both splits hold a conversation with a supervised token within seq_len, or DataError."""
        for name in ("train", "val"):
            part = self.split(name)
            if not part:
                raise DataError(f"{self.name}: the {name} split is empty; SFT needs at least 2 "
                                "conversations (the last 10% validate)")
            if not any(lab != IGNORE for _, labels in part for lab in labels[1:seq_len + 1]):
                raise DataError(f"{self.name}: no assistant token within the first {seq_len} "
                                f"tokens of any {name} conversation; raise --seq-len or add "
                                "assistant turns")

    def draw(self, split: str, count: int, seq_len: int, generator: torch.Generator) -> Tensor:
        """`count` conversation indices of a split, uniformly with replacement."""
        return torch.randint(len(self.split(split)), (count,), generator=generator)

    def batch(self, split: str, idx: Tensor, seq_len: int) -> tuple[Tensor, Tensor]:
        """x, y (B, <= seq_len): the conversations padded to the longest, cut to seq_len + 1."""
        part = self.split(split)
        pairs = [part[i] for i in idx.tolist()]
        longest = max(len(ids) for ids, _ in pairs)
        return pad_batch(pairs, min(longest, seq_len + 1))


# --- decoding ------------------------------------------------------------------------------------

def prompt_ids(tokenizer: Tokenizer, messages: list[dict[str, str]]) -> list[int]:
    """The ids of a conversation followed by `<|im_start|>assistant\\n`: a generation prompt."""
    ids, _ = encode_chat(tokenizer, messages) if messages else ([], [])
    return ids + chat_markers(tokenizer)[0]


@torch.no_grad()
def complete(model: nn.Module, tokenizer: Tokenizer, prompts: Sequence[list[dict[str, str]]],
             max_new_tokens: int = 16, stop: bool = True) -> list[list[int]]:
    """Greedy completions (new token ids) of each prompt conversation, batched by length.

    With `stop`, a completion ends after its first <|im_end|> (included); without it, it runs
    the full max_new_tokens.
    """
    from minimind.generate import generate

    encoded = [prompt_ids(tokenizer, p) for p in prompts]
    groups: dict[int, list[int]] = defaultdict(list)
    for i, ids in enumerate(encoded):
        groups[len(ids)].append(i)
    out: list[list[int]] = [[] for _ in prompts]
    model.eval()
    for n, members in groups.items():
        x = torch.tensor([encoded[i] for i in members])
        y = generate(model, x, max_new_tokens, greedy=True, eos_id=EOS_ID if stop else None)
        for row, i in enumerate(members):
            new = y[row, n:].tolist()
            out[i] = new[:new.index(EOS_ID) + 1] if stop and EOS_ID in new else new
    return out


def accuracy(model: nn.Module, tokenizer: Tokenizer, tasks: Sequence[Any],
             max_new_tokens: int = 16) -> float:
    """The share of `tasks` (minimind.tasks.Task) whose greedy completion earns reward 1."""
    if not tasks:
        raise ValueError("accuracy needs at least one task")
    outs = complete(model, tokenizer, [t.prompt_messages() for t in tasks], max_new_tokens)
    return sum(t.reward(tokenizer.decode(o)) == 1.0 for t, o in zip(tasks, outs)) / len(tasks)
