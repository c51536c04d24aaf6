"""Vocabularies: reserved ids, encode/decode, unknown tokens, frequency cut-offs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import SeqbatchError
from shared.vocab import PAD, PAD_TOKEN, UNK, UNK_TOKEN, Vocab


def test_pad_is_zero_and_unk_is_one() -> None:
    vocab = Vocab.fit(["abc"])
    assert (PAD, UNK) == (0, 1)
    assert vocab.tokens[:2] == (PAD_TOKEN, UNK_TOKEN)
    assert vocab.index[PAD_TOKEN] == 0 and vocab.index[UNK_TOKEN] == 1
    assert len(vocab) == 5


def test_real_tokens_never_get_a_reserved_id() -> None:
    vocab = Vocab.fit(["hello", "world"])
    ids = vocab.encode(list("helloworld"))
    assert ids.dtype == np.int32
    assert ids.min() >= 2


@settings(max_examples=80, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=8))
def test_encode_decode_round_trip(texts: list[str]) -> None:
    vocab = Vocab.fit(list(t) for t in texts)
    for t in texts:
        ids = vocab.encode(list(t))
        assert len(ids) == len(t)
        assert "".join(vocab.decode(ids)) == t


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet="abc", min_size=1), st.text(alphabet="xyz", min_size=1))
def test_unknown_characters_map_to_unk(seen: str, unseen: str) -> None:
    vocab = Vocab.fit([seen])
    ids = vocab.encode(list(seen + unseen))
    assert (ids[len(seen) :] == UNK).all()
    assert (ids[: len(seen)] != UNK).all()
    assert vocab.unknown_count(list(seen + unseen)) == len(unseen)


def test_decode_drops_padding() -> None:
    vocab = Vocab.fit(["ab"])
    ids = [*vocab.encode(list("ab")), PAD, PAD]
    assert vocab.decode(ids) == ["a", "b"]


def test_most_frequent_first_ties_in_code_point_order() -> None:
    vocab = Vocab.fit(["cab", "bc", "c"])  # c: 3, b: 2, a: 1
    assert vocab.tokens[2:] == ("c", "b", "a")
    assert Vocab.fit(["zyx"]).tokens[2:] == ("x", "y", "z")


def test_min_freq_drops_rare_tokens() -> None:
    vocab = Vocab.fit(["aaab", "ac"], min_freq=2)
    assert vocab.tokens[2:] == ("a",)
    assert vocab.encode(list("abc")).tolist() == [2, UNK, UNK]


def test_max_size_counts_pad_and_unk() -> None:
    vocab = Vocab.fit(["aaaabbbccd"], max_size=4)
    assert len(vocab) == 4
    assert vocab.tokens == (PAD_TOKEN, UNK_TOKEN, "a", "b")
    assert len(Vocab.fit(["abc"], max_size=2)) == 2


def test_a_vocabulary_must_start_with_pad_and_unk() -> None:
    with pytest.raises(SeqbatchError, match="starts with"):
        Vocab(("a", "b"))
    with pytest.raises(SeqbatchError, match="duplicate"):
        Vocab((PAD_TOKEN, UNK_TOKEN, "a", "a"))
