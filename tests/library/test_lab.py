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


def test_sgd_option_trains_with_momentum_and_unknown_optimizers_are_refused():
    """optimizer="sgd" is SGD with momentum betas[0]; any other name is a clear error."""
    import pytest
    import torch

    from minimind.lab.training import make_optimizer

    model = torch.nn.Linear(3, 2)
    opt = make_optimizer(model, TrainSettings(optimizer="sgd", lr=0.5))
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["momentum"] == 0.9
    assert isinstance(make_optimizer(model, TrainSettings()), torch.optim.AdamW)
    with pytest.raises(ValueError, match="optimizer"):
        make_optimizer(model, TrainSettings(optimizer="adam"))
    corpus = load_corpus()
    cfg = preset("tiny", vocab_size=corpus.vocab_size)
    run = train_lm(cfg, TrainSettings(steps=20, lr=0.3, batch_size=4, seq_len=16,
                                      optimizer="sgd", eval_batches=1), seed=0)
    assert run.first_nonfinite_step is None and run.final_loss < run.losses[0]


def test_nonfinite_origin_names_the_first_tensor_to_go_non_finite():
    """A clean step gives None; an inf weight, an inf activation and an inf loss are each named."""
    import torch

    from minimind.lab.measure import nonfinite_origin

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    x = torch.randn(8, 4)
    assert nonfinite_origin(model, lambda: model(x).sum()) is None
    assert model[0].weight.grad is not None, "the backward pass ran"
    assert nonfinite_origin(model, lambda: model(x * math.inf).sum()) == "output 0"
    assert nonfinite_origin(model, lambda: model(x).sum() * math.inf) == "loss"
    with torch.no_grad():
        model[2].weight[0, 0] = math.nan
    assert nonfinite_origin(model, lambda: model(x).sum()) == "weight 2.weight"
