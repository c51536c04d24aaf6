"""The `padded` torch kernel computes the packed reference's function, from the same parameters."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_torch as backend
from reference_torch.models import SequenceClassifier
from shared.batching import Batch, pad
from shared.config import CELLS, ModelConfig
from shared.errors import SeqbatchError

VOCAB, CLASSES = 13, 3
CONFIGS = [
    ModelConfig(vocab_size=VOCAB, num_classes=CLASSES, cell=cell, num_layers=layers, bidirectional=bi,
                hidden_size=5, embed_dim=embed, dtype="float64")
    for cell, (layers, bi), embed in itertools.product(CELLS, ((1, False), (1, True), (3, True), (2, False)),
                                                       (None, 4))
]


def cfg_id(cfg: ModelConfig) -> str:
    return f"{cfg.cell}-l{cfg.num_layers}-{'bi' if cfg.bidirectional else 'uni'}-{cfg.embed_dim or 'onehot'}"


@pytest.fixture(autouse=True)
def _cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBATCH_TORCH_DEVICE", "cpu")
    monkeypatch.delenv("SEQBATCH_TORCH_KERNEL", raising=False)


def junk_padded_batch(lengths: list[int], seed: int = 0, extra: int = 3) -> Batch:
    """Ragged examples padded `extra` steps beyond the longest, with real token ids where PAD would be:
    a kernel that let any direction read past a length would change the logits."""
    rng = np.random.default_rng(seed)
    batch = pad([rng.integers(2, VOCAB, n).astype(np.int32) for n in lengths], rng.integers(0, CLASSES, len(lengths)))
    t = batch.tokens.shape[1] + extra
    tokens = rng.integers(1, VOCAB, (len(lengths), t)).astype(np.int32)
    mask = np.arange(t)[None, :] < batch.lengths[:, None]
    tokens[mask] = batch.tokens[batch.mask]
    return Batch(tokens, batch.lengths, batch.labels)


def pair(cfg: ModelConfig) -> tuple[SequenceClassifier, SequenceClassifier]:
    packed = backend.init(cfg, seed=0)
    padded = SequenceClassifier(cfg, kernel="padded")
    padded.load_state_dict(packed.state_dict())
    return packed, padded


@pytest.mark.parametrize("cfg", CONFIGS, ids=cfg_id)
def test_padded_kernel_gives_the_packed_logits_and_gradients(cfg: ModelConfig) -> None:
    packed, padded = pair(cfg)
    assert (packed.kernel, padded.kernel) == ("packed", "padded")
    batch = junk_padded_batch([1, 7, 4, 12, 2, 9])
    np.testing.assert_allclose(backend.logits(padded, batch), backend.logits(packed, batch), rtol=0, atol=1e-13)
    want, got = backend.gradients(packed, batch), backend.gradients(padded, batch)
    assert set(got) == set(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-13, err_msg=name)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 15), min_size=1, max_size=7), st.integers(0, 10_000))
def test_padded_kernel_agrees_for_any_lengths(lengths: list[int], seed: int) -> None:
    cfg = ModelConfig(vocab_size=VOCAB, num_classes=CLASSES, cell="lstm", num_layers=2, bidirectional=True,
                      hidden_size=4, embed_dim=3, dtype="float64")
    packed, padded = pair(cfg)
    batch = junk_padded_batch(lengths, seed)
    np.testing.assert_allclose(backend.logits(padded, batch), backend.logits(packed, batch), rtol=0, atol=1e-13)


@pytest.mark.parametrize("cell", CELLS)
def test_float32_kernels_agree_to_rounding(cell: str) -> None:
    cfg = ModelConfig(vocab_size=VOCAB, num_classes=CLASSES, cell=cell, num_layers=2, bidirectional=True,
                      hidden_size=16, embed_dim=8)
    packed, padded = pair(cfg)
    batch = junk_padded_batch([3, 40, 17, 1, 33], extra=8)
    np.testing.assert_allclose(backend.logits(padded, batch), backend.logits(packed, batch), rtol=0, atol=1e-5)
    want, got = backend.gradients(packed, batch), backend.gradients(padded, batch)
    for name in want:
        scale = float(np.abs(want[name]).max()) or 1.0
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-5 * scale, err_msg=name)


def test_padded_kernel_drops_out_between_layers_in_training_only() -> None:
    cfg = ModelConfig(vocab_size=VOCAB, num_classes=CLASSES, cell="gru", num_layers=2, bidirectional=True,
                      hidden_size=8, embed_dim=4, dropout=0.5, dtype="float64")
    packed, padded = pair(cfg)
    batch = junk_padded_batch([5, 9, 2, 7])
    tokens, lengths = torch.as_tensor(batch.tokens), torch.as_tensor(batch.lengths)
    padded.train()
    torch.manual_seed(1)
    first = padded(tokens, lengths).detach()
    second = padded(tokens, lengths).detach()
    assert not torch.allclose(first, second)  # a fresh mask per call
    # eval mode: no dropout, the packed reference's logits
    np.testing.assert_allclose(backend.logits(padded, batch), backend.logits(packed, batch), rtol=0, atol=1e-13)
    # gradients() switches dropout off on either kernel
    want, got = backend.gradients(packed, batch), backend.gradients(padded, batch)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-13, err_msg=name)


def test_the_kernel_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = dataclasses.replace(CONFIGS[0], dtype="float32")
    assert backend.init(cfg, seed=0).kernel == "packed"
    monkeypatch.setenv("SEQBATCH_TORCH_KERNEL", "padded")
    assert backend.init(cfg, seed=0).kernel == "padded"
    monkeypatch.setenv("SEQBATCH_TORCH_KERNEL", "cudnn")
    with pytest.raises(SeqbatchError, match="SEQBATCH_TORCH_KERNEL='cudnn': choose packed or padded"):
        backend.init(cfg, seed=0)
    with pytest.raises(SeqbatchError, match="unknown torch kernel 'fast'"):
        SequenceClassifier(cfg, kernel="fast")
