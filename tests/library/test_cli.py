"""The command line trains, saves and generates."""




def test_command_line_trains_saves_and_generates(tmp_path, capsys):
    """`python -m minimind train` writes a checkpoint that `generate` samples from."""
    from minimind.__main__ import main

    ckpt = tmp_path / "tiny.pt"
    assert main(["train", "--out", str(ckpt), "--preset", "tiny", "--steps", "3",
                 "--seq-len", "32", "--batch-size", "4", "--threads", "1"]) == 0
    assert main(["generate", str(ckpt), "--prompt", "ROMEO:", "--tokens", "20"]) == 0
    out = capsys.readouterr().out
    assert "saved" in out and "ROMEO:" in out
