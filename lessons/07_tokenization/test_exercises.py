"""Exercise tests for lesson 07: each passes on a right answer and names the mistake otherwise."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minimind import bpe
from minimind.course import check_equal
from minimind.data import shakespeare_text

# Mixed text: ASCII, two-byte (é, ï) and three-byte (—, 東) characters, and a run ("aaaa").
MIXED = "naïve café, déjà vu — 東京 aaaa, the end. " * 3


def _slice(n: int = 3000) -> str:
    """A few thousand characters of Shakespeare: a small corpus with real word statistics."""
    return shakespeare_text()[:n]


# --- count_pairs ---------------------------------------------------------------------------------

@pytest.mark.exercise("count_pairs")
def test_count_pairs_counts_every_ordered_adjacent_pair(impl):
    """Each ordered pair is counted at every position, the last one included, runs overlapping."""
    ids = [7, 7, 7, 1, 2, 1, 2, 5]
    check_equal(impl.count_pairs(ids), bpe.count_pairs(ids), what="pair counts")


@pytest.mark.exercise("count_pairs")
def test_count_pairs_of_a_run_overlaps(impl):
    """[7, 7, 7, 7] holds the pair (7, 7) three times: every position counts."""
    check_equal(impl.count_pairs([7, 7, 7, 7]), {(7, 7): 3}, what="pair counts")


@pytest.mark.exercise("count_pairs")
@pytest.mark.parametrize("ids", [[], [3]])
def test_count_pairs_of_fewer_than_two_ids_is_empty(impl, ids):
    """No pair fits in fewer than two ids."""
    check_equal(impl.count_pairs(ids), {}, what="pair counts")


@pytest.mark.exercise("count_pairs")
def test_count_pairs_matches_the_reference_on_text_bytes(impl):
    """On the bytes of real text the counts are the reference's."""
    ids = list(_slice(1500).encode("utf-8"))
    check_equal(impl.count_pairs(ids), bpe.count_pairs(ids), what="pair counts")


# --- merge_pair ----------------------------------------------------------------------------------

@pytest.mark.exercise("merge_pair")
@pytest.mark.parametrize("pair", [(1, 2), (7, 7)])
def test_merge_pair_replaces_every_occurrence_left_to_right(impl, pair):
    """Every occurrence becomes the new id; in a run the leftmost two pair up; the rest is kept."""
    ids = [7, 7, 7, 1, 2, 3, 1, 2, 9]
    check_equal(impl.merge_pair(ids, pair, 300), bpe.merge_pair(ids, pair, 300),
                what="merged ids")


@pytest.mark.exercise("merge_pair")
def test_merge_pair_leaves_its_input_unchanged(impl):
    """merge_pair returns a new list: the caller's ids are not modified."""
    ids = [1, 2, 1, 2, 3]
    impl.merge_pair(ids, (1, 2), 256)
    assert ids == [1, 2, 1, 2, 3], f"merge_pair changed its input list to {ids}"


# --- learn_merges --------------------------------------------------------------------------------

@pytest.mark.exercise("learn_merges")
def test_learn_merges_breaks_ties_by_the_smallest_pair(impl):
    """(c,d), (a,b) and (e,f) all occur twice: the smallest pair, (a,b) = (97, 98), wins."""
    check_equal(impl.learn_merges("cdcd abab efef", 257), [(97, 98)], what="merges")


@pytest.mark.exercise("learn_merges")
def test_learn_merges_counts_overlapping_pairs_in_runs(impl):
    """'zzzzz' holds (z, z) four times, more than the three (a, b) of 'ababab'."""
    check_equal(impl.learn_merges("zzzzz ababab", 257), [(122, 122)], what="merges")


@pytest.mark.exercise("learn_merges")
def test_learn_merges_numbers_new_tokens_from_256(impl):
    """'ab' x 8 merges (a, b) into 256, then (256, 256) into 257, then (257, 257)."""
    check_equal(impl.learn_merges("ab" * 8, 259), [(97, 98), (256, 256), (257, 257)],
                what="merges")


@pytest.mark.exercise("learn_merges")
def test_learn_merges_learns_vocab_size_minus_256_merges(impl):
    """A vocabulary of 256 + k holds k merges: none at 256, three at 259."""
    text = _slice(500)
    assert impl.learn_merges(text, 256) == [], "vocab_size 256 is the bytes alone: no merges"
    check_equal(impl.learn_merges(text, 259), bpe.learn_merges(text, 259), what="merges")


@pytest.mark.exercise("learn_merges")
def test_learn_merges_stops_when_no_pair_is_left(impl):
    """'ab' has one pair: after merging it one id is left, and training stops."""
    check_equal(impl.learn_merges("ab", 300), [(97, 98)], what="merges")


@pytest.mark.exercise("learn_merges")
def test_learn_merges_rejects_a_vocabulary_smaller_than_the_bytes(impl):
    """vocab_size < 256 cannot hold every byte: ValueError."""
    with pytest.raises(ValueError):
        impl.learn_merges("abc", 100)


@pytest.mark.exercise("learn_merges")
def test_learn_merges_works_on_utf8_bytes(impl):
    """Non-ASCII text is trained on its UTF-8 bytes: 'é' is the two ids 195, 169."""
    check_equal(impl.learn_merges(MIXED, 256 + 30), bpe.learn_merges(MIXED, 256 + 30),
                what="merges")


@pytest.mark.exercise("learn_merges")
def test_learn_merges_gives_the_reference_merges_on_shakespeare(impl):
    """On 3000 characters of Shakespeare, 40 merges: exactly the reference's, in order."""
    text = _slice()
    check_equal(impl.learn_merges(text, 256 + 40), bpe.learn_merges(text, 256 + 40),
                what="merges")


# --- encode --------------------------------------------------------------------------------------

# (text, merges): cases where the order of applying merges shows. 97, 98, 99 = a, b, c.
ENCODE_CASES = {
    # (b, c) was learned first: it goes first although (a, b) occurs twice
    "rank-beats-frequency": ("ababc", [(98, 99), (97, 98)]),
    # (a, b) comes first in the text, (b, c) was learned first
    "rank-beats-position": ("abcbc", [(98, 99), (97, 98)]),
    # (a, b) was learned first: it goes first although (b, c) was learned later
    "earliest-merge-first": ("abc", [(97, 98), (98, 99)]),
    # nested merges: "ab" then "ab"+"c"
    "nested": ("abcab", [(97, 98), (256, 99)]),
}


@pytest.mark.exercise("encode")
@pytest.mark.parametrize("case", list(ENCODE_CASES))
def test_encode_applies_the_earliest_learned_merge_first(impl, case):
    """Among the learned pairs present, the one learned first is merged first, everywhere."""
    text, merges = ENCODE_CASES[case]
    check_equal(impl.encode(text, merges), bpe.encode(text, merges), what="token ids")


@pytest.mark.exercise("encode")
def test_encode_starts_from_utf8_bytes(impl):
    """With no merges, ids are the UTF-8 bytes: 'é' is [195, 169], '東' three ids."""
    check_equal(impl.encode("é東", []), list("é東".encode("utf-8")), what="token ids")


@pytest.mark.exercise("encode")
def test_encode_of_empty_text_is_empty(impl):
    """No text, no tokens."""
    check_equal(impl.encode("", [(97, 98)]), [], what="token ids")


@pytest.mark.exercise("encode")
def test_encode_matches_the_reference_with_learned_merges(impl):
    """With 60 merges learned on Shakespeare, unseen text encodes as the reference encodes it."""
    merges = bpe.learn_merges(_slice(), 256 + 60)
    text = shakespeare_text()[-400:] + MIXED
    check_equal(impl.encode(text, merges), bpe.encode(text, merges), what="token ids")


# --- decode --------------------------------------------------------------------------------------

@pytest.mark.exercise("decode")
def test_decode_joins_bytes_before_decoding_utf8(impl):
    """'é' as two byte tokens, [195, 169], decodes to 'é': the character spans two tokens."""
    check_equal(impl.decode([104, 195, 169], []), "hé", what="text")


@pytest.mark.exercise("decode")
@pytest.mark.parametrize("ids", [[104, 0xFF, 105], [104, 0xE2, 0x80]])
def test_decode_replaces_invalid_utf8_with_the_replacement_character(impl, ids):
    """Bytes that are not valid UTF-8 (a stray 0xFF, a cut-off '—') become U+FFFD."""
    check_equal(impl.decode(ids, []), bytes(ids).decode("utf-8", errors="replace"),
                what="text")


@pytest.mark.exercise("decode")
def test_decode_expands_nested_merges(impl):
    """Token 257 = 256 + '!' = 'h' + 'i' + '!': a merge's bytes are its parts' bytes."""
    check_equal(impl.decode([257, 32, 256], [(104, 105), (256, 33)]), "hi! hi", what="text")


@pytest.mark.exercise("encode", "decode")
@pytest.mark.timeout(60)  # hypothesis runs many examples, and shrinks a failing one
@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=40))
def test_encode_then_decode_round_trips_any_text(impl, text):
    """decode(encode(t)) == t for any Unicode string: byte level never loses a character."""
    merges = _round_trip_merges()
    check_equal(impl.decode(impl.encode(text, merges), merges), text, what="round trip")


_MERGES: list[bpe.Pair] = []


def _round_trip_merges() -> list[bpe.Pair]:
    """50 merges learned by the reference on mixed text (merges that cut characters apart)."""
    if not _MERGES:
        _MERGES.extend(bpe.learn_merges(MIXED + _slice(1000), 256 + 50))
    return _MERGES
