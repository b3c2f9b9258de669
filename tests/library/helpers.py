"""Small shared fixtures for the library tests: a short character corpus as a token file."""
from __future__ import annotations

from pathlib import Path

from minimind.data import shakespeare_text
from minimind.dataset import TokenData, cached_token_file
from minimind.tokenizer import CharTokenizerAdapter


def small_corpus(folder: Path, chars: int = 20_000) -> tuple[Path, CharTokenizerAdapter, TokenData]:
    """The first `chars` characters of Shakespeare as a file, its tokenizer and its token data."""
    text = shakespeare_text()[:chars]
    src = folder / "small.txt"
    src.write_text(text, encoding="utf-8")
    tok = CharTokenizerAdapter(text)
    return src, tok, TokenData.open(cached_token_file(src, tok, folder / "cache"))
