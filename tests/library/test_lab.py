"""The experiment harness: deterministic runs, non-finite detection, parallel == sequential."""
import math

from minimind.config import preset
from minimind.data import load_corpus
from minimind.lab import TrainSettings, train_lm


def test_training_is_deterministic_for_a_seed():
    """Same seed, same numbers: two runs of the harness give bit-identical losses."""
    corpus = load_corpus()
    cfg = preset("tiny", vocab_size=corpus.vocab_size)
    settings = TrainSettings(steps=5, batch_size=4, seq_len=16, eval_batches=1)
    a, b = (train_lm(cfg, settings, seed=1) for _ in range(2))
    assert a.losses == b.losses and a.val_loss == b.val_loss
    assert train_lm(cfg, settings, seed=2).losses != a.losses


def test_harness_records_the_first_non_finite_step():
    """A run that blows up stops at the first non-finite loss and reports that step."""
    corpus = load_corpus()
    cfg = preset("tiny", vocab_size=corpus.vocab_size, norm="none")
    run = train_lm(cfg, TrainSettings(steps=60, lr=50.0, batch_size=4, seq_len=16), seed=0)
    assert run.first_nonfinite_step is not None and run.final_loss == math.inf


def test_parallel_comparison_gives_the_same_numbers_as_sequential():
    """Variants trained in two processes match the same variants trained one after another."""
    from minimind.lab import compare

    corpus = load_corpus()
    base = preset("tiny", vocab_size=corpus.vocab_size)
    settings = TrainSettings(steps=4, batch_size=4, seq_len=16, eval_batches=1)
    variants = {"rms": {}, "layer": dict(norm="layer"), "gelu": dict(ffn="gelu")}
    one, two = (compare(base, variants, settings, seed=3, workers=w) for w in (1, 2))
    for name in variants:
        assert one[name].losses == two[name].losses and one[name].val_loss == two[name].val_loss
    assert list(two.runs) == list(variants), "results come back in variant order"
