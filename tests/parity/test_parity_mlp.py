"""The MLP kind is one model on both backends (issue 14, item 3): the same weights give the same logits
and losses (float32 within 1e-5, float64 within 1e-10) and gradients (1e-4 relative, float64 1e-10);
100 Adam or SGD steps on the wine batches, fed through each backend's `loader` (torch: TensorDataset +
DataLoader driven by the shared batch order), follow the same trajectory (loss per step within 1e-4
relative, final weights within 1e-3 relative; float64 far tighter)."""

from __future__ import annotations

import numpy as np
import pytest

from parity.harness_cli import backend_settings
from shared.backend import get_backend, kind_module
from shared.batching import Sampler
from shared.config import TrainConfig
from shared.kinds.mlp import MLPConfig
from shared.layout import init_bound, parameter_shapes
from shared.tabular import TabularData, split_table, wine_table

BATCH = 32


@pytest.fixture(autouse=True)
def _cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBATCH_TORCH_DEVICE", "cpu")


@pytest.fixture(scope="module")
def wine() -> TabularData:
    return split_table(wine_table(), seed=0)


def wine_batches(data: TabularData, n: int) -> list[np.ndarray]:
    """The first `n` index batches of the training stream (4 per epoch: 32, 32, 32, 10)."""
    stream = iter(Sampler(data.train.labels, BATCH, kind="epoch", seed=0))
    return [next(stream) for _ in range(n)]


def random_params(cfg: MLPConfig) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {k: (0.5 * rng.standard_normal(s)).astype(cfg.dtype) for k, s in parameter_shapes(cfg).items()}


@pytest.mark.parametrize("dtype, out_tol, grad_tol", [("float32", 1e-5, 1e-4), ("float64", 1e-10, 1e-10)])
def test_logits_losses_and_gradients_agree(wine: TabularData, dtype: str, out_tol: float, grad_tol: float) -> None:
    with backend_settings("cpu", dtype):  # float64: JAX's x64 on for this block only
        cfg = MLPConfig(num_features=13, num_classes=3, hidden_sizes=(10, 10), dtype=dtype)
        params = random_params(cfg)
        batch = wine.train.batch(wine_batches(wine, 1)[0])
        results = []
        for name in ("torch", "jax"):
            b = get_backend(name)
            km = kind_module(b, "mlp")
            model = b.from_params(cfg, params)
            results.append((km.logits(model, batch), km.losses(model, batch), km.loss(model, batch),
                            km.gradients(model, batch)))
    (zt, lt, mt, gt), (zj, lj, mj, gj) = results
    assert zt.shape == (BATCH, 3) and lt.shape == (BATCH,) and zt.dtype == np.dtype(dtype)
    np.testing.assert_allclose(zj, zt, atol=out_tol, rtol=0)
    np.testing.assert_allclose(lj, lt, atol=out_tol, rtol=0)
    assert abs(mj - mt) <= out_tol and mt == pytest.approx(lt.mean())
    assert set(gt) == set(gj) == set(params)
    for name in params:
        scale = np.abs(gt[name]).max()
        assert scale > 0 and np.abs(gj[name] - gt[name]).max() <= grad_tol * scale, name


def trajectory(backend_name: str, cfg: MLPConfig, start: dict[str, np.ndarray], train: TrainConfig,
               data: TabularData, batches: list[np.ndarray]) -> tuple[np.ndarray, list[int], dict[str, np.ndarray]]:
    """Per-step losses, batch sizes and final weights of `len(batches)` steps through the backend's loader."""
    b = get_backend(backend_name)
    km = kind_module(b, "mlp")
    state = b.train_state(b.from_params(cfg, start), train)
    losses, sizes = [], []
    for batch in km.loader(b.model_of(state), data.train, batches):
        before = km.logits(b.model_of(state), batch)
        state, metrics = b.train_step(state, batch)
        assert bool(metrics["ok"])
        assert int(metrics["correct"]) == int((before.argmax(1) == np.asarray(batch[1])).sum())  # pre-update logits
        losses.append(float(metrics["loss"]))
        sizes.append(len(batch[1]))
    return np.array(losses), sizes, b.to_params(b.model_of(state))


# Rates at which the loss stays above ~0.1: near 0, float32's -log(p) for p ~ 1 loses its relative precision.
@pytest.mark.parametrize("optimizer, lr", [("adam", 3e-3), ("sgd", 0.01)])
@pytest.mark.parametrize("dtype, loss_tol, weight_tol", [("float32", 1e-4, 1e-3), ("float64", 1e-10, 1e-9)])
def test_a_hundred_steps_follow_the_same_trajectory(wine: TabularData, optimizer: str, lr: float, dtype: str,
                                                    loss_tol: float, weight_tol: float) -> None:
    with backend_settings("cpu", dtype):
        cfg = MLPConfig(num_features=13, num_classes=3, dtype=dtype)
        train = TrainConfig(optimizer=optimizer, lr=lr, batch_size=BATCH, steps=None, epochs=25, max_loss=None)
        start = get_backend("torch").to_params(get_backend("torch").init(cfg, 0))
        batches = wine_batches(wine, 100)
        (lt, st, pt), (lj, sj, pj) = (trajectory(n, cfg, start, train, wine, batches) for n in ("torch", "jax"))
    assert st == sj == [32, 32, 32, 10] * 25  # the same stream, the short batch last in each epoch
    np.testing.assert_allclose(lj, lt, rtol=loss_tol)
    assert lt[-8:].mean() < 0.5 * lt[:8].mean()  # it learns
    for name in start:
        assert not np.allclose(pt[name], start[name]), name  # every tensor moved
        assert np.abs(pj[name] - pt[name]).max() <= weight_tol * np.abs(pt[name]).max(), name


@pytest.mark.parametrize("backend_name", ["torch", "jax"])
def test_the_loader_yields_the_shared_batches_in_their_order(wine: TabularData, backend_name: str) -> None:
    """torch's DataLoader (batch_sampler = the shared order) and JAX's loader give the rows of each
    index batch, in order, in the model's dtype: not torch's own shuffle, not sorted indices."""
    b = get_backend(backend_name)
    cfg = MLPConfig(num_features=13, num_classes=3)
    batches = wine_batches(wine, 8)
    got = list(kind_module(b, "mlp").loader(b.init(cfg, 0), wine.train, batches))
    assert len(got) == len(batches)
    for (features, labels), index in zip(got, batches, strict=True):
        features, labels = np.asarray(features), np.asarray(labels)
        assert features.dtype == np.float32
        np.testing.assert_array_equal(features, wine.train.features[index].astype(np.float32))
        np.testing.assert_array_equal(labels, wine.train.labels[index])
    assert not np.array_equal(batches[0], np.sort(batches[0]))  # shuffled: a reordering would show


@pytest.mark.parametrize("backend_name", ["torch", "jax"])
def test_init_is_torch_s_linear_default_on_both_backends(backend_name: str) -> None:
    """Weights and biases uniform on +-1/sqrt(fan_in) (the layout's bound), filling the interval."""
    cfg = MLPConfig(num_features=50, num_classes=3, hidden_sizes=(400,))
    b = get_backend(backend_name)
    params = b.to_params(b.init(cfg, 3))
    assert {k: v.shape for k, v in params.items()} == parameter_shapes(cfg)
    for name, value in params.items():
        bound = init_bound(cfg, name)
        fan_in = cfg.widths[int(name.split(".")[1])]
        assert bound == pytest.approx(fan_in**-0.5), name
        assert np.abs(value).max() <= bound, name
        if value.size >= 400:  # enough draws to come near both ends and average near 0
            assert np.abs(value).max() > 0.95 * bound and abs(value.mean()) < 0.1 * bound, name
    again = b.to_params(b.init(cfg, 3))
    other = b.to_params(b.init(cfg, 4))
    assert all(np.array_equal(params[k], again[k]) for k in params)  # seeded
    assert not np.array_equal(params["layers.0.weight"], other["layers.0.weight"])
