"""Lesson 07 exercises: byte-level BPE. Replace each `raise NotImplementedError` with your code.

Check your work with `pytest -m exercise lessons/07_tokenization` (seconds). The README explains
what each function must do and why; `pytest --solutions` shows the reference passing.

Ids 0..255 are the bytes of the text's UTF-8 encoding; merge i (the i-th pair learned, from 0)
makes the new token id 256 + i. Plain Python lists, tuples and dicts: no torch here.
"""
from typing import Sequence

REFERENCE = "minimind.bpe"  # where the answers live; peek only when stuck

Pair = tuple[int, int]


def count_pairs(ids: Sequence[int]) -> dict[Pair, int]:
    """How often each adjacent pair (ids[i], ids[i + 1]) occurs, counting every position.

    Runs overlap: [7, 7, 7] holds the pair (7, 7) twice. [1, 2, 1, 2] -> {(1, 2): 2, (2, 1): 1}.
    Fewer than two ids: an empty dict.
    """
    raise NotImplementedError


def merge_pair(ids: Sequence[int], pair: Pair, new_id: int) -> list[int]:
    """A new list: `ids` with each occurrence of `pair` replaced by `new_id`, scanning left to
    right; a match consumes both its ids. [7, 7, 7] with pair (7, 7) -> [new_id, 7].
    """
    raise NotImplementedError


def learn_merges(text: str, vocab_size: int) -> list[Pair]:
    """Train byte-level BPE on `text` and return its merges in the order they were learned.

    Start from the text's UTF-8 bytes. While the vocabulary (256 bytes + one id per merge) is
    smaller than vocab_size: count the adjacent pairs, pick the most frequent one (ties go to the
    smallest pair: smaller first id, then smaller second id), replace it everywhere by the next
    new id, and record it. Stop early when fewer than two ids are left. Raise ValueError when
    vocab_size < 256.
    """
    raise NotImplementedError


def encode(text: str, merges: Sequence[Pair]) -> list[int]:
    """The token ids of `text` under `merges`: start from its UTF-8 bytes; while some adjacent
    pair is one of the merges, merge the pair that was learned first (lowest index in
    `merges`), everywhere it occurs, into its id 256 + index.
    """
    raise NotImplementedError


def decode(ids: Sequence[int], merges: Sequence[Pair]) -> str:
    """The text of token ids: each id stands for bytes (a byte itself, or the bytes of the two
    ids its merge joined); join all the bytes, then decode them as UTF-8, replacing invalid
    sequences with U+FFFD (errors="replace"). decode(encode(t, m), m) == t for every string t.
    """
    raise NotImplementedError
