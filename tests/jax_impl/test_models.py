"""The JAX port: shapes, parameter layout, masking of padding, checkpoints read by the reference.

Each config costs a jit compilation (about half a second here), so every config is compiled
once, for one batch shape, and the padding checks share that shape.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import jax
import numpy as np
import pytest

import jax_impl as backend
from shared.batching import Batch, pad
from shared.config import CELLS, ModelConfig
from shared.layout import parameter_shapes

VOCAB, CLASSES = 11, 3
CONFIGS = [
    ModelConfig(vocab_size=VOCAB, num_classes=CLASSES, cell=cell, num_layers=layers, bidirectional=bi,
                hidden_size=6, embed_dim=embed)
    for cell, layers, bi, embed in itertools.product(CELLS, (1, 2), (False, True), (None, 5))
]
# One config per cell, between them every name pattern: one-hot or embedding, 1 or 2 layers, _reverse.
CORNERS = [CONFIGS[0], CONFIGS[15], CONFIGS[16], CONFIGS[31]]


def cfg_id(cfg: ModelConfig) -> str:
    return f"{cfg.cell}-l{cfg.num_layers}-{'bi' if cfg.bidirectional else 'uni'}-{cfg.embed_dim or 'onehot'}"


def random_params(cfg: ModelConfig, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(-0.5, 0.5, shape).astype(np.float32) for k, shape in parameter_shapes(cfg).items()}


def ragged_batch(seed: int = 0, lengths: tuple[int, ...] = (1, 5, 9, 3, 16), time: int | None = None) -> Batch:
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(2, VOCAB, n).astype(np.int32) for n in lengths]
    return pad(seqs, rng.integers(0, CLASSES, len(lengths)), time=time)


def with_junk_padding(batch: Batch, seed: int = 1) -> Batch:
    """The same examples with real-looking token ids where PAD was."""
    tokens = np.random.default_rng(seed).integers(1, VOCAB, batch.tokens.shape).astype(np.int32)
    tokens[batch.mask] = batch.tokens[batch.mask]
    return Batch(tokens, batch.lengths, batch.labels)


def stack(a: Batch, b: Batch) -> Batch:
    return Batch(*(np.concatenate([x, y]) for x, y in ((a.tokens, b.tokens), (a.lengths, b.lengths),
                                                      (a.labels, b.labels))))


@pytest.mark.parametrize("cfg", CONFIGS, ids=cfg_id)
def test_shapes_and_padding_is_never_read(cfg: ModelConfig) -> None:
    model = backend.from_params(cfg, random_params(cfg))
    clean = ragged_batch(time=24)
    out = backend.logits(model, stack(clean, with_junk_padding(clean)))  # one call, one compilation
    assert out.shape == (2 * len(clean), CLASSES) and out.dtype == np.float32
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[len(clean) :], out[: len(clean)], rtol=0, atol=1e-6)


@pytest.mark.parametrize("cfg", CORNERS, ids=cfg_id)
def test_init_creates_pytorch_names_and_shapes(cfg: ModelConfig) -> None:
    model = backend.init(cfg, seed=0)
    params = backend.to_params(model)
    assert list(params) == list(parameter_shapes(cfg))
    assert {k: v.shape for k, v in params.items()} == parameter_shapes(cfg)
    assert all(v.dtype == np.float32 for v in params.values())
    # PyTorch's default ranges: recurrent weights U(-1/sqrt(H), 1/sqrt(H)).
    assert np.abs(params["rnn.weight_hh_l0"]).max() <= cfg.hidden_size**-0.5
    assert backend.config_of(model) == cfg


@pytest.mark.parametrize("cfg", [CONFIGS[-1], CONFIGS[21]], ids=cfg_id)
def test_padding_further_does_not_change_logits(cfg: ModelConfig) -> None:
    model = backend.from_params(cfg, random_params(cfg))
    np.testing.assert_allclose(backend.logits(model, ragged_batch(time=40)), backend.logits(model, ragged_batch()),
                               rtol=0, atol=1e-6)
    alone = ragged_batch(lengths=(7,))  # a batch of one, padded to 8
    in_batch = ragged_batch(lengths=(7, 16, 1))
    np.testing.assert_allclose(backend.logits(model, alone)[0], backend.logits(model, in_batch)[0], rtol=0, atol=1e-6)


def test_init_is_seeded() -> None:
    cfg = CORNERS[0]
    a, b, c = (backend.to_params(backend.init(cfg, seed=s)) for s in (3, 3, 4))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["head.weight"], c["head.weight"])


def test_losses_and_gradients_cover_the_batch_and_every_parameter() -> None:
    cfg = CONFIGS[-1]
    model = backend.from_params(cfg, random_params(cfg))
    batch = ragged_batch()
    per_example = backend.losses(model, batch)
    assert per_example.shape == (len(batch),) and (per_example > 0).all()
    assert backend.loss(model, batch) == pytest.approx(float(per_example.mean()), rel=1e-6)
    grads = backend.gradients(model, batch)
    assert {k: v.shape for k, v in grads.items()} == parameter_shapes(cfg)
    assert all(np.abs(g).sum() > 0 for g in grads.values())


def test_float64_models_compute_in_float64() -> None:
    # x64 is a process-wide switch: turn it back off so that later tests see JAX's default.
    cfg = dataclasses.replace(CORNERS[0], dtype="float64")
    try:
        model = backend.from_params(cfg, random_params(cfg))
        assert all(v.dtype == np.float64 for v in backend.to_params(model).values())
        assert backend.logits(model, ragged_batch()).dtype == np.float64
    finally:
        jax.config.update("jax_enable_x64", False)


@pytest.mark.parametrize("cfg", [CONFIGS[-1], CONFIGS[22]], ids=cfg_id)
def test_a_jax_checkpoint_loads_in_torch_with_the_same_logits(
    cfg: ModelConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQBATCH_TORCH_DEVICE", "cpu")
    import reference_torch

    model = backend.init(cfg, seed=1)
    path = tmp_path / "model.safetensors"
    backend.save(model, path)
    batch = ragged_batch(seed=2)
    np.testing.assert_allclose(reference_torch.logits(reference_torch.load(path), batch),
                               backend.logits(model, batch), rtol=0, atol=1e-5)
