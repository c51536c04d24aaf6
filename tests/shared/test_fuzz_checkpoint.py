"""Hostile checkpoint files: `checkpoint.load` returns a valid Checkpoint or raises SeqbatchError
whose message starts with the file's path (one line); never another exception, never a hang.

Each test's docstring says how many cases it tries; together about 12 s on 2 CPU cores.
A hang shows as a hypothesis deadline failure (2 s per case; a load takes under a millisecond).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.numpy import save_file

from shared import checkpoint
from shared.checkpoint import DTYPE_TAGS, Checkpoint
from shared.config import ModelConfig
from shared.errors import SeqbatchError
from shared.layout import parameter_shapes
from shared.lm_data import LMDataConfig
from shared.text import TextConfig
from shared.vocab import Vocab

CFG = ModelConfig(vocab_size=4, num_classes=2, cell="rnn_tanh", hidden_size=2)
VOCAB = Vocab(("<pad>", "<unk>", "a", "b"))
SPLIT = {"seed": 0, "val_fraction": 0.1, "max_train": None, "data_sha256": "0" * 64}
FUZZ = settings(deadline=2000, suppress_health_check=[HealthCheck.too_slow])
META_KEYS = ["seqbatch.format", "seqbatch.kind", "seqbatch.model", "seqbatch.vocab", "seqbatch.labels",
             "seqbatch.text", "seqbatch.data", "seqbatch.split"]

# Any JSON value, NaN and infinities included (json.dumps writes them as NaN / Infinity, which
# Python's json.loads would accept and the loader must not).
JSON: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def tiny_params(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in parameter_shapes(CFG).items()}


def full_checkpoint() -> Checkpoint:
    """Every metadata key present: a classifier with vocab, labels, text, (LM) data and split."""
    return Checkpoint(CFG, tiny_params(), VOCAB, ["neg", "pos"], TextConfig(), LMDataConfig(), SPLIT)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def good(folder: Path) -> bytes:
    path = folder / "good.safetensors"
    checkpoint.save(path, full_checkpoint())
    return path.read_bytes()


def outcome(path: Path) -> Checkpoint | SeqbatchError:
    """What `load` did with the file; fails the test on any exception but a clean SeqbatchError."""
    try:
        ckpt = checkpoint.load(path)
    except SeqbatchError as e:
        message = str(e)
        assert message.startswith(f"{path}: "), message
        assert "\n" not in message, message
        return e
    assert_valid(ckpt)
    return ckpt


def assert_valid(ckpt: Checkpoint) -> None:
    checkpoint.check_params(ckpt.config, ckpt.params, "loaded")
    for name, value in ckpt.params.items():
        assert value.dtype == np.dtype(ckpt.config.dtype), name
        assert np.isfinite(value).all(), name
    if ckpt.vocab is not None:
        assert len(ckpt.vocab) == ckpt.config.vocab_size and len(set(ckpt.vocab.tokens)) == len(ckpt.vocab)
    if ckpt.labels is not None:
        assert all(isinstance(x, str) for x in ckpt.labels) and len(set(ckpt.labels)) == len(ckpt.labels)
        assert len(ckpt.labels) == ckpt.config.num_classes
    assert ckpt.text is None or isinstance(ckpt.text, TextConfig)
    assert ckpt.data is None or isinstance(ckpt.data, LMDataConfig)
    assert ckpt.split is None or isinstance(ckpt.split, dict)


def write(path: Path, raw: bytes) -> Path:
    path.write_bytes(raw)
    return path


def header_bytes(header: Any, data: bytes = b"") -> bytes:
    body = json.dumps(header).encode()
    return struct.pack("<Q", len(body)) + body + data


def data_start(raw: bytes) -> int:
    return 8 + struct.unpack("<Q", raw[:8])[0]


@settings(FUZZ, max_examples=1000)
@given(raw=st.binary(max_size=2048)
       | st.binary(max_size=512).map(lambda b: struct.pack("<Q", len(b)) + b)
       | st.tuples(JSON, st.binary(max_size=64)).map(lambda t: header_bytes(*t)))
def test_random_bytes_are_refused_cleanly(folder: Path, raw: bytes) -> None:
    """1,000 cases: random bytes; random bytes behind a correct header length; random JSON headers."""
    assert isinstance(outcome(write(folder / "random.safetensors", raw)), SeqbatchError)


def test_truncation_at_every_offset_is_refused(folder: Path, good: bytes) -> None:
    """Every proper prefix of a real 1.2 kB checkpoint (about 1,200 cases, all offsets)."""
    path = folder / "truncated.safetensors"
    assert isinstance(outcome(write(path, good)), Checkpoint)
    for n in range(len(good)):
        result = outcome(write(path, good[:n]))
        assert isinstance(result, SeqbatchError), f"a file cut to {n} bytes loaded"


def with_metadata(raw_good: bytes, path: Path, edit: dict[str, str | None]) -> Path:
    """The good checkpoint rewritten with metadata entries replaced (None: removed)."""
    src = path.with_suffix(".src")
    src.write_bytes(raw_good)
    with safe_open(str(src), framework="numpy") as f:
        meta = dict(f.metadata())
        params = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    for key, value in edit.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    save_file(params, str(path), metadata=meta)
    return path


@settings(FUZZ, max_examples=1000)
@given(key=st.sampled_from(META_KEYS), value=JSON.map(json.dumps) | st.text(max_size=40) | st.none())
def test_any_json_in_any_metadata_key_is_loaded_or_refused_cleanly(
    folder: Path, good: bytes, key: str, value: str | None
) -> None:
    """1,000 cases: a seqbatch.* key removed, or set to arbitrary JSON (NaN, deep nesting) or text."""
    outcome(with_metadata(good, folder / "meta.safetensors", {key: value}))


# Values a config field must refuse or survive: numbers of the wrong kind, out of range, huge.
ODD_VALUES = [float("inf"), float("-inf"), float("nan"), 0, -1, 1.5, 2.0, 1e300, 10**30, True, False, "2", "",
              None, [], {}, [2], "lstm", "float16", "word"]
CONFIG_KEYS = ["seqbatch.model", "seqbatch.text", "seqbatch.data"]


@settings(FUZZ, max_examples=1000)
@given(key=st.sampled_from(CONFIG_KEYS), data=st.data(), value=st.sampled_from(ODD_VALUES) | JSON,
       drop=st.booleans())
def test_any_json_in_a_config_field_is_loaded_or_refused_cleanly(
    folder: Path, good: bytes, key: str, data: st.DataObject, value: Any, drop: bool
) -> None:
    """1,000 cases: one field of seqbatch.model, seqbatch.text or seqbatch.data removed, or set to
    an odd value (inf, 2.0, true, "2", 10**30 ...) or any JSON; a config that loads has fields of
    its annotated types."""
    d = json.loads(full_checkpoint_meta()[key])
    field = data.draw(st.sampled_from([*sorted(d), "unknown"]), label="field")
    if drop:
        d.pop(field, None)
    else:
        d[field] = value
    result = outcome(with_metadata(good, folder / "field.safetensors", {key: json.dumps(d)}))
    if isinstance(result, Checkpoint):
        assert_typed(result)


def assert_typed(ckpt: Checkpoint) -> None:
    cfg, text, data = ckpt.config, ckpt.text, ckpt.data
    assert all(type(getattr(cfg, f)) is int for f in ("vocab_size", "num_classes", "num_layers", "hidden_size"))
    assert cfg.embed_dim is None and type(cfg.bidirectional) is bool and type(cfg.dropout) in (int, float)
    assert cfg.cell == "rnn_tanh" and cfg.dtype == "float32"
    assert text is not None and data is not None
    assert type(text.lowercase) is bool and type(text.stop_words) is bool and type(text.min_freq) is int
    assert text.max_len is None or type(text.max_len) is int
    assert text.max_vocab is None or type(text.max_vocab) is int
    assert text.level in ("word", "char") and text.truncate in ("pre", "post")
    assert data.batching in ("stream", "documents") and data.doc_unit in ("line", "file")
    assert type(data.seed) is int


def full_checkpoint_meta() -> dict[str, str]:
    return checkpoint._metadata(full_checkpoint(), "x")


@settings(FUZZ, max_examples=1000)
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
       in_data=st.booleans())
def test_flipped_bytes_are_loaded_finite_or_refused_cleanly(
    folder: Path, good: bytes, flips: list[tuple[int, int]], in_data: bool
) -> None:
    """1,000 cases: 1 to 4 bytes overwritten, in the tensor data (half the cases: a value becomes
    NaN or infinite, or another finite number) or anywhere in the file."""
    raw = bytearray(good)
    start = data_start(good) if in_data else 0
    for offset, byte in flips:
        raw[start + offset % (len(raw) - start)] = byte
    result = outcome(write(folder / "flipped.safetensors", bytes(raw)))
    if in_data and isinstance(result, SeqbatchError):
        assert "non-finite" in str(result), str(result)


def nan_in(path: Path, count: int) -> Path:
    params = tiny_params()
    params["head.weight"].flat[:count] = [np.nan, np.inf, -np.inf][:count]
    save_file(params, str(path), metadata=full_checkpoint_meta())
    return path


@pytest.mark.parametrize("count", [1, 3])
def test_non_finite_values_are_counted_and_the_tensor_named(folder: Path, count: int) -> None:
    path = nan_in(folder / "nan.safetensors", count)
    with pytest.raises(SeqbatchError, match=rf"nan\.safetensors: head\.weight has {count} non-finite value"):
        checkpoint.load(path)


def raw_with_dtype(tag: str, itemsize: int) -> bytes:
    """The good checkpoint's header and layout, every tensor re-tagged as `tag` (zero bytes)."""
    meta = full_checkpoint_meta()
    header: dict[str, Any] = {"__metadata__": meta}
    offset = 0
    for name, shape in parameter_shapes(CFG).items():
        n = int(np.prod(shape)) * itemsize
        header[name] = {"dtype": tag, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    return header_bytes(header, b"\0" * offset)


@pytest.mark.parametrize(("tag", "itemsize"), [("I64", 8), ("I32", 4), ("BOOL", 1), ("F16", 2), ("BF16", 2),
                                               ("U8", 1), ("C64", 8), ("F8_E4M3", 1)])
def test_tensors_that_are_not_float32_or_float64_are_refused_by_name(folder: Path, tag: str, itemsize: int) -> None:
    path = write(folder / "dtype.safetensors", raw_with_dtype(tag, itemsize))
    with pytest.raises(SeqbatchError, match=rf"dtype\.safetensors: tensor \S+ has dtype {tag}; .*float32"):
        checkpoint.load(path)


def test_float64_tensors_in_a_float32_checkpoint_are_refused(folder: Path) -> None:
    path = write(folder / "f64.safetensors", raw_with_dtype("F64", 8))
    with pytest.raises(SeqbatchError, match=r"tensor \S+ is F64, but the config's dtype is float32"):
        checkpoint.load(path)
    assert DTYPE_TAGS == {"float32": "F32", "float64": "F64"}


def test_a_config_of_a_billion_layers_is_refused_at_once(folder: Path, good: bytes) -> None:
    model = json.loads(full_checkpoint_meta()["seqbatch.model"]) | {"num_layers": 10**9}
    path = with_metadata(good, folder / "layers.safetensors", {"seqbatch.model": json.dumps(model)})
    with pytest.raises(SeqbatchError, match=r"layers\.safetensors: seqbatch\.model says 1000000000 layers"):
        checkpoint.load(path)


def json_depth(depth: int) -> Iterator[str]:
    yield "[" * depth + "]" * depth
    yield '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("key", ["seqbatch.model", "seqbatch.vocab", "seqbatch.text", "seqbatch.split"])
def test_deeply_nested_json_is_refused_cleanly(folder: Path, good: bytes, key: str) -> None:
    for text in json_depth(100_000):
        result = outcome(with_metadata(good, folder / "deep.safetensors", {key: text}))
        assert isinstance(result, SeqbatchError)
