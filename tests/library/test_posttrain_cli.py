"""`minimind dpo`, `minimind grpo`, `minimind distill` on a tiny byte-level checkpoint."""
from __future__ import annotations

import pytest
import torch

from minimind.checkpoint import read_checkpoint, save_checkpoint
from minimind.cli import main
from minimind.lab.chat import chat_config, chat_tokenizer
from minimind.model import MiniMindForCausalLM


@pytest.fixture
def sft_ckpt(tmp_path):
    """A tiny untrained model saved with the byte tokenizer, as `minimind sft` would."""
    tok = chat_tokenizer()
    torch.manual_seed(0)
    model = MiniMindForCausalLM(chat_config(tok.vocab_size, hidden_size=32))
    return save_checkpoint(tmp_path / "sft.pt", model, extra={"tokenizer": tok.to_state(),
                                                              "stage": "sft"})


def test_dpo_grpo_and_distill_commands_train_and_save(sft_ckpt, tmp_path, capsys):
    """Each command runs a couple of steps, saves its stage, and refuses to overwrite."""
    common = ["--init", str(sft_ckpt), "--threads", "1", "--steps", "2"]
    dpo = tmp_path / "dpo.pt"
    assert main(["dpo", *common, "--data", "tasks:addition", "--examples", "16",
                 "--batch-size", "4", "--out", str(dpo)]) == 0
    assert "ln 2" in capsys.readouterr().out
    assert read_checkpoint(dpo)["extra"]["stage"] == "dpo"
    assert main(["dpo", *common, "--data", "tasks:addition", "--out", str(dpo)]) == 2
    grpo = tmp_path / "grpo.pt"
    assert main(["grpo", *common, "--tasks", "addition", "--examples", "8", "--prompts", "2",
                 "--group-size", "2", "--eval-examples", "4", "--max-new-tokens", "3",
                 "--out", str(grpo)]) == 0
    assert read_checkpoint(grpo)["extra"]["stage"] == "grpo"
    distill = tmp_path / "distill.pt"
    assert main(["distill", *common, "--teacher", str(sft_ckpt), "--data", "tasks:addition",
                 "--examples", "8", "--batch-size", "2", "--out", str(distill)]) == 0
    assert read_checkpoint(distill)["extra"]["stage"] == "distill"


def test_post_training_help_names_the_key_settings(capsys):
    """--help of each command explains its objective and MiniMind's defaults."""
    for command, words in (("dpo", "ln 2"), ("grpo", "sometimes"), ("distill", "alpha")):
        assert main([command, "--help"]) == 0
        assert words in capsys.readouterr().out


def test_post_training_commands_show_a_progress_bar_over_their_steps(sft_ckpt, tmp_path, capsys):
    """A tqdm bar counts the optimizer steps with the loss on stderr; --no-progress hides it."""
    common = ["--init", str(sft_ckpt), "--threads", "1", "--steps", "3", "--data",
              "tasks:addition", "--examples", "8", "--batch-size", "2"]
    assert main(["dpo", *common, "--out", str(tmp_path / "a.pt")]) == 0
    err = capsys.readouterr().err
    assert "dpo" in err and "3/3" in err and "loss=" in err
    assert main(["dpo", *common, "--no-progress", "--out", str(tmp_path / "b.pt")]) == 0
    assert "3/3" not in capsys.readouterr().err


def test_dpo_reports_its_margin_on_pairs_it_did_not_train_on(sft_ckpt, tmp_path, capsys):
    """From a jsonl file DPO holds out the last tenth; from tasks: it makes new pairs."""
    pairs = tmp_path / "pairs.jsonl"
    assert main(["tasks", "addition", "--n", "30", "--preferences", "--out", str(pairs)]) == 0
    common = ["--init", str(sft_ckpt), "--threads", "1", "--steps", "1", "--batch-size", "2",
              "--no-progress"]
    assert main(["dpo", *common, "--data", str(pairs), "--out", str(tmp_path / "a.pt")]) == 0
    assert "on 3 held-out pairs" in capsys.readouterr().out
    assert main(["dpo", *common, "--data", "tasks:addition", "--examples", "8",
                 "--out", str(tmp_path / "b.pt")]) == 0
    assert "on 8 held-out pairs" in capsys.readouterr().out
