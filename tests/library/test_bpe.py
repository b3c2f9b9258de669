"""The teaching BPE (minimind.bpe): its rules on small cases, lossless round trips, clear errors,
and agreement with Hugging Face's BPE where the two should agree."""
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minimind import bpe
from minimind.data import shakespeare_text
from minimind.tokenizer import train_bpe


def test_pairs_are_counted_at_every_position_and_merged_left_to_right():
    """count_pairs overlaps runs; merge_pair consumes each match, leftmost first."""
    assert bpe.count_pairs([7, 7, 7, 1, 2]) == {(7, 7): 2, (7, 1): 1, (1, 2): 1}
    assert bpe.count_pairs([5]) == {}
    assert bpe.merge_pair([7, 7, 7, 1, 2], (7, 7), 256) == [256, 7, 1, 2]
    assert bpe.merge_pair([1, 2, 1, 2, 1], (1, 2), 300) == [300, 300, 1]


def test_ties_go_to_the_smallest_pair_whatever_the_counting_order():
    """Among equally frequent pairs the smallest wins, not the first seen."""
    assert bpe.most_frequent_pair({(99, 100): 2, (97, 98): 2, (101, 102): 2}) == (97, 98)
    assert bpe.learn_merges("cdcd abab", 257) == [(97, 98)]
    with pytest.raises(ValueError, match="no pairs"):
        bpe.most_frequent_pair({})


def test_merges_build_on_earlier_merges_and_stop_when_nothing_is_left():
    """New ids count up from 256; training stops early when one id remains."""
    assert bpe.learn_merges("ab" * 8, 300) == [(97, 98), (256, 256), (257, 257), (258, 258)]
    assert bpe.learn_merges("", 300) == []


def test_encode_replays_merges_by_rank_not_by_frequency():
    """(b, c) learned first goes first in 'ababc' although (a, b) occurs twice."""
    assert bpe.encode("ababc", [(98, 99), (97, 98)]) == [257, 97, 256]
    assert bpe.encode("", [(97, 98)]) == []


def test_a_training_text_encodes_to_as_many_tokens_as_training_left():
    """Encoding the training text replays training: one token per id left at the end."""
    text = shakespeare_text()[:2000]
    merges = bpe.learn_merges(text, 256 + 50)
    ids = list(text.encode("utf-8"))
    for i, pair in enumerate(merges):
        ids = bpe.merge_pair(ids, pair, 256 + i)
    assert bpe.encode(text, merges) == ids


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_any_unicode_text_round_trips(text):
    """decode(encode(t)) == t for every string, with merges that cut characters apart."""
    merges = bpe.learn_merges("naïve café — 東京 😀 " * 4, 256 + 40)
    assert bpe.decode(bpe.encode(text, merges), merges) == text


def test_invalid_utf8_decodes_to_the_replacement_character():
    """A model may emit ids that are not valid UTF-8: U+FFFD, as Hugging Face decodes them."""
    assert bpe.decode([104, 0xFF, 105], []) == "h\ufffdi"
    assert bpe.decode([0xE2, 0x80], []) == "\ufffd"


def test_bad_input_gets_one_line_errors():
    """A vocabulary below 256, a merge of ids that do not exist yet, an unknown id."""
    with pytest.raises(ValueError, match="vocab_size"):
        bpe.learn_merges("abc", 255)
    with pytest.raises(ValueError, match="merge 0"):
        bpe.decode([97], [(97, 256)])
    with pytest.raises(ValueError, match="token id 300"):
        bpe.decode([300], [(97, 98)])


# --- agreement with Hugging Face tokenizers -------------------------------------------------------

def _hf_merges_without_pre_tokenizer(text: str, n_merges: int) -> list[tuple[str, str]]:
    """Hugging Face's BPE trainer on `text` as one word (no pre-tokenizer, no normaliser)."""
    from tokenizers import Tokenizer, models, trainers

    tok = Tokenizer(models.BPE())
    trainer = trainers.BpeTrainer(vocab_size=len(set(text)) + n_merges, show_progress=False)
    tok.train_from_iterator([text], trainer=trainer)
    return [tuple(m) for m in json.loads(tok.to_str())["model"]["merges"]]


def test_training_learns_hugging_face_merges_on_the_same_text():
    """With no pre-tokenizer on ASCII text, HF's trainer learns our merges, ties included.

    HF numbers the characters it saw in code point order, which for ASCII is byte order, and
    breaks ties by the smallest pair of its ids: the same rule as most_frequent_pair.
    """
    text = shakespeare_text()[:4000]
    assert text.isascii()
    merges = bpe.learn_merges(text, 256 + 80)
    table = bpe.token_bytes(merges)
    ours = [(table[a].decode(), table[b].decode()) for a, b in merges]
    assert ours == _hf_merges_without_pre_tokenizer(text, 80)


def _byte_level_chars() -> dict[str, int]:
    """GPT-2's byte-to-character map, inverted: printable bytes stand for themselves, the other
    bytes for the characters from U+0100 on, in byte order (what HF's ByteLevel uses)."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def test_encoding_with_the_fast_tokenizers_merges_gives_its_tokens_word_by_word():
    """Our encode, given the merges `train_bpe` learned, splits each pre-tokenized word into
    exactly the tokens the fast tokenizer gives: both merge by rank."""
    train = shakespeare_text()[:200_000]
    fast = train_bpe(train.splitlines(keepends=True), 1024)
    to_byte = _byte_level_chars()

    def raw(token: str) -> bytes:
        return bytes(to_byte[c] for c in token)

    ids: dict[bytes, int] = {bytes([b]): b for b in range(256)}
    merges = []
    for a, b in json.loads(fast.tok.to_str())["model"]["merges"]:
        merges.append((ids[raw(a)], ids[raw(b)]))
        ids.setdefault(raw(a) + raw(b), 255 + len(merges))
    table = bpe.token_bytes(merges)
    assert table[256:] == [raw(a) + raw(b) for a, b in
                           json.loads(fast.tok.to_str())["model"]["merges"]]
    text = shakespeare_text()[-3000:] + " naïve café — 東京"
    words = [raw(w).decode("utf-8") for w, _ in fast.tok.pre_tokenizer.pre_tokenize_str(text)]
    assert "".join(words) == text
    ours = [table[i] for w in words for i in bpe.encode(w, merges)]
    theirs = [raw(t) for t in fast.tok.encode(text, add_special_tokens=False).tokens]
    assert ours == theirs
