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


def sparse_trajectory(backend_name: str, cfg: SkipgramConfig, start: dict[str, np.ndarray], batches: list,
                      lrs: list[float], train: TrainConfig) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    b = get_backend(backend_name)
    km = kind_module(b, "skipgram")
    state = b.train_state(b.from_params(cfg, start), train)
    losses = []
    for batch, lr in zip(batches, lrs, strict=True):
        state, metrics = km.sparse_step(state, batch, lr)
        losses.append(float(metrics["loss"]))
    return np.array(losses), b.to_params(b.model_of(state))


@pytest.mark.parametrize("dtype, loss_tol, row_tol", [("float32", 1e-4, 1e-3), ("float64", 1e-10, 1e-10)])
def test_word2vec_sparse_sgd_follows_the_same_trajectory(dtype: str, loss_tol: float, row_tol: float) -> None:
    """The training path `seqbatch train --task skipgram` takes: 100 sparse steps, the rate decaying."""
    from parity.harness_cli import backend_settings

    with backend_settings("cpu", dtype):
        cfg = SkipgramConfig(vocab_size=V, embed_dim=D, dtype=dtype)
        train = TrainConfig(optimizer="sgd", lr=0.025, momentum=0.0, steps=100, max_loss=None)
        start = get_backend("torch").to_params(get_backend("torch").init(cfg, 0))
        batches = corpus_batches(100)
        lrs = list(np.linspace(0.05, 0.001, 100))
        (lt, pt), (lj, pj) = (sparse_trajectory(n, cfg, start, batches, lrs, train) for n in ("torch", "jax"))
    np.testing.assert_allclose(lj, lt, rtol=loss_tol)
    assert lt[-10:].mean() < lt[:10].mean()  # it learns
    for name in start:
        assert np.abs(pj[name] - pt[name]).max() <= row_tol * np.abs(pt[name]).max(), name
        assert not np.array_equal(pt[name], start[name]), name


@pytest.mark.parametrize("backend_name", ["torch", "jax"])
def test_a_sparse_step_is_sgd_on_the_summed_pair_losses(backend_name: str) -> None:
    """`sparse_step(lr)` = a dense SGD step at lr * B on the mean loss: rows met twice get both updates,
    untouched rows stay bit-identical."""
    from parity.harness_cli import backend_settings

    with backend_settings("cpu", "float64"):
        cfg = SkipgramConfig(vocab_size=V, embed_dim=D, dtype="float64")
        params = random_params(cfg)
        batch = corpus_batches(1)[0]
        assert len(np.unique(batch.centre)) < len(batch)  # repeated rows are exercised
        b = get_backend(backend_name)
        km = kind_module(b, "skipgram")
        sparse_cfg = TrainConfig(optimizer="sgd", lr=0.1, momentum=0.0, steps=1, max_loss=None)
        dense_cfg = TrainConfig(optimizer="sgd", lr=0.1 * len(batch), momentum=0.0, steps=1, max_loss=None)
        s, _ = km.sparse_step(b.train_state(b.from_params(cfg, params), sparse_cfg), batch, 0.1)
        d, _ = km.train_step(b.train_state(b.from_params(cfg, params), dense_cfg), batch)
        sparse, dense = b.to_params(b.model_of(s)), b.to_params(b.model_of(d))
    touched = {"in_embed.weight": np.unique(batch.centre),
               "out_embed.weight": np.unique(np.r_[batch.context, batch.negatives.ravel()])}
    for name in params:
        np.testing.assert_allclose(sparse[name], dense[name], rtol=1e-10, atol=1e-12)
        untouched = np.setdiff1d(np.arange(V), touched[name])
        assert np.array_equal(sparse[name][untouched], params[name][untouched]), name
        assert not np.allclose(sparse[name][touched[name]], params[name][touched[name]]), name


@pytest.mark.parametrize("backend_name", ["torch", "jax"])
def test_a_diverged_sparse_step_is_not_applied(backend_name: str) -> None:
    cfg = SkipgramConfig(vocab_size=V, embed_dim=D)
    params = random_params(cfg)
    params["in_embed.weight"] = params["in_embed.weight"] * 1e3  # scores of ~1e4: losses far above max_loss
    b = get_backend(backend_name)
    km = kind_module(b, "skipgram")
    state = b.train_state(b.from_params(cfg, params), TrainConfig(optimizer="sgd", lr=0.1, momentum=0.0, steps=2,
                                                                  max_loss=100.0, on_nan="stop"))
    batches = corpus_batches(2)
    state, metrics = km.sparse_step(state, batches[0], 0.1)
    assert not bool(metrics["ok"]) and float(metrics["loss"]) > 100
    state, metrics = km.sparse_step(state, batches[1], 0.1)  # frozen after a bad step under on_nan="stop"
    assert not bool(metrics["ok"])
    after = b.to_params(b.model_of(state))
    for name in params:
        assert np.array_equal(after[name], params[name].astype(np.float32)), name


@pytest.mark.parametrize("backend_name", ["torch", "jax"])
def test_grouped_steps_equal_single_steps(backend_name: str) -> None:
    """`sparse_steps` (JAX: one jitted scan over the group) is `sparse_step` batch after batch."""
    cfg = SkipgramConfig(vocab_size=V, embed_dim=D)
    train = TrainConfig(optimizer="sgd", lr=0.025, momentum=0.0, steps=8, max_loss=None)
    b = get_backend(backend_name)
    km = kind_module(b, "skipgram")
    start = random_params(cfg)
    batches, lrs = corpus_batches(8), list(np.linspace(0.05, 0.01, 8))
    one = b.train_state(b.from_params(cfg, start), train)
    singles = []
    for batch, lr in zip(batches, lrs, strict=True):
        one, m = km.sparse_step(one, batch, lr)
        singles.append(float(m["loss"]))
    many, metrics = km.sparse_steps(b.train_state(b.from_params(cfg, start), train), batches, lrs)
    assert many.step == one.step == 8
    np.testing.assert_allclose([float(m["loss"]) for m in metrics], singles, rtol=1e-6)
    assert [m["ok"] for m in km.host_metrics(metrics)] == [1.0] * 8
    for name, value in b.to_params(b.model_of(many)).items():
        np.testing.assert_allclose(value, b.to_params(b.model_of(one))[name], rtol=1e-5, atol=1e-7)


def test_seqbatch_parity_kind_skipgram_passes_and_reports(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from shared.cli import run_captured

    code, stdout, stderr = run_captured("parity", "--kind", "skipgram", "--dtype", "both", "--steps", "24",
                                        "--json", str(tmp_path / "p.json"), "--no-progress")
    assert code == 0, stderr
    assert "skipgram float32 on cpu: 18 comparisons, 0 failed" in stdout
    assert "skipgram float64 on cpu: 18 comparisons, 0 failed" in stdout
