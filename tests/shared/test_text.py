"""Review text to tokens: cleaning, tokenizing, stop words, truncation (shared/text.py)."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from shared import SeqbatchError, pad
from shared.text import MAX_TOKENS, TextConfig, clean, text_tokens, tokenize, truncate
from shared.vocab import Vocab

WORD = TextConfig(max_len=None)
CHAR = TextConfig(level="char", max_len=None)


def test_br_tags_become_spaces_in_every_spelling() -> None:
    text = "Great film.<br /><br />Loved it<BR/>really<br>so<<br />br />on"
    assert clean(text, WORD) == "great film. loved it really so on"
    assert "br" not in tokenize(text, WORD)


@pytest.mark.parametrize("control", ["\x85", "\x96", "\x97", "\t", "\x10", "\x08", "\r\n", "\x7f"])
def test_control_characters_go_and_leave_the_words_apart(control: str) -> None:
    text = f"bad{control}movie"
    assert clean(text, WORD) == "bad movie"
    assert tokenize(text, WORD) == ["bad", "movie"]


def test_lowercase_is_optional() -> None:
    assert tokenize("Not GOOD", WORD) == ["not", "good"]
    assert tokenize("Not GOOD", dataclasses.replace(WORD, lowercase=False)) == ["Not", "GOOD"]


def test_word_tokens_keep_apostrophes_and_sentiment_punctuation() -> None:
    assert tokenize("Don't watch it, seriously!!! Why? 10/10.", WORD) == [
        "don't", "watch", "it", "seriously", "!", "!", "!", "why", "?", "10", "10",
    ]
    assert tokenize("Amélie était très bien", WORD) == ["amélie", "était", "très", "bien"]


def test_char_level_is_the_cleaned_text_with_single_spaces() -> None:
    assert tokenize("Ok<br />  Fine\x85!", CHAR) == list("ok fine !")


def test_stop_words_are_scikit_learns_list() -> None:
    cfg = dataclasses.replace(WORD, stop_words=True)
    tokens = tokenize("This is not the best film I have ever seen, but the cast is wonderful", cfg)
    assert tokens == ["best", "film", "seen", "cast", "wonderful"]
    assert "not" in ENGLISH_STOP_WORDS  # the documented price: negations go too
    assert not set(tokens) & ENGLISH_STOP_WORDS


def test_stop_words_at_char_level_rejoin_the_words_left() -> None:
    cfg = dataclasses.replace(CHAR, stop_words=True)
    assert tokenize("The plot is WEAK", cfg) == list("plot weak")


def test_truncate_pre_keeps_the_end_and_post_keeps_the_front() -> None:
    text = " ".join(f"w{i}" for i in range(10))
    assert text_tokens(text, TextConfig(max_len=3, truncate="pre")) == ["w7", "w8", "w9"]
    assert text_tokens(text, TextConfig(max_len=3, truncate="post")) == ["w0", "w1", "w2"]
    assert text_tokens(text, TextConfig(max_len=None)) == [f"w{i}" for i in range(10)]
    assert text_tokens("w0 w1", TextConfig(max_len=3, truncate="pre")) == ["w0", "w1"]


@given(n=st.integers(0, 60), max_len=st.integers(1, 40), side=st.sampled_from(["pre", "post"]))
def test_truncation_keeps_min_n_max_len_tokens_from_the_chosen_side(n: int, max_len: int, side: str) -> None:
    tokens = [f"t{i}" for i in range(n)]
    kept = truncate(tokens, TextConfig(max_len=max_len, truncate=side))  # type: ignore[arg-type]
    assert len(kept) == min(n, max_len)
    assert kept == (tokens[n - len(kept) :] if side == "pre" else tokens[: len(kept)])


def test_a_truncated_batch_is_left_aligned_with_lengths_that_count_real_tokens() -> None:
    # pre/post choose WHICH tokens survive; PAD still follows the real tokens in the Batch.
    cfg = TextConfig(max_len=4, truncate="pre", min_freq=1)
    reviews = ["a b c d e f", "x y"]
    tokens = [text_tokens(r, cfg) for r in reviews]
    vocab = Vocab.fit(tokens)
    batch = pad([vocab.encode(t) for t in tokens], [1, 0], multiple=1)
    assert batch.lengths.tolist() == [4, 2]
    assert vocab.decode(batch.tokens[0]) == ["c", "d", "e", "f"]
    assert vocab.decode(batch.tokens[1]) == ["x", "y"]
    assert batch.tokens[1, 2:].tolist() == [0, 0]
    assert np.array_equal(batch.mask, np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool))


@settings(max_examples=200)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=80))
def test_clean_leaves_no_controls_no_breaks_and_is_idempotent(text: str) -> None:
    out = clean(text, WORD)
    assert not any(0 <= ord(c) < 32 or 127 <= ord(c) < 160 for c in out)
    assert not re.search(r"<\s*br\s*/?\s*>", out, re.IGNORECASE)
    assert clean(out, WORD) == out
    assert out == out.strip() and "  " not in out


@given(
    level=st.sampled_from(["word", "char"]), lowercase=st.booleans(), stop_words=st.booleans(),
    max_len=st.none() | st.integers(1, 1000), side=st.sampled_from(["pre", "post"]), min_freq=st.integers(1, 5),
    max_vocab=st.none() | st.integers(3, 50000),
)
def test_text_config_round_trips_through_json(
    level: str, lowercase: bool, stop_words: bool, max_len: int | None, side: str, min_freq: int,
    max_vocab: int | None,
) -> None:
    cfg = TextConfig(level, lowercase, stop_words, max_len, side, min_freq, max_vocab)  # type: ignore[arg-type]
    assert TextConfig.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"level": "sentence"}, "level"), ({"truncate": "middle"}, "truncate"), ({"max_len": 0}, "max_len"),
     ({"min_freq": 0}, "min_freq"), ({"max_vocab": 2}, "max_vocab")],
)
def test_bad_text_config_names_the_field(kwargs: dict[str, object], word: str) -> None:
    with pytest.raises(SeqbatchError, match=word):
        TextConfig(**kwargs)  # type: ignore[arg-type]


def test_text_config_from_bad_json_is_a_seqbatch_error() -> None:
    with pytest.raises(SeqbatchError, match="text config"):
        TextConfig.from_json("{not json")


def test_a_review_longer_than_max_tokens_is_refused_when_nothing_truncates_it() -> None:
    huge = "a" * 10_000_000  # one 10 MB review at char level
    with pytest.raises(SeqbatchError, match=r"a review of 10,000,000 char tokens \(it starts 'aaaa"):
        text_tokens(huge, CHAR)
    assert len(text_tokens(huge, TextConfig(level="char", max_len=400))) == 400
    assert len(text_tokens("a " * MAX_TOKENS, WORD)) == MAX_TOKENS  # the cap itself is allowed


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_len": MAX_TOKENS + 1}, rf"max_len must be in 1\.\.{MAX_TOKENS} or None"),
    ({"max_len": 2.5}, "max_len must be int or None, got 2.5"),
    ({"max_len": True}, "max_len must be int or None, got True"),
    ({"min_freq": "2"}, "min_freq must be int, got '2'"),
    ({"lowercase": "yes"}, "lowercase must be bool"),
    ({"level": ["word"]}, "text level must be word or char"),
])
def test_text_config_fields_of_the_wrong_type_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SeqbatchError, match=message):
        TextConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["[1, 2]", '"word"', "null", "[" * 100_000])
def test_text_config_from_json_that_is_not_an_object_is_a_seqbatch_error(text: str) -> None:
    with pytest.raises(SeqbatchError, match="text config"):
        TextConfig.from_json(text)
