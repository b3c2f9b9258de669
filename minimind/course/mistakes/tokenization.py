"""Lesson 07 (tokenization): the exercises and their known wrong versions."""
from minimind.bpe import count_pairs as _count
from minimind.bpe import merge_pair as _merge
from minimind.course.mistakes import mistake

REFERENCE = "minimind.bpe"
EXERCISES = ("count_pairs", "merge_pair", "learn_merges", "encode", "decode")

N_BYTES = 256


def _table(merges):
    table = [bytes([b]) for b in range(N_BYTES)]
    for a, b in merges:
        table.append(table[a] + table[b])
    return table


def _learn(text, vocab_size, *, start=None, count=_count, choose=None, first_id=N_BYTES,
           recount=True):
    """The reference training loop with one of its parts swapped for a wrong one."""
    if vocab_size < N_BYTES:
        raise ValueError(f"vocab_size must be >= {N_BYTES}, got {vocab_size}")
    ids = list(text.encode("utf-8")) if start is None else start(text)
    choose = choose or (lambda c: min(c, key=lambda p: (-c[p], p)))
    merges = []
    counts = count(ids)
    for k in range(vocab_size - N_BYTES):
        if recount:
            counts = count(ids)
        counts = {p: n for p, n in counts.items() if n > 0}
        if not counts or len(ids) < 2:
            break
        pair = choose(counts)
        ids = _merge(ids, pair, first_id + k)
        merges.append(pair)
        counts.pop(pair)
    return merges


# --- count_pairs ---------------------------------------------------------------------------------

@mistake("count_pairs", "runs counted without overlap: [7, 7, 7] holds (7, 7) once",
         hint="count the pair at every position i, whether or not the previous position "
              "already counted the same pair; overlapping is only forbidden when merging")
def pairs_non_overlapping(ids):
    counts, i = {}, 0
    while i < len(ids) - 1:
        pair = (ids[i], ids[i + 1])
        counts[pair] = counts.get(pair, 0) + 1
        i += 2 if ids[i] == ids[i + 1] else 1
    return counts


@mistake("count_pairs", "the last pair is never counted (the loop stops one position early)",
         hint="a list of n ids has n - 1 adjacent pairs; make sure the last one, "
              "(ids[-2], ids[-1]), is counted")
def pairs_miss_last(ids):
    counts = {}
    for i in range(len(ids) - 2):
        pair = (ids[i], ids[i + 1])
        counts[pair] = counts.get(pair, 0) + 1
    return counts


@mistake("count_pairs", "pairs counted without their order: (2, 1) is filed under (1, 2)",
         hint="a pair is ordered: (a, b) and (b, a) are different tokens-to-be")
def pairs_unordered(ids):
    counts = {}
    for pair in zip(ids, ids[1:]):
        key = tuple(sorted(pair))
        counts[key] = counts.get(key, 0) + 1
    return counts


@mistake("count_pairs", "each pair recorded once, however often it occurs",
         hint="the value is how many times the pair occurs, not whether it occurs")
def pairs_presence(ids):
    return {pair: 1 for pair in zip(ids, ids[1:])}


# --- merge_pair ----------------------------------------------------------------------------------

@mistake("merge_pair", "a match does not consume its second id: [7, 7, 7] -> [new, new, 7]",
         hint="after replacing a match, continue after both of its ids")
def merge_overlapping(ids, pair, new_id):
    out = []
    for i in range(len(ids)):
        out.append(new_id if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair else ids[i])
    return out


@mistake("merge_pair", "the last id is dropped when it is not part of a match",
         hint="the loop must also copy the final id when no pair starts at it")
def merge_drops_last(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake("merge_pair", "only the first occurrence is replaced",
         hint="replace every occurrence of the pair, not just the first")
def merge_first_only(ids, pair, new_id):
    ids = list(ids)
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2:]
    return ids


@mistake("merge_pair", "scanned right to left: [7, 7, 7] -> [7, new]",
         hint="scan from the left: in a run, the leftmost two ids pair up first")
def merge_right_to_left(ids, pair, new_id):
    out, i = [], len(ids) - 1
    while i >= 0:
        if i >= 1 and (ids[i - 1], ids[i]) == pair:
            out.append(new_id)
            i -= 2
        else:
            out.append(ids[i])
            i -= 1
    return out[::-1]


# --- learn_merges --------------------------------------------------------------------------------

@mistake("learn_merges", "ties go to the pair seen first in the text (max over a dict)",
         hint="max() returns the first of equal counts in the dict's order, which is the order "
              "pairs first appear; the documented rule is the smallest pair among the most "
              "frequent")
def learn_ties_first_seen(text, vocab_size):
    return _learn(text, vocab_size, choose=lambda c: max(c, key=c.get))


@mistake("learn_merges", "ties go to the largest pair",
         hint="among the most frequent pairs take the smallest (first id, then second)")
def learn_ties_largest(text, vocab_size):
    return _learn(text, vocab_size, choose=lambda c: max(c, key=lambda p: (c[p], p)))


@mistake("learn_merges", "runs counted without overlap when choosing the pair",
         hint="count every adjacent position (as count_pairs does): [7, 7, 7] holds (7, 7) "
              "twice")
def learn_non_overlapping(text, vocab_size):
    return _learn(text, vocab_size, count=pairs_non_overlapping)


@mistake("learn_merges", "new token ids start at 257 instead of 256",
         hint="ids 0..255 are the bytes, so merge i (counting from 0) makes id 256 + i")
def learn_ids_from_257(text, vocab_size):
    return _learn(text, vocab_size, first_id=N_BYTES + 1)


@mistake("learn_merges", "one merge too few (the vocabulary counted as 257 base tokens)",
         hint="a vocabulary of vocab_size holds 256 bytes and vocab_size - 256 merges")
def learn_one_short(text, vocab_size):
    return _learn(text, vocab_size)[:-1] if vocab_size > N_BYTES else []


@mistake("learn_merges", "pairs counted once before the loop, never after a merge",
         hint="every merge changes which pairs are adjacent: count again after each merge")
def learn_counts_once(text, vocab_size):
    return _learn(text, vocab_size, recount=False)


@mistake("learn_merges", "starts from characters (ord) instead of UTF-8 bytes",
         hint="byte level means text.encode('utf-8'): a character outside ASCII is several "
              "bytes, and code points above 255 would collide with merge ids")
def learn_code_points(text, vocab_size):
    return _learn(text, vocab_size, start=lambda t: [ord(c) for c in t])


# --- encode --------------------------------------------------------------------------------------

def _encode(text, merges, choose, first_id=N_BYTES, start=None):
    rank = {pair: i for i, pair in enumerate(merges)}
    ids = list(text.encode("utf-8")) if start is None else start(text)
    while len(ids) >= 2:
        learned = [p for p in zip(ids, ids[1:]) if p in rank]
        if not learned:
            break
        pair = choose(learned, rank, ids)
        ids = _merge(ids, pair, first_id + rank[pair])
    return ids


def _lowest_rank(learned, rank, ids):
    return min(learned, key=rank.get)


@mistake("encode", "merges applied by how often the pair occurs in the text, not by rank",
         hint="training order decides: among learned pairs, merge the one learned first "
              "(lowest index), however often another one occurs")
def encode_by_frequency(text, merges):
    def most_frequent(learned, rank, ids):
        counts = _count(ids)
        return min(learned, key=lambda p: (-counts[p], rank[p]))
    return _encode(text, merges, most_frequent)


@mistake("encode", "greedy left to right: the first learned pair in the text is merged first",
         hint="position in the text does not decide; among all learned pairs present, merge the "
              "one learned first")
def encode_left_to_right(text, merges):
    return _encode(text, merges, lambda learned, rank, ids: learned[0])


@mistake("encode", "the merge learned last is applied first",
         hint="replay training's order: the lowest index in merges goes first")
def encode_latest_first(text, merges):
    return _encode(text, merges, lambda learned, rank, ids: max(learned, key=rank.get))


@mistake("encode", "starts from characters (ord) instead of UTF-8 bytes",
         hint="byte level means text.encode('utf-8'): 'é' is the two ids 195, 169")
def encode_code_points(text, merges):
    return _encode(text, merges, _lowest_rank, start=lambda t: [ord(c) for c in t])


@mistake("encode", "merge i encoded as id 257 + i",
         hint="ids 0..255 are the bytes, so merge i (counting from 0) makes id 256 + i")
def encode_ids_from_257(text, merges):
    return _encode(text, merges, _lowest_rank, first_id=N_BYTES + 1)


# --- decode --------------------------------------------------------------------------------------

@mistake("decode", "each token decoded on its own: a character split across tokens breaks",
         hint="a character's bytes can sit in two tokens; join all the bytes first, then decode "
              "once")
def decode_per_token(ids, merges):
    table = _table(merges)
    return "".join(table[i].decode("utf-8", errors="replace") for i in ids)


@mistake("decode", "errors='strict': invalid UTF-8 raises instead of becoming U+FFFD",
         hint="a model can emit any sequence of ids, including ones that are not valid UTF-8: "
              "decode with errors='replace'")
def decode_strict(ids, merges):
    table = _table(merges)
    return b"".join(table[i] for i in ids).decode("utf-8")


@mistake("decode", "errors='ignore': invalid UTF-8 silently dropped",
         hint="dropping bytes hides the problem; replace each invalid sequence with U+FFFD "
              "(errors='replace')")
def decode_ignore(ids, merges):
    table = _table(merges)
    return b"".join(table[i] for i in ids).decode("utf-8", errors="ignore")


@mistake("decode", "bytes decoded as Latin-1: 'é' comes back as 'Ã©'",
         hint="the bytes are UTF-8; one byte is one character only in ASCII")
def decode_latin1(ids, merges):
    table = _table(merges)
    return b"".join(table[i] for i in ids).decode("latin-1")


@mistake("decode", "a merge's bytes taken as its two ids (one level): nested merges break",
         hint="a merge may join earlier merges; a token's bytes are its two parts' bytes, "
              "built up in merge order")
def decode_one_level(ids, merges):
    table = [bytes([b]) for b in range(N_BYTES)] + [bytes(pair) for pair in merges]
    return b"".join(table[i] for i in ids).decode("utf-8", errors="replace")
