"""The byte-level BPE: lossless on any text, MiniMind's special ids, loadable by transformers."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minimind.data import shakespeare_text
from minimind.tokenizer import (
    CHAT_TEMPLATE,
    SPECIAL_TOKENS,
    TokenizerError,
    load_tokenizer,
    smaller_vocab,
    tokenizer_from_state,
    train_bpe,
)


@pytest.fixture(scope="module")
def bpe():
    return train_bpe(shakespeare_text()[:200_000].splitlines(keepends=True), vocab_size=400)


@given(text=st.text(max_size=200)
       | st.sampled_from(["天地玄黄 宇宙洪荒", "🎉👍🏽 ok", "\r\n\t\x00"]))
def test_any_unicode_text_round_trips_exactly(bpe, text):
    """decode(encode(text)) == text for arbitrary Unicode, Chinese and emoji included."""
    assert bpe.decode(bpe.encode(text)) == text


def test_special_tokens_have_minimind_ids(bpe):
    """<|endoftext|>=0, <|im_start|>=1, <|im_end|>=2, and each encodes to one id."""
    assert [bpe.encode(t) for t in SPECIAL_TOKENS] == [[0], [1], [2]]
    assert bpe.vocab_size == 400


def test_a_saved_tokenizer_loads_with_autotokenizer_and_applies_chatml(bpe, tmp_path):
    """AutoTokenizer.from_pretrained(dir) encodes like ours and renders MiniMind's template."""
    from transformers import AutoTokenizer

    bpe.save(tmp_path)
    hf = AutoTokenizer.from_pretrained(tmp_path)
    text = "ROMEO: But soft! 天"
    assert hf.encode(text) == bpe.encode(text)
    assert (hf.pad_token_id, hf.bos_token_id, hf.eos_token_id) == (0, 1, 2)
    chat = hf.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                  add_generation_prompt=True)
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert load_tokenizer(tmp_path).encode(text) == bpe.encode(text)
    assert "im_start" in CHAT_TEMPLATE


def test_the_state_stored_in_a_checkpoint_rebuilds_the_same_tokenizer(bpe):
    """tokenizer_from_state(tok.to_state()) encodes identically."""
    assert tokenizer_from_state(bpe.to_state()).encode("to be, or not") == bpe.encode(
        "to be, or not")


def test_a_vocabulary_smaller_than_the_byte_alphabet_is_refused():
    """vocab_size 100 cannot hold 256 bytes plus 3 special tokens: TokenizerError."""
    with pytest.raises(TokenizerError, match="vocab size"):
        train_bpe(["abc"], vocab_size=100)


def test_a_missing_tokenizer_folder_is_a_clear_error(tmp_path):
    """load_tokenizer on an empty folder says how to make one."""
    with pytest.raises(TokenizerError, match="minimind tokenizer"):
        load_tokenizer(tmp_path)


def test_a_smaller_vocabulary_is_a_prefix_of_the_merges_and_equals_training_to_it():
    """smaller_vocab(train(V), v) is train(v): BPE learns its merges greedily, one at a time."""
    import json

    lines = shakespeare_text()[:100_000].splitlines(keepends=True)
    cut = smaller_vocab(train_bpe(lines, 700), 500)
    direct = train_bpe(lines, 500)
    assert cut.vocab_size == 500
    assert json.loads(cut.tok.to_str())["model"] == json.loads(direct.tok.to_str())["model"]
    with pytest.raises(TokenizerError, match="cannot grow"):
        smaller_vocab(direct, 700)
