"""The PyTorch per-example baseline: one unpadded sequence at a time, the same update as a batched step."""

from __future__ import annotations

import numpy as np
import pytest

import reference_torch as backend
from shared.batching import pad
from shared.config import ModelConfig, TrainConfig

LENGTHS = (1, 5, 3, 9, 5)


def ragged(seed: int = 0):
    rng = np.random.default_rng(seed)
    return pad([rng.integers(2, 11, n) for n in LENGTHS], rng.integers(0, 3, len(LENGTHS)))


@pytest.mark.parametrize(
    ("cfg", "train"),
    [
        (ModelConfig(11, 3, cell="lstm", hidden_size=7), TrainConfig(lr=0.5, momentum=0.9, clip_norm=0.1)),
        (ModelConfig(11, 3, cell="gru", num_layers=2, bidirectional=True, hidden_size=5, embed_dim=4),
         TrainConfig(optimizer="adam", lr=0.05)),
    ],
    ids=["lstm-sgd-clip", "gru-bi-2layer-adam"],
)
def test_per_example_steps_make_the_batched_update(cfg: ModelConfig, train: TrainConfig) -> None:
    params = backend.to_params(backend.init(cfg, seed=0))
    batched = backend.train_state(backend.from_params(cfg, params), train)
    alone = backend.train_state(backend.from_params(cfg, params), train)
    for step in range(2):
        batch = ragged(step)
        batched, m_batched = backend.train_step(batched, batch)
        alone, m_alone = backend.per_example_step(alone, batch)
        assert float(m_alone["loss"]) == pytest.approx(float(m_batched["loss"]), rel=1e-6)
        assert float(m_alone["grad_norm"]) == pytest.approx(float(m_batched["grad_norm"]), rel=1e-5)
    after_batched = backend.to_params(backend.model_of(batched))
    after_alone = backend.to_params(backend.model_of(alone))
    for name, value in after_batched.items():
        np.testing.assert_allclose(after_alone[name], value, atol=1e-6, err_msg=name)
        assert not np.array_equal(value, params[name]), f"{name} did not move"


def test_per_example_gradients_are_the_mean_of_single_sequence_gradients() -> None:
    cfg = ModelConfig(11, 3, cell="rnn_tanh", hidden_size=6, embed_dim=3)
    model = backend.init(cfg, seed=1)
    batch = ragged(3)
    mean = backend.per_example_gradients(model, batch)
    whole = backend.gradients(model, batch)
    assert mean.keys() == whole.keys()
    for name in whole:
        np.testing.assert_allclose(mean[name], whole[name], atol=1e-6, err_msg=name)
