"""Post-training experiments: a tiny byte-level MiniMind pretrained on the plays, fine-tuned on
chat tasks with exact answers.

    base = pretrain_chat_base(seed)                       # a few seconds, lab.fit
    tuned = finetune(copy.deepcopy(base.model), train_examples(tasks), SFT_SETTINGS, seed)
    accuracy(tuned.model, byte_tokenizer(), held_out_tasks)

The tokenizer is `byte_tokenizer()`: MiniMind's special tokens (<|endoftext|> 0 = pad,
<|im_start|> 1, <|im_end|> 2) plus the 256 bytes, so every digit and letter is one token and a
model of ~100 k parameters learns 2-digit addition in a few hundred steps. Pretraining follows
MiniMind's format: every speech is a document, <|im_start|> speech <|im_end|>.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from minimind.config import ModelConfig, preset
from minimind.dataset import IGNORE, encode_chat
from minimind.lab.training import Run, TrainSettings, fit, lm_loss, threads
from minimind.model import MiniMindForCausalLM
from minimind.sft import pad_batch, sft_loss
from minimind.tasks import Task, speeches
from minimind.tokenizer import BOS_ID, EOS_ID, PAD_ID, byte_tokenizer

PRETRAIN_CHARS = 200_000  # the first speeches up to this many characters: about a second
PRETRAIN_SETTINGS = TrainSettings(steps=60, lr=3e-3, batch_size=16, seq_len=64)
SFT_SETTINGS = TrainSettings(steps=200, lr=3e-3, batch_size=16)


def chat_config(**changes: object) -> ModelConfig:
    """MiniMind at char-small size (hidden 64, 2 layers, 4 heads) over the byte tokenizer."""
    return preset("char-small", vocab_size=byte_tokenizer().vocab_size,
                  max_position_embeddings=128, **changes)


@functools.lru_cache(maxsize=2)
def speech_tokens(max_chars: int = PRETRAIN_CHARS) -> tuple[Tensor, Tensor]:
    """(train, val) token streams of <|im_start|> speech <|im_end|> documents, split 90/10."""
    tok = byte_tokenizer()
    texts, total = [], 0
    for s in speeches():
        text = f"{s.speaker}:\n" + "\n".join(s.lines)
        texts.append(text)
        total += len(text)
        if total >= max_chars:
            break
    ids: list[int] = []
    for encoded in tok.encode_batch(texts):
        ids += [BOS_ID, *encoded, EOS_ID]
    stream = torch.tensor(ids, dtype=torch.long)
    n_val = len(stream) // 10
    return stream[:-n_val], stream[-n_val:]


def _windows(data: Tensor, batch_size: int, seq_len: int,
             generator: torch.Generator) -> tuple[Tensor, Tensor]:
    starts = torch.randint(len(data) - seq_len, (batch_size,), generator=generator)
    w = data[starts[:, None] + torch.arange(seq_len + 1)]
    return w[:, :-1], w[:, 1:]


def base_val_loss(model: nn.Module, seed: int = 0, batches: int = 8) -> float:
    """Loss on the pretraining validation split: how much of the base task a model keeps."""
    _, val = speech_tokens()
    g = torch.Generator().manual_seed(10_000 + seed)
    S = PRETRAIN_SETTINGS
    with torch.no_grad(), threads(1):
        was = model.training
        model.eval()
        total = sum(lm_loss(model, *_windows(val, S.batch_size, S.seq_len, g)).item()
                    for _ in range(batches))
        model.train(was)
    return total / batches


def pretrain_chat_base(seed: int, settings: TrainSettings = PRETRAIN_SETTINGS,
                       config: ModelConfig | None = None) -> Run:
    """A chat_config() model pretrained on the speeches (lab.fit: nudged under --perturb)."""
    train, _ = speech_tokens()
    with threads(settings.num_threads):
        torch.manual_seed(seed)
        model = MiniMindForCausalLM(config or chat_config())
    g = torch.Generator().manual_seed(seed)
    return fit(model, lambda step: _windows(train, settings.batch_size, settings.seq_len, g),
               lm_loss, settings, "base", evaluate=lambda m: base_val_loss(m, seed))


def examples(tasks: Sequence[Task], mask: str = "assistant") -> list[tuple[list, list]]:
    """(ids, labels) per task in ChatML; mask "assistant" (MiniMind's rule) or "none" (every
    token is a target, as in pretraining)."""
    if mask not in ("assistant", "none"):
        raise ValueError(f"mask must be 'assistant' or 'none', got {mask!r}")
    tok = byte_tokenizer()
    out = []
    for t in tasks:
        ids, labels = encode_chat(tok, t.messages())
        out.append((ids, labels if mask == "assistant" else list(ids)))
    return out


def sft_batches(pairs: Sequence[tuple[list, list]], batch_size: int, seed: int,
                pad_label: int = IGNORE) -> Callable[[int], tuple[Tensor, Tensor]]:
    """next_batch(step) for lab.fit: seeded draws of conversations, right-padded."""
    g = torch.Generator().manual_seed(seed)

    def next_batch(step: int) -> tuple[Tensor, Tensor]:
        idx = torch.randint(len(pairs), (batch_size,), generator=g).tolist()
        return pad_batch([pairs[i] for i in idx], pad_id=PAD_ID, pad_label=pad_label)

    return next_batch


def sft_objective(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return sft_loss(model(x).logits, y)


def finetune(model: nn.Module, pairs: Sequence[tuple[list, list]], settings: TrainSettings,
             seed: int, name: str = "sft", pad_label: int = IGNORE) -> Run:
    """lab.fit on padded conversations with the masked SFT loss (frozen parameters stay put)."""
    return fit(model, sft_batches(pairs, settings.batch_size, seed, pad_label), sft_objective,
               settings, name)


def eos_rate(completions: Sequence[Sequence[int]]) -> float:
    """The share of completions that emitted <|im_end|>."""
    return sum(EOS_ID in c for c in completions) / max(len(completions), 1)
