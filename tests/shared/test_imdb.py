"""IMDB loaders, the IMDB data set (splits, vocabulary), sampling and padding waste on its lengths."""

from __future__ import annotations

import csv
import dataclasses
import io
import lzma
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from shared import Sampler, SeqbatchError
from shared.batching import index_waste, waste_of
from shared.checkpoint import Checkpoint, load, save
from shared.config import ModelConfig
from shared.dataset import Dataset, imdb_dataset
from shared.imdb import CSV_HEADER, LABELS, SYNTHETIC_SOURCE, load_imdb, read_acl_split, read_csv
from shared.layout import parameter_shapes
from shared.text import TextConfig

IMDB = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "imdb"
needs_imdb = pytest.mark.skipif(not (IMDB / "imdb_train.csv.xz").is_file(), reason=f"no IMDB data at {IMDB}")


def write_csv_xz(path: Path, rows: list[list[str]], header: list[str] = CSV_HEADER) -> Path:
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows([header, *rows])
    with lzma.open(path, "wt", encoding="utf-8", newline="") as f:
        f.write(buf.getvalue())
    return path


# --- loaders -------------------------------------------------------------------------------------


def test_csv_keeps_nel_tabs_quotes_and_newlines_inside_a_review(tmp_path: Path) -> None:
    odd = 'Bad\x85really bad.\tAwful, "truly"<br />end\nof line'
    path = write_csv_xz(tmp_path / "imdb_train.csv.xz", [["0", "1", "negative", odd], ["0", "9", "positive", "Fine"]])
    ex = read_csv(path)
    assert ex.texts == [odd, "Fine"]
    assert ex.labels == [0, 1]
    assert ex.label_names == LABELS == ["negative", "positive"]


def test_csv_errors_name_the_file_and_line(tmp_path: Path) -> None:
    bad_header = write_csv_xz(tmp_path / "a.csv.xz", [["0", "1", "negative", "x"]], header=["review", "label"])
    with pytest.raises(SeqbatchError, match=r"a\.csv\.xz: line 1"):
        read_csv(bad_header)
    bad_label = write_csv_xz(tmp_path / "b.csv.xz", [["0", "1", "negative", "x"], ["1", "5", "neutral", "y"]])
    with pytest.raises(SeqbatchError, match=r"b\.csv\.xz: line 3: unknown sentiment 'neutral'"):
        read_csv(bad_label)
    (tmp_path / "c.csv.xz").write_bytes(b"not xz at all")
    with pytest.raises(SeqbatchError, match=r"c\.csv\.xz"):
        read_csv(tmp_path / "c.csv.xz")
    with pytest.raises(SeqbatchError, match="does not exist"):
        read_csv(tmp_path / "missing.csv.xz")


@needs_imdb
def test_real_csv_prefix_keeps_u0085_inside_reviews() -> None:
    ex = read_csv(IMDB / "imdb_train.csv.xz", limit=300)
    assert len(ex) == 300 and set(ex.labels) == {0}  # the file is sorted negative first
    with_nel = [t for t in ex.texts if "\x85" in t]
    assert with_nel, "the first 300 train reviews include some with U+0085"
    # Line splitting would have cut those reviews apart; the csv reader keeps each one whole.
    assert sum(len(t.splitlines()) for t in ex.texts) > len(ex)
    assert all(len(t) >= 32 for t in ex.texts)


def make_acl(root: Path) -> Path:
    files = {
        "train/pos/10_9.txt": "Loved it.<br />Really.", "train/pos/2_8.txt": "Great\x85fun",
        "train/neg/0_1.txt": "Awful.", "train/neg/1_3.txt": "Dull and\tslow",
        "test/pos/0_10.txt": "A gem", "test/neg/0_2.txt": "Boring", "train/unsup/0_0.txt": "unlabelled",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def test_acl_folders_load_in_label_then_numeric_id_order(tmp_path: Path) -> None:
    acl = make_acl(tmp_path / "aclImdb")
    train, test, source = load_imdb(acl)
    assert train.texts == ["Awful.", "Dull and\tslow", "Great\x85fun", "Loved it.<br />Really."]
    assert train.labels == [0, 0, 1, 1]
    assert (test.texts, test.labels) == (["Boring", "A gem"], [0, 1])
    assert source == str(acl)
    assert load_imdb(tmp_path)[0].texts == train.texts  # the parent of aclImdb works too


def test_acl_errors_name_the_file(tmp_path: Path) -> None:
    acl = make_acl(tmp_path / "aclImdb")
    (acl / "train/neg/3_2.txt").write_bytes(b"caf\xe9")
    with pytest.raises(SeqbatchError, match=r"3_2\.txt: not UTF-8"):
        read_acl_split(acl / "train")
    (acl / "train/neg/3_2.txt").unlink()
    (acl / "train/neg/notes.txt").write_text("x")
    with pytest.raises(SeqbatchError, match=r"notes\.txt"):
        read_acl_split(acl / "train")


@pytest.mark.parametrize(("body", "message"), [
    # An unclosed quote would swallow the rest of the file into one review; strict quoting refuses it.
    ('1,8,positive,"fine"\r\n2,3,negative,"unclosed\r\n3,9,positive,ok\r\n', r"the row from line 3 is not valid CSV "
     r"\(unexpected end of data; an unclosed quote\?\)"),
    ('1,8,positive,"a"b\r\n', r"the row from line 2 is not valid CSV \(',' expected after"),
    ('1,8,positive,"' + "x" * 200_000 + '"\r\n',
     r"the row from line 2 is not valid CSV \(field larger than field limit"),
    ("", r"the file is empty \(expected the header id,rating,sentiment,review\)"),
    ("1,8,positive,fine\r\n", r"line 1 is \['1', '8', 'positive', 'fine'\], expected the header"),
])
def test_broken_csv_is_an_error_naming_the_file_and_line(tmp_path: Path, body: str, message: str) -> None:
    header = "" if not body or body.startswith("1,8,positive,fine") else "id,rating,sentiment,review\r\n"
    path = tmp_path / "imdb_train.csv"
    path.write_text(header + body, encoding="utf-8", newline="")
    with pytest.raises(SeqbatchError, match=r"imdb_train\.csv: " + message):
        read_csv(path)


def test_csv_with_a_byte_order_mark_and_crlf_reads_as_usual(tmp_path: Path) -> None:
    path = tmp_path / "imdb_train.csv"
    path.write_bytes(b'\xef\xbb\xbfid,rating,sentiment,review\r\n1,8,positive,"two\r\nlines"\r\n2,2,negative,bad\r\n')
    ex = read_csv(path)
    assert ex.texts == ["two\r\nlines", "bad"] and ex.labels == [1, 0]


def test_a_folder_named_like_a_review_is_not_read(tmp_path: Path) -> None:
    acl = make_acl(tmp_path / "aclImdb")
    (acl / "train/neg/7_1.txt").mkdir()
    assert read_acl_split(acl / "train").texts == ["Awful.", "Dull and\tslow", "Great\x85fun", "Loved it.<br />Really."]


def test_load_imdb_says_what_a_folder_lacks(tmp_path: Path) -> None:
    with pytest.raises(SeqbatchError, match="does not exist"):
        load_imdb(tmp_path / "nowhere")
    with pytest.raises(SeqbatchError, match=r"imdb_train\.csv\.xz.*aclImdb"):
        load_imdb(tmp_path)


def test_embedded_default_is_synthetic_balanced_and_deterministic() -> None:
    train, test, source = load_imdb(None)
    assert source == SYNTHETIC_SOURCE and "synthetic" in source
    assert (len(train), len(test)) == (1000, 1000)
    assert sum(train.labels) + sum(test.labels) == 1000
    again, _, _ = load_imdb(None)
    assert again.texts == train.texts and again.labels == train.labels
    # Its labels need word order: "not" flips an opinion.
    assert any(" was not " in t for t in train.texts)


# --- the data set --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real() -> Dataset:
    if not (IMDB / "imdb_train.csv.xz").is_file():
        pytest.skip(f"no IMDB data at {IMDB}")
    return imdb_dataset(IMDB, TextConfig(max_len=300, min_freq=2), seed=0, max_train=1000, max_test=400)


def test_split_is_90_10_stratified_and_test_is_the_stratified_sample(real: Dataset) -> None:
    assert (len(real.train), len(real.val), len(real.test)) == (900, 100, 400)
    for split in (real.train, real.val, real.test):
        assert abs(int(split.labels.sum()) - len(split) / 2) <= 1  # both classes near 50 %, to one review
    assert real.label_names == LABELS
    assert real.text == TextConfig(max_len=300, min_freq=2)


def test_vocab_is_fitted_on_the_train_part_only(real: Dataset) -> None:
    train_ids = np.unique(np.concatenate(real.train.seqs))
    assert set(range(2, len(real.vocab))) <= set(train_ids.tolist())
    assert (np.concatenate(real.val.seqs) == 1).any()  # unseen validation words read as <unk>
    assert real.train.lengths.max() <= 300 and real.train.lengths.min() >= 1


def test_the_same_seed_gives_the_same_splits() -> None:
    a = imdb_dataset(None, TextConfig(), seed=3)
    b = imdb_dataset(None, TextConfig(), seed=3)
    c = imdb_dataset(None, TextConfig(), seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a.val.seqs, b.val.seqs, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a.val.seqs, c.val.seqs, strict=True))


def test_a_too_small_subsample_is_refused() -> None:
    with pytest.raises(SeqbatchError, match="max_train=3"):
        imdb_dataset(None, TextConfig(), max_train=3)


# --- sampling and padding on IMDB lengths ----------------------------------------------------------


@pytest.mark.parametrize("bucket_chunk", [0, 8])
def test_balanced_batches_hold_the_class_proportions(real: Dataset, bucket_chunk: int) -> None:
    labels = real.train.labels
    sampler = Sampler(labels, 32, kind="balanced", seed=1, lengths=real.train.lengths, bucket_chunk=bucket_chunk)
    batches = sampler.epoch()
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(labels)))  # a pass without repeats
    expected = 32 * labels.mean()
    assert all(abs(labels[b].sum() - expected) <= 1.5 for b in batches if len(b) == 32)


def test_bucketing_wastes_far_less_padding_than_shuffling(real: Dataset) -> None:
    lengths = real.train.lengths
    for kind in ("epoch", "balanced"):
        plain = Sampler(real.train.labels, 32, kind=kind, seed=0).epoch()
        bucketed = Sampler(real.train.labels, 32, kind=kind, seed=0, lengths=lengths, bucket_chunk=8).epoch()
        assert index_waste(lengths, bucketed) < 0.5 * index_waste(lengths, plain), kind
    padded = [real.train.batch(b, multiple=16) for b in bucketed]
    assert index_waste(lengths, bucketed, multiple=16) == pytest.approx(waste_of(padded))


def test_bucketing_with_the_random_sampler_is_refused() -> None:
    with pytest.raises(SeqbatchError, match="epoch or balanced"):
        Sampler([0, 1, 0, 1], 2, kind="random", lengths=[1, 2, 3, 4], bucket_chunk=2)


# --- the checkpoint carries the text config ------------------------------------------------------


def test_checkpoint_round_trips_the_text_config_and_names_have_none(tmp_path: Path) -> None:
    cfg = ModelConfig(vocab_size=5, num_classes=2, hidden_size=3, embed_dim=4)
    params = {k: np.zeros(s, np.float32) for k, s in parameter_shapes(cfg).items()}
    text = dataclasses.replace(TextConfig(), level="char", max_len=77, truncate="post")
    save(tmp_path / "t.safetensors", Checkpoint(cfg, params, None, list(LABELS), text))
    assert load(tmp_path / "t.safetensors").text == text
    save(tmp_path / "n.safetensors", Checkpoint(cfg, params, None, list(LABELS)))
    assert load(tmp_path / "n.safetensors").text is None
    meta = {"seqbatch.format": "1", "seqbatch.model": cfg.to_json(), "seqbatch.text": '{"level": "sentence"}'}
    save_file(params, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(SeqbatchError, match=r"bad\.safetensors: seqbatch\.text metadata: .*level"):
        load(tmp_path / "bad.safetensors")
