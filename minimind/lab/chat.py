"""Tiny chat models for the post-training lessons: byte tokens, a few seconds of SFT.

`noisy_addition` makes the SFT data of lessons 12 and 13: one-digit additions whose answer is
off by one in a given share of the demonstrations, so the SFT model is right only sometimes,
and consistently wrong in one way that preferences (DPO) or a verifier (GRPO) can correct.
"""
from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

import torch
from torch import nn

from minimind.config import ModelConfig, preset
from minimind.dataset import encode_chat
from minimind.lab.training import nudge_weights, threads
from minimind.model import MiniMindForCausalLM
from minimind.sft import pad_batch, sft_loss
from minimind.tasks import Task, make_tasks
from minimind.tokenizer import Tokenizer, byte_tokenizer


def chat_tokenizer() -> Tokenizer:
    """The byte-level tokenizer with MiniMind's special tokens: one token per digit."""
    return byte_tokenizer()


def chat_config(vocab_size: int, hidden_size: int = 64, layers: int = 2) -> ModelConfig:
    """A MiniMind of ~150k parameters (hidden 64) with a 64-token context."""
    return preset("tiny", vocab_size=vocab_size, hidden_size=hidden_size,
                  num_hidden_layers=layers, max_position_embeddings=64)


def off_by_one(task: Task) -> Task:
    """The same addition answered with the sum plus one."""
    return dataclasses.replace(task, answer=str(int(task.answer) + 1))


def noisy_addition(n: int, noise: float, seed: int) -> list[Task]:
    """n one-digit additions, a `noise` share of them answered off by one (seeded)."""
    rng = random.Random(seed + 7)
    return [off_by_one(t) if rng.random() < noise else t
            for t in make_tasks("addition", n, seed=seed, digits=1)]


def train_sft(config: ModelConfig, tokenizer: Tokenizer, tasks: Sequence[Task], steps: int,
              seed: int, lr: float = 3e-3, batch_size: int = 32) -> nn.Module:
    """A fresh model trained `steps` steps on the tasks' conversations, lr decaying linearly to
    10% (so the last steps settle), one thread; the initial weights nudged under --perturb."""
    examples = [encode_chat(tokenizer, t.messages()) for t in tasks]
    torch.manual_seed(seed)
    model = MiniMindForCausalLM(config)
    nudge_weights(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    rng = random.Random(seed)
    with threads(1):
        for step in range(1, steps + 1):
            for group in optimizer.param_groups:
                group["lr"] = lr * (0.1 + 0.9 * (1 - step / steps))
            x, y = pad_batch([examples[rng.randrange(len(examples))] for _ in range(batch_size)])
            loss = sft_loss(model(x).logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()
