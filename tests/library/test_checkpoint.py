"""Checkpoints: round trips, clear errors on bad files, atomic writes."""

import pytest
import torch

from minimind.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from minimind.config import preset
from minimind.model import MiniMindForCausalLM


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
