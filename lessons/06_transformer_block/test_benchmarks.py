"""Lesson 06 benchmarks: 64 new tokens after a 256-token prompt, with and without the KV cache.

`pytest lessons/06_transformer_block --benchmark-only` times them (one group, one thread); a plain
run executes each once as a test. No test asserts a time: read the table.
"""
import pytest
import torch

from minimind.config import preset
from minimind.generate import generate
from minimind.lab import threads
from minimind.model import MiniMindForCausalLM

PROMPT, NEW = 256, 64


@pytest.fixture(scope="module")
def model_and_prompt():
    torch.manual_seed(0)
    model = MiniMindForCausalLM(preset("char-small", vocab_size=81)).eval()
    prompt = torch.randint(0, 81, (1, PROMPT), generator=torch.Generator().manual_seed(0))
    return model, prompt


def _bench(benchmark, model, prompt, use_cache):
    with threads(1):
        out = benchmark(generate, model, prompt, NEW, greedy=True, use_cache=use_cache)
    assert out.shape == (1, PROMPT + NEW)


@pytest.mark.benchmark(group=f"generate {NEW} tokens after {PROMPT}, char-small, 1 thread")
def test_bench_generate_with_kv_cache(benchmark, model_and_prompt):
    """With the cache: the prompt once, then one position per new token."""
    _bench(benchmark, *model_and_prompt, use_cache=True)


@pytest.mark.benchmark(group=f"generate {NEW} tokens after {PROMPT}, char-small, 1 thread")
def test_bench_generate_recomputing_the_prefix(benchmark, model_and_prompt):
    """Without it: every new token reruns the whole, growing, prefix."""
    _bench(benchmark, *model_and_prompt, use_cache=False)
