"""The trainer: bit-identical resume after SIGINT, refusals before any training, no clobbering."""
from __future__ import annotations

import json
import os
import signal

import pytest
import torch

from minimind.checkpoint import read_checkpoint, temp_files_of
from minimind.config import preset
from minimind.data import DataError
from minimind.trainer import TrainConfig, TrainError, read_resume_state, train

from .helpers import small_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return small_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: float sums in a fixed order, so runs are repeatable
    yield
    torch.set_num_threads(before)


CFG = TrainConfig(steps=6, batch_size=4, seq_len=16, warmup=2, lr=3e-3, eval_every=2,
                  eval_batches=2, save_every=0, seed=0)


def _model_config(tok):
    return preset("tiny", vocab_size=tok.vocab_size, dropout=0.1)  # dropout: RNG state matters


def _run(corpus, out, **kw):
    _, tok, data = corpus
    return train(_model_config(tok), kw.pop("cfg", CFG), data, out, tok, progress=False, **kw)


def test_a_run_stopped_by_sigint_and_resumed_ends_with_the_same_weights_as_an_uninterrupted_one(
        corpus, tmp_path):
    """SIGINT at step 3 saves; --resume to step 6 gives bit-identical weights and optimizer."""
    whole = _run(corpus, tmp_path / "whole.pt")

    def interrupt(step, loss):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    part = _run(corpus, tmp_path / "part.pt", on_step=interrupt)
    assert part.interrupted and part.step == 3
    assert temp_files_of(tmp_path / "part.pt") == []
    resumed = read_resume_state(tmp_path / "part.pt")
    _run(corpus, tmp_path / "part.pt", cfg=resumed.train, resume=resumed)
    a, b = read_checkpoint(whole.checkpoint), read_checkpoint(tmp_path / "part.pt")
    assert a["step"] == b["step"] == 6
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert torch.equal(a["optimizer"]["state"][0]["exp_avg_sq"],
                       b["optimizer"]["state"][0]["exp_avg_sq"])
    log = (tmp_path / "part.metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in log]
    assert steps == [1, 2, 3, 4, 5, 6], "the resumed metrics log continues without repeats"


def test_steps_zero_trains_nothing_and_saves_nothing(corpus, tmp_path):
    """steps=0 returns at once; no checkpoint, no metrics file."""
    result = _run(corpus, tmp_path / "z.pt", cfg=TrainConfig(steps=0))
    assert result.checkpoint is None and list(tmp_path.iterdir()) == []


def test_an_existing_checkpoint_is_not_overwritten_without_force(corpus, tmp_path):
    """A fresh run onto an existing file is refused, the file untouched; force replaces it."""
    out = tmp_path / "c.pt"
    out.write_bytes(b"precious")
    with pytest.raises(TrainError, match="exists; --resume to continue it, --force"):
        _run(corpus, out)
    assert out.read_bytes() == b"precious"
    _run(corpus, out, cfg=TrainConfig(steps=1, batch_size=2, seq_len=8, eval_batches=1),
         force=True)
    assert read_checkpoint(out)["step"] == 1


@pytest.mark.parametrize("field", ["seq_len", "batch_size"])
def test_a_zero_size_is_a_setting_error_not_divergence(corpus, tmp_path, field):
    """seq_len=0 or batch_size=0 is refused by name before any step."""
    cfg = TrainConfig(**{**CFG.to_dict(), field: 0})
    with pytest.raises(TrainError, match=f"--{field.replace('_', '-')} must be an int >= 1"):
        _run(corpus, tmp_path / "x.pt", cfg=cfg)


def test_a_validation_split_too_short_is_refused_before_training(corpus, tmp_path):
    """seq_len longer than the validation split fails before the first step runs."""
    steps = []
    cfg = TrainConfig(**{**CFG.to_dict(), "seq_len": 60})
    _, tok, data = corpus
    data.n_val = 40
    try:
        with pytest.raises(DataError, match="val split has 40 tokens"):
            train(preset("tiny", vocab_size=tok.vocab_size), cfg, data, tmp_path / "v.pt", tok,
                  progress=False, on_step=lambda s, loss: steps.append(s))
    finally:
        data.n_val = int(len(data.tokens) * 0.1)
    assert steps == [] and not (tmp_path / "v.pt").exists()


def test_a_diverging_run_stops_and_saves_nothing(corpus, tmp_path, monkeypatch):
    """A NaN loss (forced by a NaN weight) raises 'training diverged' and writes no checkpoint."""
    _, tok, data = corpus
    config = _model_config(tok)

    def poison(step, loss):
        raise AssertionError("unreachable: step 1 already diverges")

    from minimind import trainer as trainer_module

    original = trainer_module.MiniMindForCausalLM

    def nan_model(cfg):
        model = original(cfg)
        with torch.no_grad():
            model.model.norm.weight.fill_(float("nan"))
        return model

    monkeypatch.setattr(trainer_module, "MiniMindForCausalLM", nan_model)
    with pytest.raises(TrainError, match="training diverged at step 1"):
        train(config, CFG, data, tmp_path / "d.pt", tok, progress=False, on_step=poison)
    assert not (tmp_path / "d.pt").exists()


def test_a_stale_temp_file_from_a_killed_save_is_cleaned_up_on_the_next_run(corpus, tmp_path):
    """A '.c.pt.XXXX.tmp' left by SIGKILL mid-write is removed when training starts again."""
    stale = tmp_path / ".c.pt.abcd.tmp"
    stale.write_bytes(b"half")
    _run(corpus, tmp_path / "c.pt", cfg=TrainConfig(steps=1, batch_size=2, seq_len=8,
                                                    eval_batches=1))
    assert not stale.exists() and (tmp_path / "c.pt").exists()
