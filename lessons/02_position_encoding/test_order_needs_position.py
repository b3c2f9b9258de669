"""Lesson 02, experiment 3: attention alone cannot see order. Without position encoding a
non-causal model is permutation-equivariant, so it cannot learn "are these tokens sorted?";
RoPE, learned positions or a causal mask each give it the order it needs."""
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minimind.config import ModelConfig
from minimind.lab import Table, TrainSettings, fit, nudge_weights, threads
from minimind.model import MiniMindModel

SORT_V, SORT_T = 16, 12  # tokens 0..15, sequences of 12


def _sort_config(**changes) -> ModelConfig:
    base = dict(vocab_size=SORT_V, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                num_key_value_heads=2, max_position_embeddings=SORT_T, causal=False)
    return ModelConfig(**{**base, **changes})


@pytest.mark.claim
def test_non_causal_attention_without_positions_is_permutation_equivariant(seed, claim):
    """Shuffling the input of a non-causal model without position encoding shuffles its output
    the same way (to 1e-5); with RoPE, or with a causal mask, it does not."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, SORT_V, (8, SORT_T), generator=g)
    perm = torch.randperm(SORT_T, generator=g)
    rows = []
    for name, changes in {"no position, non-causal": dict(position="none"),
                          "RoPE, non-causal": dict(position="rope"),
                          "no position, causal": dict(position="none", causal=True)}.items():
        torch.manual_seed(seed)
        body = MiniMindModel(_sort_config(num_hidden_layers=2, **changes)).eval()
        nudge_weights(body)  # no training here, but --perturb still reaches the weights
        with torch.no_grad(), threads(1):
            out = body(ids)[0]
            out_of_shuffled = body(ids[:, perm])[0]
        gap = (out_of_shuffled - out[:, perm]).abs().max().item()
        rows.append([name, gap, out.abs().mean().item()])
    claim.table(Table(f"max |f(P x) - P f(x)|, 2 layers, untrained (seed {seed})",
                      ["model", "max gap", "mean |f(x)|"], rows))
    claim.check("no position, non-causal: largest gap f(P x) - P f(x)", rows[0][1], "<", 1e-5)
    # An order-blind model would measure float rounding (~1e-6) here too.
    for name, gap, _ in rows[1:]:
        claim.check(f"{name}: largest gap f(P x) - P f(x)", gap, ">", 1e-2)


class _SortedReadout(nn.Module):
    """MiniMind's decoder body, mean-pooled over positions, then a 2-way linear readout."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.body = MiniMindModel(config)
        self.head = nn.Linear(config.hidden_size, 2)

    def forward(self, ids: Tensor) -> Tensor:
        h, _, _ = self.body(ids)  # (B, T, C)
        return self.head(h.mean(1))  # (B, 2)


def _sorted_batch(g: torch.Generator, B: int) -> tuple[Tensor, Tensor]:
    """Label 1: the tokens in ascending order. Label 0: the same multiset shuffled."""
    x = torch.randint(0, SORT_V, (B, SORT_T), generator=g)
    ordered = x.sort(-1).values
    shuffled = x.gather(-1, torch.rand(B, SORT_T, generator=g).argsort(-1))
    pick = torch.randint(0, 2, (B,), generator=g).bool()
    seq = torch.where(pick[:, None], ordered, shuffled)
    return seq, (seq == ordered).all(-1).long()  # a shuffle can come out sorted


def _paired_eval_set(seed: int, n: int = 1000) -> tuple[Tensor, Tensor]:
    """Each multiset once sorted and once shuffled (never sorted): chance is exactly 1/2 here."""
    g = torch.Generator().manual_seed(10_000 + seed)
    x = torch.randint(0, SORT_V, (n, SORT_T), generator=g)
    ordered = x.sort(-1).values
    shuffled = x.gather(-1, torch.rand(n, SORT_T, generator=g).argsort(-1))
    keep = ~(shuffled == ordered).all(-1)
    seq = torch.cat([ordered[keep], shuffled[keep]])
    return seq, torch.cat([torch.ones(int(keep.sum())), torch.zeros(int(keep.sum()))]).long()


@pytest.mark.claim
def test_rope_lets_attention_learn_order_that_a_position_free_model_cannot(seed, claim):
    """On "are these 12 tokens sorted?" (negatives are shuffles of the same tokens) a non-causal
    model without position encoding scores exactly chance on paired data, while the same model
    with RoPE (or learned positions, or a causal mask) learns it to >= 90%."""
    settings = TrainSettings(steps=200, lr=1e-2, batch_size=32)
    variants = {"no position, non-causal": dict(position="none"),
                "RoPE, non-causal": dict(position="rope"),
                "learned positions, non-causal": dict(position="learned"),
                "no position, causal mask": dict(position="none", causal=True)}
    x_eval, y_eval = _paired_eval_set(seed)
    rows, acc = [], {}
    for name, changes in variants.items():
        with threads(1):
            torch.manual_seed(seed)
            model = _SortedReadout(_sort_config(**changes))
        g = torch.Generator().manual_seed(seed)
        run = fit(model, lambda step: _sorted_batch(g, settings.batch_size),
                  lambda m, x, y: F.cross_entropy(m(x), y), settings, name)
        with torch.no_grad(), threads(1):
            acc[name] = (model(x_eval).argmax(-1) == y_eval).float().mean().item()
        rows.append([name, run.final_loss, acc[name], run.cpu_seconds])
    claim.table(Table(
        f"is the sequence sorted? 1 layer, d=32, {settings.steps} steps, accuracy on "
        f"{len(y_eval)} paired sequences (seed {seed})",
        ["model", "final train loss", "accuracy", "cpu s"], rows))
    # The position-free model gives a sorted sequence and its shuffle the same answer, so it is
    # right on exactly one of each pair: 0.5, whatever it learned.
    claim.check("no position, non-causal: distance of accuracy from 0.5",
                abs(acc["no position, non-causal"] - 0.5), "<", 0.01)
    for name in list(variants)[1:]:
        claim.check(f"{name}: accuracy", acc[name], ">", 0.9)
