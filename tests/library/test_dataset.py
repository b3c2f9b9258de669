"""Data: every window is sampled, token files round-trip, bad lines name file and line."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from minimind.data import CharTokenizer, Corpus, DataError
from minimind.dataset import (
    IGNORE,
    TokenData,
    cached_token_file,
    encode_chat,
    read_jsonl,
    read_preferences,
    tokenize_to_file,
    window_starts,
)
from minimind.tokenizer import CharTokenizerAdapter, train_bpe


def test_window_starts_cover_both_ends():
    """Starts over 3 possible windows hit 0 and the last valid start, n - T - 1, and no more."""
    T, n = 8, 8 + 3  # windows start at 0, 1, 2
    starts = window_starts(n, T, 2000, torch.Generator().manual_seed(0))
    assert set(starts.tolist()) == {0, 1, 2}


def test_data_exactly_one_window_long_is_sampled_at_zero():
    """T + 1 tokens hold exactly one window; the sampler returns it instead of failing."""
    assert window_starts(9, 8, 4, torch.Generator()).tolist() == [0, 0, 0, 0]
    with pytest.raises(DataError):
        window_starts(8, 8, 1, torch.Generator())


def test_the_lessons_corpus_batch_also_reaches_the_last_window():
    """Corpus.batch on T + 1 tokens returns the whole sequence as x and its shift as y."""
    ids = torch.arange(9)
    corpus = Corpus("t", CharTokenizer("abc"), ids, ids)
    x, y = corpus.batch("train", 2, 8, torch.Generator())
    assert torch.equal(x[0], ids[:8]) and torch.equal(y[0], ids[1:])


def test_a_token_file_round_trips_as_uint16_with_markers_per_jsonl_document(tmp_path):
    """A pretraining jsonl becomes <|im_start|> ids <|im_end|> per document, stored as uint16."""
    src = tmp_path / "pre.jsonl"
    src.write_text(json.dumps({"text": "abc"}) + "\n\n" + json.dumps({"text": "ba"}) + "\n")
    tok = CharTokenizerAdapter("abc")
    path = tokenize_to_file(src, tok, tmp_path / "t.bin")
    data = TokenData.open(path, val_fraction=0.0)
    assert data.tokens.dtype == np.uint16
    assert data.tokens.tolist() == [1, 0, 1, 2, 2, 1, 1, 0, 2]


def test_the_token_file_is_reused_until_the_source_changes(tmp_path):
    """The cache key follows the file: same text, same path; edited text, new file."""
    src = tmp_path / "a.txt"
    src.write_text("hello world\n" * 50)
    tok = CharTokenizerAdapter("helo wrd\n")
    first = cached_token_file(src, tok, tmp_path / "cache")
    assert cached_token_file(src, tok, tmp_path / "cache") == first
    src.write_text("hello hello\n" * 40)
    assert cached_token_file(src, tok, tmp_path / "cache") != first


@pytest.mark.parametrize("line, message", [
    ('{"text": "ok"}\n{"text": \n', r"bad\.jsonl:2: invalid JSON"),
    ('{"text": "ok"}\n[1, 2]\n', r"bad\.jsonl:2: expected a JSON object"),
    ('{"text": "ok"}\n{"content": "x"}\n', r"bad\.jsonl:2: pretraining data needs"),
])
def test_a_bad_jsonl_line_is_an_error_naming_file_and_line(tmp_path, line, message):
    """Broken JSON, a non-object or a missing 'text' stops tokenizing with FILE:LINE."""
    src = tmp_path / "bad.jsonl"
    src.write_text(line)
    with pytest.raises(DataError, match=message):
        tokenize_to_file(src, CharTokenizerAdapter("okx"), tmp_path / "t.bin")
    assert not (tmp_path / "t.bin").exists(), "nothing half-written is left"


def test_invalid_utf8_in_a_text_file_names_the_line(tmp_path):
    """A stray 0xff byte on line 3 of a text file is reported as line 3."""
    src = tmp_path / "x.txt"
    src.write_bytes(b"one\ntwo\nth\xffree\n")
    with pytest.raises(DataError, match=r"x\.txt:3: not UTF-8"):
        tokenize_to_file(src, CharTokenizerAdapter("onetwhr\n"), tmp_path / "t.bin")


def test_a_split_too_short_for_one_window_is_refused_by_check(tmp_path):
    """check(seq_len) fails when the validation split has fewer than seq_len + 1 tokens."""
    src = tmp_path / "a.txt"
    src.write_text("ab" * 50)
    data = TokenData.open(tokenize_to_file(src, CharTokenizerAdapter("ab"), tmp_path / "t.bin"))
    data.check(9)  # 10 validation tokens: one window of 9 + 1
    with pytest.raises(DataError, match="val split has 10 tokens"):
        data.check(10)


def test_sft_labels_supervise_only_assistant_content_and_its_end_marker():
    """User turns and role headers are IGNORE; assistant text + <|im_end|>\\n are learned."""
    tok = train_bpe(["user assistant hello there\n"] * 20, vocab_size=300)
    ids, labels = encode_chat(tok, [{"role": "user", "content": "hello"},
                                    {"role": "assistant", "content": "there"}])
    learned = [i for i, lab in zip(ids, labels) if lab != IGNORE]
    assert tok.decode(learned) == "there<|im_end|>\n"
    assert tok.decode(ids) == ("<|im_start|>user\nhello<|im_end|>\n"
                               "<|im_start|>assistant\nthere<|im_end|>\n")


def test_a_preference_line_without_rejected_names_the_field_and_line(tmp_path):
    """{"chosen": [...]} alone fails at its line with 'rejected' in the message."""
    src = tmp_path / "dpo.jsonl"
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    src.write_text(json.dumps({"chosen": msgs, "rejected": msgs}) + "\n"
                   + json.dumps({"chosen": msgs}) + "\n")
    tok = CharTokenizerAdapter("abuserstni\n")
    with pytest.raises(DataError, match=r"dpo\.jsonl:2 'rejected'"):
        list(read_preferences(src, tok))
    assert [n for n, _ in read_jsonl(src)] == [1, 2]
