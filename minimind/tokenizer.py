"""Byte-level BPE tokenizer, trained with Hugging Face `tokenizers`, as MiniMind trains its own.

Byte level means every UTF-8 string is first mapped to bytes, so any text (Chinese, emoji,
control characters) round-trips exactly and nothing is ever <unk>. The folder a tokenizer is
saved to holds `tokenizer.json` plus the config files `transformers.AutoTokenizer` reads,
including MiniMind's ChatML chat template.

`load_tokenizer("char")` gives the lessons' character tokenizer behind the same interface.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from minimind.checkpoint import atomic_write

if TYPE_CHECKING:
    import tokenizers

# MiniMind's special tokens and ids: pad/endoftext, then the ChatML turn markers.
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
DEFAULT_VOCAB_SIZE = 6400  # MiniMind's
MIN_VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)  # every byte, plus the specials
MAX_VOCAB_SIZE = 1 << 20

# ChatML: <|im_start|>role\ncontent<|im_end|>\n per message, as MiniMind writes it.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def render_chat(messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
    """CHAT_TEMPLATE in plain Python: the ChatML text a model is trained on and prompted with."""
    text = "".join(f"{SPECIAL_TOKENS[BOS_ID]}{m['role']}\n{m['content']}{SPECIAL_TOKENS[EOS_ID]}\n"
                   for m in messages)
    return text + (f"{SPECIAL_TOKENS[BOS_ID]}assistant\n" if add_generation_prompt else "")


class TokenizerError(ValueError):
    """A tokenizer that cannot be trained, read or used as asked."""


class Tokenizer(Protocol):
    """What the trainer, generator and evaluator need from a tokenizer."""

    kind: str
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...
    def encode_batch(self, texts: list[str]) -> list[list[int]]: ...
    def decode(self, ids: Iterable[int]) -> str: ...
    def to_state(self) -> dict[str, str]: ...


class BPETokenizer:
    """A trained `tokenizers.Tokenizer` with encode/decode on plain lists of ids."""

    kind = "bpe"

    def __init__(self, tok: tokenizers.Tokenizer):
        self.tok = tok
        self.vocab_size = tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def to_state(self) -> dict[str, str]:
        return {"kind": self.kind, "json": self.tok.to_str()}

    def save(self, folder: str | Path) -> Path:
        """tokenizer.json, tokenizer_config.json and special_tokens_map.json into `folder`."""
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise TokenizerError(f"{folder} exists and is not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        text = self.tok.to_str(pretty=True)
        atomic_write(folder / "tokenizer.json", lambda p: Path(p).write_text(text, "utf-8"))
        for name, data in _hf_config_files().items():
            body = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
            atomic_write(folder / name, lambda p, b=body: Path(p).write_text(b, "utf-8"))
        return folder


class CharTokenizerAdapter:
    """The lessons' one-token-per-character tokenizer behind the `Tokenizer` interface."""

    kind = "char"

    def __init__(self, chars: str):
        from minimind.data import CharTokenizer

        self.inner = CharTokenizer(chars)
        self.vocab_size = self.inner.vocab_size

    def encode(self, text: str) -> list[int]:
        try:
            return self.inner.encode(text).tolist()
        except ValueError as err:
            raise TokenizerError(f"character tokenizer: {err}") from None

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Iterable[int]) -> str:
        return self.inner.decode(list(ids))

    def to_state(self) -> dict[str, str]:
        return {"kind": self.kind, "chars": self.inner.chars}


def _hf_config_files() -> dict[str, dict]:
    specials = {"bos_token": SPECIAL_TOKENS[BOS_ID], "eos_token": SPECIAL_TOKENS[EOS_ID],
                "pad_token": SPECIAL_TOKENS[PAD_ID], "unk_token": SPECIAL_TOKENS[PAD_ID]}
    added = {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                      "single_word": False, "special": True}
             for i, t in enumerate(SPECIAL_TOKENS)}
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": False, "add_eos_token": False, "add_prefix_space": False,
        "clean_up_tokenization_spaces": False, "model_max_length": 32768,
        "added_tokens_decoder": added, "chat_template": CHAT_TEMPLATE, **specials,
    }
    return {"tokenizer_config.json": config, "special_tokens_map.json": specials}


def check_vocab_size(vocab_size: int) -> None:
    if not isinstance(vocab_size, int) or not MIN_VOCAB_SIZE <= vocab_size <= MAX_VOCAB_SIZE:
        raise TokenizerError(f"vocab size must be an int in [{MIN_VOCAB_SIZE}, "
                             f"{MAX_VOCAB_SIZE}] (256 bytes + 3 special tokens), "
                             f"got {vocab_size!r}")


def train_bpe(texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE) -> BPETokenizer:
    """Train a byte-level BPE on `texts` (an iterable of documents or lines)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    check_vocab_size(vocab_size)
    tok = Tokenizer(models.BPE())
    # No normalizer: NFC or lowercasing would make the round trip lossy.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, seen or not
    )
    tok.train_from_iterator(texts, trainer=trainer)
    for i, t in enumerate(SPECIAL_TOKENS):
        if tok.token_to_id(t) != i:
            raise TokenizerError(f"special token {t} got id {tok.token_to_id(t)}, expected {i}")
    return BPETokenizer(tok)


def smaller_vocab(tokenizer: BPETokenizer, vocab_size: int) -> BPETokenizer:
    """The tokenizer training to `vocab_size` would have given: the first merges only.

    BPE learns one merge at a time, greedily, so a run to a smaller vocabulary stops after a
    prefix of the same merges: one training run gives the whole family of smaller tokenizers.
    """
    check_vocab_size(vocab_size)
    if vocab_size > tokenizer.vocab_size:
        raise TokenizerError(f"cannot grow a vocabulary of {tokenizer.vocab_size} to "
                             f"{vocab_size}: train a larger one")
    data = json.loads(tokenizer.tok.to_str())
    model = data["model"]
    if model.get("type") != "BPE":
        raise TokenizerError(f"not a BPE tokenizer (model type {model.get('type')!r})")
    vocab = {t: i for t, i in model["vocab"].items() if i < vocab_size}
    merges = [m if isinstance(m, list) else m.split(" ") for m in model["merges"]]
    kept = 0
    while kept < len(merges) and "".join(merges[kept]) in vocab:  # the merges, in order, that
        kept += 1  # make tokens below vocab_size
    model["vocab"], model["merges"] = vocab, merges[:kept]
    return bpe_from_json(json.dumps(data))
@functools.lru_cache(maxsize=1)
def byte_tokenizer() -> BPETokenizer:
    """MiniMind's 3 special tokens and the 256 bytes, no merges: the smallest byte-level BPE.

    Every character of a digit string is its own token, which is what the lessons' chat tasks
    (arithmetic, reversing words) want from a model of a few hundred thousand parameters.
    """
    return train_bpe([""], MIN_VOCAB_SIZE)


def bpe_from_json(text: str) -> BPETokenizer:
    from tokenizers import Tokenizer

    try:
        return BPETokenizer(Tokenizer.from_str(text))
    except Exception as err:  # noqa: BLE001 - tokenizers raises a bare Exception on bad JSON
        raise TokenizerError(f"not a valid tokenizer.json: {str(err)[:200]}") from None


def load_tokenizer(source: str | Path) -> Tokenizer:
    """A folder (or tokenizer.json) that `minimind tokenizer` or `save` wrote."""
    path = Path(source)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise TokenizerError(f"no tokenizer at {source} (expected a folder with tokenizer.json; "
                             "make one with `minimind tokenizer --out DIR`)")
    return bpe_from_json(path.read_text(encoding="utf-8"))


def tokenizer_from_state(state: dict[str, str]) -> Tokenizer:
    """The tokenizer a checkpoint stored with `to_state()`."""
    if state.get("kind") == "bpe":
        return bpe_from_json(state["json"])
    if state.get("kind") == "char":
        return CharTokenizerAdapter(state["chars"])
    raise TokenizerError(f"unknown tokenizer kind {state.get('kind')!r}")


def chars_per_token(tokenizer: Tokenizer, text: str) -> float:
    """Compression: characters of `text` per token (higher means shorter sequences)."""
    n = sum(len(ids) for ids in tokenizer.encode_batch(text.splitlines(keepends=True)))
    return len(text) / max(n, 1)
