"""The skip-gram kind is one model on both backends (issue 13, item 6): the same batch gives the same
per-pair losses and gradients (float32: loss within 1e-5, gradients within 1e-4 relative; float64:
1e-10), and 100 SGD steps on the same batches follow the same trajectory (loss per step within 1e-4
relative, the touched rows within 1e-3)."""

from __future__ import annotations

import numpy as np
import pytest

from shared.backend import get_backend, kind_module
from shared.config import TrainConfig
from shared.kinds.skipgram import SkipgramConfig
from shared.layout import parameter_shapes
from shared.skipgram_data import SkipgramDataConfig, build_corpus, epoch_batches

V, D = 60, 16


@pytest.fixture(autouse=True)
def _cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBATCH_TORCH_DEVICE", "cpu")


def corpus_batches(n: int, batch_size: int = 32) -> list:
    rng = np.random.default_rng(0)
    words = [f"w{int(i)}" for i in rng.zipf(1.3, 20_000) % V]
    corpus = build_corpus([words], min_count=1)
    cfg = SkipgramDataConfig(min_count=1, window=3, negatives=5, sample=1e-2)
    out: list = []
    epoch = 0
    while len(out) < n:
        out += list(epoch_batches(corpus, cfg, batch_size, seed=0, epoch=epoch))
        epoch += 1
    return out[:n]


def random_params(cfg: SkipgramConfig) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {k: (0.3 * rng.standard_normal(s)).astype(cfg.dtype) for k, s in parameter_shapes(cfg).items()}


@pytest.mark.parametrize("dtype, loss_tol, grad_tol", [("float32", 1e-5, 1e-4), ("float64", 1e-10, 1e-10)])
def test_losses_and_gradients_agree(dtype: str, loss_tol: float, grad_tol: float) -> None:
    from parity.harness_cli import backend_settings

    with backend_settings("cpu", dtype):  # float64: JAX's x64 on for this block only (tests/parity/conftest.py)
        check_losses_and_gradients(SkipgramConfig(vocab_size=V, embed_dim=D, dtype=dtype), loss_tol, grad_tol)


def check_losses_and_gradients(cfg: SkipgramConfig, loss_tol: float, grad_tol: float) -> None:
    params = random_params(cfg)
    batch = corpus_batches(1)[0]
    torch_b, jax_b = get_backend("torch"), get_backend("jax")
    results = []
    for b in (torch_b, jax_b):
        km = kind_module(b, "skipgram")
        model = b.from_params(cfg, params)
        results.append((km.losses(model, batch), km.logits(model, batch), km.gradients(model, batch)))
    (lt, st, gt), (lj, _, gj) = results
    assert lt.shape == (len(batch),) and st.shape == (len(batch), 6)
    np.testing.assert_allclose(lj, lt, atol=loss_tol, rtol=0)
    for name in params:
        scale = np.abs(gt[name]).max()
        assert scale > 0 and np.abs(gj[name] - gt[name]).max() <= grad_tol * scale, name


def test_a_hundred_sgd_steps_follow_the_same_trajectory() -> None:
    cfg = SkipgramConfig(vocab_size=V, embed_dim=D)
    train = TrainConfig(optimizer="sgd", lr=0.5, momentum=0.0, steps=100, max_loss=None)
    torch_b, jax_b = get_backend("torch"), get_backend("jax")
    start = torch_b.to_params(torch_b.init(cfg, 0))  # word2vec's init: output vectors start at zero
    batches = corpus_batches(100)
    curves, finals = [], []
    for b in (torch_b, jax_b):
        state = b.train_state(b.from_params(cfg, start), train)
        losses = []
        for batch in batches:
            state, metrics = b.train_step(state, batch)
            losses.append(float(metrics["loss"]))
        curves.append(np.array(losses))
        finals.append(b.to_params(b.model_of(state)))
    np.testing.assert_allclose(curves[1], curves[0], rtol=1e-4)
    assert curves[0][-10:].mean() < curves[0][:10].mean()  # it learns
    touched = np.unique(np.concatenate([np.r_[b.centre, b.context, b.negatives.ravel()] for b in batches]))
    for name in start:
        a, j = finals[0][name][touched], finals[1][name][touched]
        assert np.abs(j - a).max() <= 1e-3 * np.abs(a).max(), name
