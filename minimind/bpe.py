"""Byte-level BPE in plain Python: the algorithm behind `minimind.tokenizer`, readable top to
bottom, slow (use `minimind.tokenizer.train_bpe` for real corpora).

Text becomes its UTF-8 bytes, ids 0..255, so every string has a tokenization and nothing is
ever unknown. Training repeats one step: count every adjacent pair of ids, and replace the most
frequent pair by a new id (256, 257, ...). The list of merged pairs, in the order they were
learned, is the whole tokenizer: merge i makes token 256 + i. Encoding replays the merges on new
text, lowest rank first; decoding concatenates each token's bytes.

    merges = learn_merges("low lower lowest", 260)
    ids = encode("lowest", merges)
    assert decode(ids, merges) == "lowest"

What the fast tokenizer (Hugging Face `tokenizers`, `minimind.tokenizer.train_bpe`) adds on
top: it first splits text into words (GPT-2's pattern: a leading space joins the word after it)
and never merges across a word boundary, it counts pairs once per distinct word, and it updates
counts incrementally instead of recounting. On the same text without pre-tokenization both
learn the same merges, and given the fast tokenizer's merges `encode` gives its tokens word by
word (tests/library/test_bpe.py).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

Pair = tuple[int, int]
N_BYTES = 256  # ids 0..255 are the bytes; merge i makes id N_BYTES + i


def count_pairs(ids: Sequence[int]) -> dict[Pair, int]:
    """How often each adjacent pair occurs in `ids`, counting every position.

    Runs overlap: [a, a, a] holds the pair (a, a) twice, at positions 0 and 1.
    """
    counts: dict[Pair, int] = {}
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge_pair(ids: Sequence[int], pair: Pair, new_id: int) -> list[int]:
    """`ids` with each occurrence of `pair` replaced by `new_id`, scanning left to right.

    A match consumes both its ids, so [a, a, a] with pair (a, a) becomes [new, a].
    """
    out: list[int] = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def most_frequent_pair(counts: dict[Pair, int]) -> Pair:
    """The pair with the highest count; among equal counts, the smallest pair (first id, then
    second). Deterministic whatever order the pairs were counted in. Hugging Face's trainer
    breaks ties the same way on its own ids, which order ASCII characters and merged tokens as
    ours do (not so bytes that its byte-level mapping renames, such as the space)."""
    if not counts:
        raise ValueError("no pairs to choose from: the sequence has fewer than two ids")
    return min(counts, key=lambda pair: (-counts[pair], pair))


def learn_merges(text: str, vocab_size: int) -> list[Pair]:
    """Train byte-level BPE on `text`: the merges, in order, for a vocabulary of `vocab_size`
    (256 bytes plus one token per merge). Stops early when no pair is left to merge.
    """
    if not isinstance(vocab_size, int) or vocab_size < N_BYTES:
        raise ValueError(f"vocab_size must be an int >= {N_BYTES} (one id per byte), "
                         f"got {vocab_size!r}")
    ids = list(text.encode("utf-8"))
    merges: list[Pair] = []
    for new_id in range(N_BYTES, vocab_size):
        counts = count_pairs(ids)  # recounted after every merge: simple, and never stale
        if not counts:
            break
        pair = most_frequent_pair(counts)
        ids = merge_pair(ids, pair, new_id)
        merges.append(pair)
    return merges


def check_merges(merges: Sequence[Pair]) -> None:
    """Raise ValueError unless merge i joins two ids that exist before it (below 256 + i)."""
    for i, pair in enumerate(merges):
        if (len(pair) != 2 or not all(isinstance(t, int) for t in pair)
                or not all(0 <= t < N_BYTES + i for t in pair)):
            raise ValueError(f"merge {i} is {pair!r}: it must join two ids in "
                             f"[0, {N_BYTES + i}) (bytes and earlier merges)")


def encode(text: str, merges: Sequence[Pair]) -> list[int]:
    """The token ids of `text`: its UTF-8 bytes, then, while any adjacent pair has been
    learned, merge the pair learned earliest (lowest rank), everywhere it occurs.

    Rank, not frequency in `text`, decides: encoding replays training's order, so a string is
    split the same way wherever it occurs.
    """
    rank = {pair: i for i, pair in enumerate(merges)}
    ids = list(text.encode("utf-8"))
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: rank.get(p, len(rank)))
        if pair not in rank:
            break  # no adjacent pair was ever learned
        ids = merge_pair(ids, pair, N_BYTES + rank[pair])
    return ids


def token_bytes(merges: Sequence[Pair]) -> list[bytes]:
    """The bytes of every token: the 256 single bytes, then each merge's two parts joined."""
    check_merges(merges)
    table = [bytes([b]) for b in range(N_BYTES)]
    for a, b in merges:
        table.append(table[a] + table[b])
    return table


def decode(ids: Iterable[int], merges: Sequence[Pair]) -> str:
    """The text of token ids: their bytes joined, then decoded as UTF-8 once, with invalid
    sequences replaced by U+FFFD (as Hugging Face and GPT-2 do).

    Decoding token by token would break characters whose bytes two tokens share.
    """
    table = token_bytes(merges)
    out = bytearray()
    for i in ids:
        if not 0 <= i < len(table):
            raise ValueError(f"token id {i} is outside the vocabulary [0, {len(table)})")
        out += table[i]
    return out.decode("utf-8", errors="replace")
