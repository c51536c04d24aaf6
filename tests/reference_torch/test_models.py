"""The PyTorch reference model: shapes, parameter layout, padding, checkpoints read by the JAX port."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

import reference_torch as backend
from shared.batching import Batch, pad
from shared.config import CELLS, ModelConfig
from shared.layout import parameter_shapes

VOCAB, CLASSES = 11, 3
CONFIGS = [
    ModelConfig(vocab_size=VOCAB, num_classes=CLASSES, cell=cell, num_layers=layers, bidirectional=bi,
                hidden_size=6, embed_dim=embed)
    for cell, layers, bi, embed in itertools.product(CELLS, (1, 2), (False, True), (None, 5))
]


def cfg_id(cfg: ModelConfig) -> str:
    return f"{cfg.cell}-l{cfg.num_layers}-{'bi' if cfg.bidirectional else 'uni'}-{cfg.embed_dim or 'onehot'}"


@pytest.fixture(autouse=True)
def _cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBATCH_TORCH_DEVICE", "cpu")  # never depend on a GPU


def ragged_batch(seed: int = 0, lengths: tuple[int, ...] = (1, 5, 9, 3, 16)) -> Batch:
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(2, VOCAB, n).astype(np.int32) for n in lengths]
    return pad(seqs, rng.integers(0, CLASSES, len(lengths)))


def with_junk_padding(batch: Batch, seed: int = 1, time: int | None = None) -> Batch:
    """The same examples, padded further and with real-looking token ids where PAD was."""
    t = time or batch.tokens.shape[1]
    tokens = np.random.default_rng(seed).integers(1, VOCAB, (len(batch), t)).astype(np.int32)
    mask = np.arange(t)[None, :] < batch.lengths[:, None]
    tokens[mask] = batch.tokens[batch.mask]
    return Batch(tokens, batch.lengths, batch.labels)


@pytest.mark.parametrize("cfg", CONFIGS, ids=cfg_id)
def test_shapes_names_and_padding(cfg: ModelConfig) -> None:
    model = backend.init(cfg, seed=0)
    params = backend.to_params(model)
    assert list(params) == list(parameter_shapes(cfg))  # torch's state_dict order, too
    assert {k: v.shape for k, v in params.items()} == parameter_shapes(cfg)
    batch = ragged_batch()
    out = backend.logits(model, batch)
    assert out.shape == (len(batch), CLASSES) and out.dtype == np.float32
    assert np.isfinite(out).all()
    # Whatever sits behind the lengths, and however far the batch is padded, is never read.
    np.testing.assert_allclose(backend.logits(model, with_junk_padding(batch)), out, rtol=0, atol=1e-6)
    np.testing.assert_allclose(backend.logits(model, with_junk_padding(batch, time=40)), out, rtol=0, atol=1e-6)


@pytest.mark.parametrize("cfg", [CONFIGS[-1], CONFIGS[10]], ids=cfg_id)
def test_an_example_gets_the_same_logits_alone_or_in_a_batch(cfg: ModelConfig) -> None:
    model = backend.init(cfg, seed=0)
    batch = ragged_batch()
    together = backend.logits(model, batch)
    for i in range(len(batch)):
        alone = Batch(batch.tokens[i : i + 1, : batch.lengths[i]], batch.lengths[i : i + 1], batch.labels[i : i + 1])
        np.testing.assert_allclose(backend.logits(model, alone)[0], together[i], rtol=0, atol=1e-6)


def test_init_is_seeded_and_leaves_the_global_rng_alone() -> None:
    cfg = CONFIGS[5]
    before = torch.random.get_rng_state()
    a, b, c = (backend.to_params(backend.init(cfg, seed=s)) for s in (3, 3, 4))
    assert torch.equal(before, torch.random.get_rng_state())
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["head.weight"], c["head.weight"])


def test_from_params_copies_and_round_trips() -> None:
    cfg = CONFIGS[-1]
    params = backend.to_params(backend.init(cfg, seed=0))
    model = backend.from_params(cfg, params)
    params["head.bias"][:] = 123.0  # the model must not share memory with the caller's arrays
    back = backend.to_params(model)
    assert not np.allclose(back["head.bias"], 123.0)
    assert backend.config_of(model) == cfg


def test_losses_and_gradients_cover_the_batch_and_every_parameter() -> None:
    cfg = CONFIGS[-1]
    model = backend.init(cfg, seed=0)
    batch = ragged_batch()
    per_example = backend.losses(model, batch)
    assert per_example.shape == (len(batch),) and (per_example > 0).all()
    assert backend.loss(model, batch) == pytest.approx(float(per_example.mean()), rel=1e-6)
    grads = backend.gradients(model, batch)
    assert {k: v.shape for k, v in grads.items()} == parameter_shapes(cfg)
    assert all(np.abs(g).sum() > 0 for g in grads.values())


def test_float64_models_compute_in_float64() -> None:
    cfg = dataclasses.replace(CONFIGS[3], dtype="float64")
    model = backend.init(cfg, seed=0)
    assert all(v.dtype == np.float64 for v in backend.to_params(model).values())
    assert backend.logits(model, ragged_batch()).dtype == np.float64


@pytest.mark.parametrize("cfg", [CONFIGS[-1], CONFIGS[22]], ids=cfg_id)
def test_a_torch_checkpoint_loads_in_jax_with_the_same_logits(cfg: ModelConfig, tmp_path: Path) -> None:
    import jax_impl

    model = backend.init(cfg, seed=1)
    path = tmp_path / "model.safetensors"
    backend.save(model, path)
    batch = ragged_batch(seed=2)
    np.testing.assert_allclose(jax_impl.logits(jax_impl.load(path), batch), backend.logits(model, batch),
                               rtol=0, atol=1e-5)

