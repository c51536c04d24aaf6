"""The word2vec text and binary formats (shared/word_vectors.py): exact round trips, gensim reading what
we write and we reading what gensim writes, and one clear error per kind of damage."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from shared.errors import SeqbatchError
from shared.word_vectors import read_word2vec, write_word2vec

# Words a careless writer or reader gets wrong: non-ASCII, a number, punctuation, a word that looks like a value.
WORDS = ["the", "café", "naïve", "東京", "1984", "don't", "-", "e+10", "nan-ish", "ß"]


def vectors(n: int = len(WORDS), dim: int = 7, seed: int = 0) -> np.ndarray:
    """Random float32 values plus the extremes: float32 max and min normal, a subnormal, -0, 1/3's rounding."""
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    v[0, :5] = [np.finfo(np.float32).max, np.finfo(np.float32).tiny, 1e-45, -0.0, np.float32(1 / 3)][:dim]
    v[1] *= np.float32(1e-7)
    return v


def assert_no_leftovers(folder: Path, *expected: str) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(expected)  # no temporary file left behind


@pytest.mark.parametrize("binary", [False, True])
def test_round_trip_is_exact(tmp_path: Path, binary: bool) -> None:
    v = vectors()
    path = tmp_path / "v.w2v"
    write_word2vec(path, WORDS, v, binary=binary)
    for flag in (None, binary):  # detected, and forced
        words, got = read_word2vec(path, binary=flag)
        assert words == WORDS
        assert got.dtype == np.float32 and got.shape == v.shape
        np.testing.assert_array_equal(got, v)  # bit for bit (also -0.0 == 0.0, so check the sign too)
        assert np.signbit(got[0, 3])
    assert_no_leftovers(tmp_path, "v.w2v")


def test_the_text_format_is_what_the_c_tool_and_gensim_expect(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    write_word2vec(path, ["a", "b"], np.array([[0.5, -2.0], [0.1, 3.0]], np.float64))
    lines = path.read_bytes().split(b"\n")
    assert lines[0] == b"2 2" and lines[1] == b"a 0.5 -2" and lines[-1] == b""
    assert lines[2].split(b" ")[0] == b"b" and np.float32(lines[2].split(b" ")[1]) == np.float32(0.1)


def test_the_binary_format_is_header_word_space_little_endian_float32_newline(tmp_path: Path) -> None:
    path = tmp_path / "v.bin"
    write_word2vec(path, ["a", "é"], np.array([[1.0, -2.0], [0.5, 4.0]], np.float32), binary=True)
    expected = (b"2 2\n" + b"a " + np.array([1, -2], "<f4").tobytes() + b"\n"
                + "é ".encode() + np.array([0.5, 4], "<f4").tobytes() + b"\n")
    assert path.read_bytes() == expected


def test_float64_vectors_are_written_as_float32(tmp_path: Path) -> None:
    v = np.random.default_rng(1).standard_normal((3, 4))
    write_word2vec(tmp_path / "v.txt", ["a", "b", "c"], v)
    np.testing.assert_array_equal(read_word2vec(tmp_path / "v.txt")[1], v.astype(np.float32))


def test_c_tool_text_with_trailing_spaces_and_crlf_reads(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    path.write_bytes(b"2 3\r\nfoo 0.100000 -0.200000 0.300000 \r\nbar 1 2 3 \r\n")
    words, v = read_word2vec(path)
    assert words == ["foo", "bar"]
    np.testing.assert_array_equal(v, np.array([[0.1, -0.2, 0.3], [1, 2, 3]], np.float32))


def test_binary_without_newlines_as_gensim_writes_it_reads(tmp_path: Path) -> None:
    v = vectors(3, 4)
    # A record whose float bytes contain a space and a newline: the reader must count bytes, not search.
    v[1] = np.frombuffer(b" \n \n" * 4, "<f4")
    path = tmp_path / "v.bin"
    path.write_bytes(b"3 4\n" + b"".join(w.encode() + b" " + row.astype("<f4").tobytes()
                                          for w, row in zip(["x", "y", "z"], v, strict=True)))
    words, got = read_word2vec(path)
    assert words == ["x", "y", "z"]
    np.testing.assert_array_equal(got, v)


@pytest.mark.parametrize("binary", [False, True])
def test_gensim_reads_our_files(tmp_path: Path, binary: bool) -> None:
    gensim = pytest.importorskip("gensim")
    v = vectors(dim=5)
    path = tmp_path / "v.w2v"
    write_word2vec(path, WORDS, v, binary=binary)
    kv = gensim.models.KeyedVectors.load_word2vec_format(str(path), binary=binary)
    assert list(kv.index_to_key) == WORDS
    assert kv.vectors.dtype == np.float32
    np.testing.assert_array_equal(kv.vectors, v)  # binary: the same bytes; text: 9 digits read back exactly


@pytest.mark.parametrize("binary", [False, True])
def test_we_read_what_gensim_writes(tmp_path: Path, binary: bool) -> None:
    gensim = pytest.importorskip("gensim")
    v = vectors(dim=6, seed=3)
    kv = gensim.models.KeyedVectors(vector_size=6)
    kv.add_vectors(WORDS, v)
    path = tmp_path / "g.w2v"
    kv.save_word2vec_format(str(path), binary=binary)
    words, got = read_word2vec(path)
    assert words == WORDS
    np.testing.assert_array_equal(got, v)


def test_the_binary_flag_forces_the_format(tmp_path: Path) -> None:
    write_word2vec(tmp_path / "v.txt", ["a", "b"], np.ones((2, 3), np.float32))
    write_word2vec(tmp_path / "v.bin", ["a", "b"], np.ones((2, 3), np.float32), binary=True)
    with pytest.raises(SeqbatchError, match=r"v\.txt: .*a text file read as binary"):
        read_word2vec(tmp_path / "v.txt", binary=True)
    with pytest.raises(SeqbatchError, match=r"v\.bin:2: expected a word and 3 values"):
        read_word2vec(tmp_path / "v.bin", binary=False)


TEXT_DAMAGE = {
    "empty": (b"", r"empty file"),
    "bad header": (b"two 3\na 1 2 3\n", r":1: expected the header"),
    "no header (GloVe)": (b"a 1 2 3\nb 4 5 6\n", r":1: expected the header .*GloVe"),
    "zero words": (b"0 3\n", r":1: the header says 0 words"),
    "too few values": (b"2 3\na 1 2 3\nb 4 5\n", r":3: expected a word and 3 values .* got 3 fields"),
    "too many values": (b"2 3\na 1 2 3 4\nb 4 5 6\n", r":2: expected a word and 3 values .* got 5 fields"),
    "not a number": (b"2 3\na 1 2 3\nb 4 five 6\n", r":3: 'five' is not a number"),
    "fewer rows": (b"3 3\na 1 2 3\nb 4 5 6\n", r"says 3 words, but the file has 2 rows"),
    "more rows": (b"1 3\na 1 2 3\nb 4 5 6\n", r":3: the header \(line 1\) says 1 words, but the file has more"),
    "duplicate": (b"3 1\na 1\nb 2\na 3\n", r":4: 'a' appears twice \(first on line 2\)"),
    "nan": (b"2 1\na 1\nb nan\n", r":3: the vector of 'b' has a NaN"),
    "beyond float32": (b"2 1\na 1\nb 1e39\n", r":3: the vector of 'b' has .* beyond float32"),
    "not utf-8": (b"2 1\na 1\n\xff\xfe 2\n", r":3: the word .* is not UTF-8"),
    "blank line inside": (b"2 1\na 1\n\nb 2\n", r":3: a blank line among the vectors"),
}


@pytest.mark.parametrize("case", sorted(TEXT_DAMAGE))
def test_damaged_text_names_the_file_and_line(tmp_path: Path, case: str) -> None:
    content, message = TEXT_DAMAGE[case]
    path = tmp_path / "v.txt"
    path.write_bytes(content)
    with pytest.raises(SeqbatchError, match=message) as e:
        read_word2vec(path, binary=False if content else None)
    assert str(e.value).startswith(str(path))


def test_a_bad_value_deep_in_a_big_file_is_found_by_line(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    rows = [f"w{i} 1 2" for i in range(10_000)]
    rows[8_765] = "w8765 1 x2"
    path.write_text("10000 2\n" + "\n".join(rows) + "\n")
    with pytest.raises(SeqbatchError, match=r":8767: 'x2' is not a number"):
        read_word2vec(path)


def test_trailing_blank_lines_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    path.write_bytes(b"1 2\na 1 2\n\n\n")
    assert read_word2vec(path)[0] == ["a"]


def record(word: str, values: list[float]) -> bytes:
    return word.encode() + b" " + np.array(values, "<f4").tobytes() + b"\n"


BINARY_DAMAGE = {
    "truncated": (b"3 2\n" + record("a", [1, 2]) + record("b", [3, 4]) + record("c", [5, 6])[:-3],
                  r"record 3 \(byte 26\): the file ends inside it"),
    "header too big": (b"1000000 100\n" + record("a", [1] * 100), r"says 1000000 words .* only 403 bytes"),
    "more data": (b"1 2\n" + record("a", [1, 2]) + record("b", [3, 4]), r"byte 14: .* more data follows"),
    "duplicate": (b"2 2\n" + record("a", [1, 2]) + record("a", [3, 4]), r"record 2 .*'a' appears twice"),
    "wrong dimension": (b"2 1\n" + record("a", [1, 2]) + record("bb", [3, 4]), r"record 2 .*expected a word"),
    "infinity": (b"2 1\n" + record("a", [1]) + record("b", [np.inf]), r"record 2: the vector of 'b' has"),
}


@pytest.mark.parametrize("case", sorted(BINARY_DAMAGE))
def test_damaged_binary_names_the_file_and_record(tmp_path: Path, case: str) -> None:
    content, message = BINARY_DAMAGE[case]
    path = tmp_path / "v.bin"
    path.write_bytes(content)
    with pytest.raises(SeqbatchError, match=message) as e:
        read_word2vec(path, binary=True)
    assert str(e.value).startswith(str(path))


def test_a_missing_file_or_a_folder_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(SeqbatchError, match=r"gone\.txt: cannot read"):
        read_word2vec(tmp_path / "gone.txt")
    with pytest.raises(SeqbatchError, match="cannot read"):
        read_word2vec(tmp_path)


@pytest.mark.parametrize(("words", "message"), [
    (["a", "b c"], r"word 2 'b c' is empty or contains whitespace"),
    (["a", "b\tc"], r"contains whitespace"),
    (["a", "b\n"], r"contains whitespace"),
    (["a", "b\u00a0c"], r"contains whitespace"),  # a no-break space: str.split() would split there
    (["a", ""], r"word 2 '' is empty"),
    (["a", "a"], r"'a' is word 1 and word 2"),
    (["a"], r"1 words for 2 vectors"),
    (["a", "\ud800"], r"cannot be encoded as UTF-8"),
])
def test_the_writer_refuses_what_cannot_be_read_back(tmp_path: Path, words: list[str], message: str) -> None:
    (tmp_path / "old.txt").write_text("keep me")
    with pytest.raises(SeqbatchError, match=message):
        write_word2vec(tmp_path / "old.txt", words, np.ones((2, 3), np.float32))
    assert (tmp_path / "old.txt").read_text() == "keep me"
    assert_no_leftovers(tmp_path, "old.txt")


def test_the_writer_refuses_non_finite_values(tmp_path: Path) -> None:
    for bad in (np.nan, np.inf, 1e300):
        v = np.ones((2, 3))
        v[1, 2] = bad
        with pytest.raises(SeqbatchError, match=r"word 2 \('b'\) has a NaN"):
            write_word2vec(tmp_path / "v.txt", ["a", "b"], v)
    assert_no_leftovers(tmp_path)


def test_an_imdb_sized_text_file_reads_in_well_under_a_few_seconds(tmp_path: Path) -> None:
    v = np.random.default_rng(0).standard_normal((42_000, 100)).astype(np.float32)
    words = [f"w{i}" for i in range(len(v))]
    write_word2vec(tmp_path / "v.txt", words, v)
    start = time.perf_counter()
    got_words, got = read_word2vec(tmp_path / "v.txt")
    seconds = time.perf_counter() - start
    assert got_words == words and np.array_equal(got, v)
    assert seconds < 3.0, f"reading 42,000 x 100 took {seconds:.1f} s"
