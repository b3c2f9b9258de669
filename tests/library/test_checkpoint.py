"""Checkpoints: shapes checked before allocation, clear errors, atomic writes with umask modes."""
from __future__ import annotations

import os

import pytest
import torch

from minimind.checkpoint import (
    CheckpointError,
    atomic_write,
    load_checkpoint,
    load_weights,
    read_checkpoint,
    save_checkpoint,
    temp_files_of,
)
from minimind.config import preset
from minimind.model import MiniMindForCausalLM


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "tiny.pt", MiniMindForCausalLM(preset("tiny")), step=3)


def _with_config(path, tmp_path, **changes):
    state = torch.load(path, weights_only=True)
    state["config"].update(changes)
    out = tmp_path / "edited.pt"
    torch.save(state, out)
    return out


def test_a_checkpoint_declaring_an_absurd_vocabulary_is_refused_before_allocation(ckpt, tmp_path):
    """A small file whose config says vocab_size 400,000,000 is refused, allocating nothing."""
    with pytest.raises(CheckpointError, match="vocab_size=400000000 is absurdly large"):
        load_checkpoint(_with_config(ckpt, tmp_path, vocab_size=400_000_000))


def test_declared_shapes_are_compared_with_the_stored_tensors_before_building(ckpt, tmp_path):
    """vocab_size 4,000,000 is allowed, but the file's (32, 32) embedding does not match it."""
    bad = _with_config(ckpt, tmp_path, vocab_size=4_000_000, hidden_size=4096,
                       num_attention_heads=32, num_key_value_heads=8)
    with pytest.raises(CheckpointError, match=r"does not fit its config: .*model.embed_tokens"):
        load_checkpoint(bad)


def test_loading_into_a_model_of_another_config_names_what_differs(ckpt):
    """load_weights into a 3-layer model says num_hidden_layers 2 != 3."""
    other = MiniMindForCausalLM(preset("tiny", num_hidden_layers=3))
    with pytest.raises(CheckpointError, match="num_hidden_layers: 2 != 3"):
        load_weights(other, read_checkpoint(ckpt), ckpt)


def test_a_checkpoint_with_missing_keys_says_which(ckpt, tmp_path):
    """A state dict without the final norm is refused with 'missing' and the key's name."""
    state = torch.load(ckpt, weights_only=True)
    del state["model"]["model.norm.weight"]
    torch.save(state, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"missing \['model.norm.weight'\]"):
        load_checkpoint(tmp_path / "missing.pt")


def test_a_file_with_code_in_it_is_refused_without_advising_weights_only_false(tmp_path):
    """A pickle holding an arbitrary object is refused; the message never suggests unsafe load."""
    path = tmp_path / "evil.pt"
    torch.save({"format": "minimind-checkpoint-v1", "obj": print}, path)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    assert "weights_only" not in str(info.value) and "arbitrary code" in str(info.value)


def test_a_truncated_file_is_reported_as_corrupt_in_one_line(ckpt, tmp_path):
    """Half a checkpoint gives 'corrupt or truncated' and a single-line message."""
    half = tmp_path / "half.pt"
    half.write_bytes(ckpt.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="corrupt or truncated") as info:
        read_checkpoint(half)
    assert "\n" not in str(info.value)


def test_atomic_write_gives_the_file_the_mode_the_umask_allows(tmp_path):
    """With umask 027 a written file is 0o640, as open() would make it."""
    old = os.umask(0o027)
    try:
        path = atomic_write(tmp_path / "f.bin", lambda p: open(p, "wb").close())
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640
    assert temp_files_of(path) == []


def test_checkpoint_round_trips_and_corrupt_files_get_clear_errors(tmp_path):
    """save/load restores identical logits; truncated, foreign or missing files raise clearly."""
    torch.manual_seed(0)
    model = MiniMindForCausalLM(preset("tiny"))
    path = save_checkpoint(tmp_path / "ckpt.pt", model, step=7, extra={"note": "hi"})
    assert not list(tmp_path.glob(".*.tmp")), "the temp file was renamed into place"
    restored, state = load_checkpoint(path)
    ids = torch.randint(0, 32, (2, 9))
    torch.testing.assert_close(restored(ids).logits, model(ids).logits, atol=0, rtol=0)
    assert state["step"] == 7 and state["extra"] == {"note": "hi"}
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": 1}, foreign)
    with pytest.raises(CheckpointError, match="not a minimind checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_failed_checkpoint_write_leaves_the_previous_file_intact(tmp_path):
    """A save that dies midway leaves the old checkpoint readable and no temp file behind."""
    model = MiniMindForCausalLM(preset("tiny"))
    path = save_checkpoint(tmp_path / "ckpt.pt", model, step=1)
    before = path.read_bytes()

    class Exploding(dict):
        def __reduce_ex__(self, protocol):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(path, model, step=2, extra={"bad": Exploding()})
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))
