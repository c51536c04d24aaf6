"""The language model's data: stream windows (the lesson's layout), documents, splits and errors."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import SeqbatchError
from shared.lm_data import (
    MAX_DOC_CHARS,
    MAX_VOCAB,
    NEWLINE,
    LMDataConfig,
    batches_per_epoch,
    default_corpus,
    doc_batch,
    eval_batches,
    load_lm_data,
    stream_windows,
    train_batches,
)


@given(n=st.integers(30, 400), rows=st.integers(1, 5), t=st.integers(1, 9))
@settings(max_examples=60, deadline=None)
def test_stream_windows_follow_the_text_and_targets_are_the_next_character(n: int, rows: int, t: int) -> None:
    ids = np.arange(n, dtype=np.int32)  # id = position, so every check is arithmetic
    if (n - 1) // rows // t < 1:
        with pytest.raises(SeqbatchError, match="too short"):
            list(stream_windows(ids, rows, t))
        return
    windows = list(stream_windows(ids, rows, t))
    cols = (n - 1) // rows // t * t
    assert len(windows) == cols // t
    assert [w.reset for w in windows] == [True] + [False] * (len(windows) - 1)
    inputs = np.concatenate([w.inputs for w in windows], axis=1)
    targets = np.concatenate([w.targets for w in windows], axis=1)
    assert inputs.shape == (rows, cols)
    np.testing.assert_array_equal(inputs[:, 0], np.arange(rows) * cols)  # row r starts at the r-th block
    np.testing.assert_array_equal(targets, inputs + 1)  # the real next character, never wrapped
    for a, b in itertools.pairwise(windows):  # a window's last target is the next's first input
        np.testing.assert_array_equal(a.targets[:, -1], b.inputs[:, 0])
    assert all((w.lengths == t).all() for w in windows)


def test_evaluation_windows_score_all_but_fewer_than_rows_characters() -> None:
    ids = np.arange(1001, dtype=np.int32)
    windows = list(stream_windows(ids, 7, 10, full=False))
    scored = sum(w.n_tokens for w in windows)
    assert 1000 - 7 < scored <= 1000
    assert windows[-1].inputs.shape[1] == (1000 // 7) % 10 or windows[-1].inputs.shape[1] == 10


def test_documents_are_framed_by_newlines_and_padded_behind(tmp_path: Path) -> None:
    b = doc_batch([np.array([9, 2, 3, 9]), np.array([9, 4, 9])], multiple=4)
    np.testing.assert_array_equal(b.inputs, [[9, 2, 3, 0], [9, 4, 0, 0]])
    np.testing.assert_array_equal(b.targets, [[2, 3, 9, 0], [4, 9, 0, 0]])
    np.testing.assert_array_equal(b.lengths, [3, 2])
    assert b.reset


def write(tmp_path: Path, text: str | bytes, name: str = "t.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_stream_split_is_contiguous_90_5_5_and_crlf_is_one_newline(tmp_path: Path) -> None:
    text = "".join(f"line {i} of the text\r\n" for i in range(2000))
    data = load_lm_data(write(tmp_path, text), LMDataConfig())
    clean = text.replace("\r\n", "\n")
    assert "\r" not in data.vocab.tokens
    decoded = ["".join(data.vocab.decode(s[0])) for s in (data.train, data.val, data.test)]
    assert "".join(decoded) == clean  # nothing lost, nothing reordered
    assert len(decoded[0]) == int(len(clean) * 0.9) and len(decoded[1]) == int(len(clean) * 0.05)
    assert data.chars == {"train": len(decoded[0]), "val": len(decoded[1]), "test": len(decoded[2])}


def test_vocabulary_comes_from_train_and_unseen_characters_read_as_unk(tmp_path: Path) -> None:
    text = "abc " * 1000 + "xyz" * 100  # x, y, z only in the last 7 %
    data = load_lm_data(write(tmp_path, text), LMDataConfig())
    assert "x" not in data.vocab.tokens and NEWLINE in data.vocab.tokens
    assert (data.test[0] == 1).any()


def test_document_split_has_no_document_twice_and_is_seeded(tmp_path: Path) -> None:
    names = [f"name{i}" for i in range(200)]
    path = write(tmp_path, "\n".join(names + names[:50]) + "\n")
    a = load_lm_data(path, LMDataConfig(batching="documents", seed=1))
    b = load_lm_data(path, LMDataConfig(batching="documents", seed=1))
    c = load_lm_data(path, LMDataConfig(batching="documents", seed=2))
    as_text = [{"".join(a.vocab.decode(d)) for d in part} for part in (a.train, a.val, a.test)]
    assert sum(map(len, as_text)) == 200 and not (as_text[0] & as_text[1]) and not (as_text[0] & as_text[2])
    assert [len(p) for p in (a.train, a.val, a.test)] == [180, 10, 10]
    assert all(np.array_equal(x, y) for x, y in zip(a.val, b.val, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a.val, c.val, strict=True))
    c_train = {"".join(c.vocab.decode(d)) for d in c.train}
    assert c_train != as_text[0], "another seed holds out other documents, not the same ones reshuffled"


def test_a_folder_of_files_gives_one_document_per_line_or_per_file(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(30):
        (folder / f"{i}.txt").write_text(f"first {i}\nsecond {i}\n\n")
    lines = load_lm_data(folder, LMDataConfig(batching="documents", doc_unit="line"))
    files = load_lm_data(folder, LMDataConfig(batching="documents", doc_unit="file"))
    assert sum(len(p) for p in (lines.train, lines.val, lines.test)) == 60
    assert sum(len(p) for p in (files.train, files.val, files.test)) == 30


@pytest.mark.parametrize(("content", "message"), [
    (b"", "empty"),
    (b"   \n\n", "empty"),
    (b"good text\n\xff\xfe bad", r"line 2 is not UTF-8"),
    (b"good text\nthen a \x00 NUL" + b" padding" * 10, r"line 2 holds a NUL character"),
    ("a UTF-16 file\n".encode("utf-16-le") * 5, r"line 1 holds a NUL character .*UTF-16"),
])
def test_bad_text_files_are_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    with pytest.raises(SeqbatchError, match=message):
        load_lm_data(write(tmp_path, content), LMDataConfig())


def test_a_missing_path_and_a_folder_for_a_stream_are_errors(tmp_path: Path) -> None:
    with pytest.raises(SeqbatchError, match="does not exist"):
        load_lm_data(tmp_path / "nope.txt", LMDataConfig())
    with pytest.raises(SeqbatchError, match="is a folder"):
        load_lm_data(tmp_path, LMDataConfig())


def test_text_shorter_than_one_batch_of_windows_is_refused_before_training(tmp_path: Path) -> None:
    from shared.lm_data import check_trainable

    data = load_lm_data(write(tmp_path, "short text " * 30), LMDataConfig())
    with pytest.raises(SeqbatchError, match="fewer than one batch of windows"):
        check_trainable(data, 64, 100)


def test_default_corpus_ships_with_python_and_is_long_enough() -> None:
    text, source = default_corpus()
    assert len(text) >= 200_000 and "pydoc_data" in source
    assert sum(c.isalpha() for c in text) > 0.6 * len(text)  # prose, mostly letters


def test_training_stream_repeats_epochs_and_resets_at_each_epoch(tmp_path: Path) -> None:
    data = load_lm_data(write(tmp_path, "the quick brown fox jumps. " * 100), LMDataConfig())
    per_epoch = batches_per_epoch(data, 4, 10)
    it = train_batches(data, 4, 10, seed=0)
    first = [next(it) for _ in range(per_epoch)]
    again = next(it)
    assert again.reset and not first[1].reset
    np.testing.assert_array_equal(again.inputs, first[0].inputs)


def test_eval_batches_of_documents_cover_each_document_once(tmp_path: Path) -> None:
    path = write(tmp_path, "\n".join(f"doc{i}" * (1 + i % 4) for i in range(100)))
    data = load_lm_data(path, LMDataConfig(batching="documents"))
    batches = list(eval_batches(data, "train", rows=16, seq_length=100))
    assert sum(len(b) for b in batches) == len(data.train)
    assert sum(b.n_tokens for b in batches) == sum(len(d) - 1 for d in data.train)


def test_a_stream_too_short_to_score_validation_is_refused_before_training(tmp_path: Path) -> None:
    from shared.lm_data import check_trainable

    short = load_lm_data(write(tmp_path, "abcdefghij" * 3), LMDataConfig())  # 27 / 1 / 2 characters
    with pytest.raises(SeqbatchError, match=r"the val split \(5 % of the text\) has 1 character\(s\)"):
        check_trainable(short, 1, 1)
    enough = load_lm_data(write(tmp_path, "abcdefghij" * 4), LMDataConfig())  # 36 / 2 / 2: the shortest that works
    check_trainable(enough, 1, 1)
    for split in ("val", "test"):
        assert list(eval_batches(enough, split, rows=64, seq_length=100))


def test_a_document_longer_than_the_maximum_is_refused_by_file_and_line(tmp_path: Path) -> None:
    lines = [f"line {i}" for i in range(30)]
    lines[7] = "y" * (MAX_DOC_CHARS + 1)
    path = write(tmp_path, "\n".join(lines))
    with pytest.raises(SeqbatchError, match=rf"{path.name}: line 8: a document of {MAX_DOC_CHARS + 1:,} characters"):
        load_lm_data(path, LMDataConfig(batching="documents"))


def test_a_folder_of_documents_warns_about_files_it_skips(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(25):
        (folder / f"{i:02}.txt").write_text(f"document number {i}\n")
    (folder / "26.TXT").write_text("skipped\n")
    with pytest.warns(UserWarning, match=r"skipped 1 entry that is not a <name>\.txt file: 26\.TXT"):
        data = load_lm_data(folder, LMDataConfig(batching="documents", doc_unit="file"))
    assert sum(map(len, (data.train, data.val, data.test))) == 25


def test_a_fitted_vocabulary_keeps_the_most_frequent_characters(tmp_path: Path) -> None:
    rare = "".join(chr(0x4E00 + i) * 2 for i in range(MAX_VOCAB))  # each seen twice, more than the newline
    path = write(tmp_path, rare + "ab" * 30_000)  # all in the train part (the first 90 %)
    with pytest.warns(UserWarning, match=rf"distinct characters; the {MAX_VOCAB - 2} most frequent are kept"):
        data = load_lm_data(path, LMDataConfig())
    assert len(data.vocab) == MAX_VOCAB and data.vocab.tokens[2:4] in (("a", "b"), ("b", "a"))
    assert NEWLINE in data.vocab.tokens  # the rarest (the fit adds it once), but it frames documents


@pytest.mark.parametrize(("text", "message"), [
    ('{"batching": "stream", "doc_unit": "line"}', r"lacks \['seed'\]"),
    ('{"batching": "both", "doc_unit": "line", "seed": 0}', "batching must be stream or documents"),
    ('{"batching": "stream", "doc_unit": "page", "seed": 0}', "doc_unit must be line or file"),
    ('{"batching": "stream", "doc_unit": "line", "seed": 1.5}', "seed must be an integer"),
    ('{"batching": "stream", "doc_unit": "line", "seed": Infinity}', "seed must be an integer"),
    ("[1]", "must be a JSON object"),
    ("{", "not valid JSON"),
    ("[" * 100_000, "not valid JSON"),
])
def test_lm_data_config_from_bad_json_is_a_seqbatch_error(text: str, message: str) -> None:
    with pytest.raises(SeqbatchError, match=message):
        LMDataConfig.from_json(text)
    cfg = LMDataConfig("documents", "file", 3)
    assert LMDataConfig.from_json(cfg.to_json()) == cfg


def test_shard_rows_deals_contiguous_blocks_marked_with_the_global_token_count() -> None:
    from shared.kinds.lm import LMBatch, shard_rows

    rng = np.random.default_rng(0)
    lengths = np.array([5, 1, 3, 4, 2, 5, 5], np.int32)
    tokens = rng.integers(2, 9, (7, 5)).astype(np.int32)
    batch = LMBatch(tokens, np.roll(tokens, -1, axis=1), lengths, reset=False)
    parts = [shard_rows(batch, r, 3) for r in range(3)]
    assert [len(p) for p in parts] == [3, 2, 2]
    assert np.array_equal(np.concatenate([p.inputs for p in parts]), tokens)  # in order: a row keeps its place
    assert all(p.global_tokens == int(lengths.sum()) and p.reset is False for p in parts)
    assert sum(p.n_tokens for p in parts) == int(lengths.sum())
    with pytest.raises(SeqbatchError, match="cannot be shared by 8 ranks"):
        shard_rows(batch, 0, 8)
