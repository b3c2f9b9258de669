"""Lesson 02, experiment 4: running past the trained length. A model trained to copy the token
4 back at length 64 is run to 256: learned absolute positions stop at 64, RoPE runs on and
degrades, and rescaling RoPE's frequencies (NTK, YaRN) recovers accuracy without training."""
import math

import pytest
import torch
from torch import Tensor, nn

from minimind.config import ModelConfig
from minimind.lab import LineFigure, Table, TrainSettings, fit, threads
from minimind.model import MiniMindForCausalLM
from minimind.rope import rope_inv_freq, rope_tables, yarn_inv_freq

COPY_V, COPY_L, LAG, EVAL_LEN = 32, 64, 4, 256  # predict the token 4 back; train at 64, run to 256
BINS = [(0, 64), (64, 128), (128, 256)]  # within L, L..2L, 2L..4L


def _copy_config(**changes) -> ModelConfig:
    base = dict(vocab_size=COPY_V, hidden_size=64, num_hidden_layers=1, num_attention_heads=4,
                num_key_value_heads=4, max_position_embeddings=COPY_L)
    return ModelConfig(**{**base, **changes})


def _copy_batch(g: torch.Generator, B: int, T: int) -> tuple[Tensor, Tensor]:
    x = torch.randint(0, COPY_V, (B, T), generator=g)
    y = torch.full_like(x, -100)  # the first LAG positions have nothing to copy
    y[:, LAG:] = x[:, :-LAG]
    return x, y


def _accuracy_by_bin(model: nn.Module, seed: int, T: int = EVAL_LEN) -> list[float]:
    x, y = _copy_batch(torch.Generator().manual_seed(20_000 + seed), 64, T)
    with torch.no_grad(), threads(1):
        right = (model(x).logits.argmax(-1) == y).float()  # (B, T)
    return [right[:, max(a, LAG):b].mean().item() for a, b in BINS if b <= T]


@pytest.fixture(scope="module")
def copy_models(seed) -> dict[str, tuple[MiniMindForCausalLM, float]]:
    """Learned-PE and RoPE models trained on copy-4-back at length 64: {name: (model, cpu s)}."""
    settings = TrainSettings(steps=300, lr=1e-2, batch_size=16, seq_len=COPY_L)
    out = {}
    for position in ("learned", "rope"):
        with threads(1):
            torch.manual_seed(seed)
            model = MiniMindForCausalLM(_copy_config(position=position))
        g = torch.Generator().manual_seed(seed)
        run = fit(model, lambda step: _copy_batch(g, settings.batch_size, COPY_L),
                  lambda m, x, y: m(x, y).loss, settings, position)
        out[position] = (model, run.cpu_seconds)
    return out


def _rope_variant(trained: nn.Module, **changes) -> MiniMindForCausalLM:
    """The trained RoPE weights under another table (scaling); no training."""
    model = MiniMindForCausalLM(_copy_config(max_position_embeddings=EVAL_LEN, **changes))
    model.load_state_dict(trained.state_dict())  # the tables are buffers outside the state dict
    return model.eval()


@pytest.mark.claim
def test_learned_positions_stop_at_trained_length_while_rope_runs_on_and_degrades(
    seed, claim, copy_models
):
    """Trained on copy-4-back at length 64, learned absolute positions raise an error past 64;
    RoPE runs to 256, holds within 64, and falls below half its in-range accuracy at 128-256."""
    learned, learned_cpu = copy_models["learned"]
    rope, rope_cpu = copy_models["rope"]
    learned_acc = _accuracy_by_bin(learned, seed, COPY_L)
    with pytest.raises(ValueError, match="exceeds max_position_embeddings") as err:
        learned(torch.zeros(1, COPY_L + 1, dtype=torch.long))
    rope_acc = _accuracy_by_bin(_rope_variant(rope), seed)
    claim.table(Table(
        f"copy the token {LAG} back, trained at length {COPY_L}: accuracy by position "
        f"(seed {seed})",
        ["model", *(f"[{a}, {b})" for a, b in BINS), "train cpu s"],
        [["learned positions", *learned_acc, "error", "error", learned_cpu],
         ["RoPE", *rope_acc, rope_cpu]],
        note=f"learned past {COPY_L}: ValueError: {err.value}"))
    claim.check("learned positions: accuracy at [0, 64)", learned_acc[0], ">", 0.95)
    claim.check("RoPE: accuracy at [0, 64)", rope_acc[0], ">", 0.95)
    # A RoPE model that extrapolated would keep its in-range accuracy: a ratio near 1.
    claim.check("RoPE: accuracy at [128, 256) / at [0, 64)", rope_acc[2] / rope_acc[0], "<", 0.5)


@pytest.mark.claim
def test_yarn_scaling_recovers_rope_accuracy_past_the_trained_length(seed, claim, copy_models):
    """With no training, MiniMind's YaRN (x4, original length 64) raises the RoPE model's copy
    accuracy at 2L-4L by >= 0.2 over plain RoPE; position interpolation (every frequency / 4)
    destroys even the in-range accuracy. NTK-aware theta is shown, not asserted."""
    rope, _ = copy_models["rope"]
    head_dim = _copy_config().head_dim
    yarn = dict(rope_scaling="yarn", original_max_position_embeddings=COPY_L)
    variants = {
        "plain RoPE": {},
        "NTK-aware theta, x4": dict(rope_scaling="ntk", rope_scaling_factor=4.0),
        "YaRN x4 (beta 32/1, MiniMind's)": dict(**yarn, rope_scaling_factor=4.0),
        "YaRN x16 (MiniMind's factor)": dict(**yarn, rope_scaling_factor=16.0),
    }
    acc = {name: _accuracy_by_bin(_rope_variant(rope, **changes), seed)
           for name, changes in variants.items()}
    pi = _rope_variant(rope)
    pi.model.freqs_cos, pi.model.freqs_sin = rope_tables(
        rope_inv_freq(head_dim, pi.config.rope_theta) / 4, EVAL_LEN)
    acc["position interpolation x4"] = _accuracy_by_bin(pi, seed)
    claim.table(Table(
        f"same trained RoPE model, other tables, no training: copy accuracy by position "
        f"(trained at {COPY_L}, seed {seed})",
        ["tables", *(f"[{a}, {b})" for a, b in BINS)], [[n, *a] for n, a in acc.items()]))
    labels = [f"[{lo},{hi})" for lo, hi in BINS]
    claim.figure("extrapolation", LineFigure(
        {name: (labels, a) for name, a in acc.items()},
        xlabel=f"positions (trained at {COPY_L})", ylabel="copy accuracy",
        title=f"one trained RoPE model under other tables (seed {seed})",
        vline=(0.5, f"trained length {COPY_L}")))
    plain = acc["plain RoPE"][2]
    # NTK-aware theta x4 is in the table but not asserted: over seeds 0..19 its gain at
    # [128, 256) ranged from 0.004 to 0.53, i.e. on some seeds it recovers nothing.
    claim.check("YaRN x4 minus plain RoPE: accuracy at [128, 256)",
                acc["YaRN x4 (beta 32/1, MiniMind's)"][2] - plain, ">", 0.2)
    # Interpolation that worked untuned would keep the in-range accuracy near 1.
    claim.check("position interpolation x4: accuracy at [0, 64)",
                acc["position interpolation x4"][0], "<", 0.2)


@pytest.mark.claim
def test_minimind_yarn_keeps_fast_pairs_and_divides_slow_pairs_by_the_factor(claim):
    """With MiniMind's settings (2048 tokens, x16, beta 32/1, D=64, theta 1e6) pairs turning more
    than 32 times in 2048 tokens keep their frequency, pairs turning less than once are divided by
    16, and the ramp between them never speeds a pair up."""
    minimind = ModelConfig()
    D, theta = minimind.head_dim, minimind.rope_theta
    orig, factor = minimind.original_max_position_embeddings, minimind.rope_scaling_factor
    betas = minimind.yarn_beta_fast, minimind.yarn_beta_slow
    assert (D, theta, orig, factor, *betas) == (64, 1e6, 2048, 16.0, 32.0, 1.0), (
        "MiniMind's settings changed: update this claim and its docstring")
    before = rope_inv_freq(D, theta)
    after = yarn_inv_freq(D, theta, factor, orig, *betas)
    ratio = after / before
    turns = orig * before / (2 * math.pi)  # turns each pair makes within the original context
    claim.table(Table(
        "MiniMind's YaRN: frequency after / before, per pair",
        ["pair", "period (tokens)", "turns in 2048", "after / before"],
        [[i, 2 * math.pi / before[i].item(), turns[i].item(), ratio[i].item()]
         for i in (0, 4, 5, 6, 9, 13, 14, 31)]))
    assert torch.allclose(ratio[turns >= 32], torch.ones(1, dtype=torch.float64))
    assert torch.allclose(ratio[turns <= 1], torch.full((1,), 1 / factor, dtype=torch.float64))
    assert bool((ratio[1:] <= ratio[:-1]).all()), "the ramp must not speed up slower pairs"
    assert int((turns >= 32).sum()) == 6 and int((turns <= 1).sum()) == 18, turns
