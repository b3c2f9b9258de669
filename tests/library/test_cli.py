"""The `minimind` command: help with defaults, one-line errors, and the whole training path."""
from __future__ import annotations

import argparse
import json

import pytest

from minimind.cli import build_parser, main

from .helpers import small_corpus


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint trained through the command line on a small character corpus."""
    tmp = tmp_path_factory.mktemp("cli")
    src, _, _ = small_corpus(tmp)
    ckpt = tmp / "m.pt"
    assert main(["train", "--out", str(ckpt), "--data", str(src), "--tokenizer", "char",
                 "--preset", "tiny", "--steps", "3", "--seq-len", "16", "--batch-size", "4",
                 "--eval-batches", "1", "--threads", "1", "--no-progress",
                 "--cache-dir", str(tmp / "cache")]) == 0
    return ckpt, src


def _subparsers(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_help_explains_every_option_with_its_default():
    """Every option of every command has help text, and each that takes a value names a default."""
    for name, sub in _subparsers(build_parser()).items():
        for action in sub._actions:
            if not action.option_strings or action.dest == "help":
                continue
            assert action.help, f"{name} {action.option_strings} has no help"
            if action.nargs != 0:
                text = sub.format_help()
                assert "default" in action.help.lower() or action.default is not None, (
                    f"{name} {action.option_strings[0]} does not say its default")
                assert action.option_strings[-1] in text


def _error_of(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize("extra, message", [
    (["--prompt", ""], "--prompt is empty"),
    (["--top-k", "0"], "top_k must be an int >= 1"),
    (["--temperature", "inf"], "temperature must be a finite number"),
    (["--tokens", "-5"], "new tokens must be an int >= 0"),
    (["--tokens", "100000"], "exceeds the model's context"),
])
def test_a_bad_generate_request_is_one_error_line_with_status_2(trained, capsys, extra, message):
    """Each bad option prints 'error: ...' on one line, no traceback, and exits 2."""
    code, err = _error_of(capsys, ["generate", str(trained[0]), *extra])
    assert code == 2 and err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_debug_shows_the_traceback(trained):
    """--debug re-raises the error instead of printing one line."""
    with pytest.raises(ValueError, match="top_k"):
        main(["generate", str(trained[0]), "--top-k", "0", "--debug"])


def test_generate_eval_and_export_work_on_a_trained_checkpoint(trained, tmp_path, capsys):
    """generate continues the prompt, eval prints perplexity and bits/char, export writes HF."""
    ckpt, src = trained
    assert main(["generate", str(ckpt), "--prompt", "ROMEO:", "--tokens", "10"]) == 0
    assert capsys.readouterr().out.startswith("ROMEO:")
    assert main(["eval", str(ckpt), "--data", str(src), "--max-chars", "2000",
                 "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["perplexity"] > 1 and 0 < report["bits_per_character"] < 8
    assert main(["export", str(ckpt), str(tmp_path / "hf")]) == 0
    assert (tmp_path / "hf" / "config.json").is_file()


def test_steps_zero_saves_nothing_and_a_rerun_does_not_clobber(trained, tmp_path, capsys):
    """--steps 0 writes no file; a fresh run onto an existing checkpoint is refused (status 2)."""
    ckpt, src = trained
    before = ckpt.read_bytes()
    assert main(["train", "--out", str(tmp_path / "z.pt"), "--steps", "0"]) == 0
    assert not (tmp_path / "z.pt").exists()
    code, err = _error_of(capsys, ["train", "--out", str(ckpt), "--data", str(src)])
    assert code == 2 and "--resume to continue it, --force" in err
    assert ckpt.read_bytes() == before


@pytest.mark.parametrize("flag", ["--seq-len", "--batch-size"])
def test_a_zero_size_is_reported_as_a_bad_setting(tmp_path, capsys, flag):
    """--seq-len 0 / --batch-size 0 name the option; no 'diverged', no file."""
    code, err = _error_of(capsys, ["train", "--out", str(tmp_path / "s.pt"), flag, "0"])
    assert code == 2 and f"{flag} must be an int >= 1" in err and "diverged" not in err
    assert not (tmp_path / "s.pt").exists()


def test_resume_refuses_to_change_the_recipe(trained, capsys):
    """--resume with another --lr is refused naming both values."""
    code, err = _error_of(capsys, ["train", "--out", str(trained[0]), "--resume", "--lr", "1"])
    assert code == 2 and "cannot change --lr 1.0" in err


def test_the_tokenizer_command_writes_a_folder_train_can_use(tmp_path, capsys):
    """`minimind tokenizer` then `minimind train --tokenizer DIR` trains a BPE model."""
    src, _, _ = small_corpus(tmp_path, chars=30_000)
    assert main(["tokenizer", "--data", str(src), "--vocab-size", "300",
                 "--out", str(tmp_path / "tok")]) == 0
    assert "characters per token" in capsys.readouterr().out
    assert main(["train", "--out", str(tmp_path / "b.pt"), "--data", str(src),
                 "--tokenizer", str(tmp_path / "tok"), "--preset", "tiny", "--steps", "2",
                 "--seq-len", "16", "--batch-size", "2", "--eval-batches", "1",
                 "--threads", "1", "--no-progress", "--cache-dir", str(tmp_path / "c")]) == 0
    assert main(["generate", str(tmp_path / "b.pt"), "--prompt", "天", "--tokens", "3"]) == 0
