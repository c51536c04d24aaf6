"""Initialisation on both backends follows PyTorch's defaults (shared/layout.py `init_bound`): each
recurrent, head and Linear tensor uniform on [-bound, bound], the embedding standard normal."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shared.backend import Backend
from shared.config import ModelConfig
from shared.kinds.lm import LMConfig
from shared.kinds.mlp import MLPConfig
from shared.kinds.skipgram import SkipgramConfig
from shared.layout import init_bound

CONFIGS = {
    "classifier": ModelConfig(vocab_size=300, num_classes=40, cell="lstm", num_layers=2, bidirectional=True,
                              hidden_size=96, embed_dim=32),
    "lm": LMConfig(vocab_size=300, cell="gru", num_layers=2, hidden_size=96, embed_dim=32),
    "skipgram": SkipgramConfig(vocab_size=300, embed_dim=40),  # word2vec's: uniform +-0.5/D, and zeros
    "mlp": MLPConfig(num_features=200, num_classes=40, hidden_sizes=(96, 64)),  # nn.Linear's: +-1/sqrt(fan_in)
}


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_every_tensor_has_torchs_default_distribution(backend: Backend, kind: str) -> None:
    cfg = CONFIGS[kind]
    params = backend.to_params(backend.init(cfg, seed=0))
    for name, value in params.items():
        x = value.astype(np.float64).ravel()
        bound = init_bound(cfg, name)
        if bound is None:  # standard normal
            assert abs(x.mean()) < 5 / math.sqrt(x.size) and x.std() == pytest.approx(1.0, rel=0.05), name
            continue
        if bound == 0:  # zeros (the skip-gram's output vectors)
            assert not x.any(), name
            continue
        sd = bound / math.sqrt(3)  # of uniform(-bound, bound)
        assert x.min() >= -bound and x.max() <= bound, name
        assert abs(x.mean()) < 5 * sd / math.sqrt(x.size), (name, x.mean())
        assert x.std() == pytest.approx(sd, rel=0.1 if x.size < 1000 else 0.03), name
        if x.size >= 1000:  # the whole interval is used: both ends are reached
            assert x.min() < -0.98 * bound and x.max() > 0.98 * bound, name


def test_different_seeds_give_different_weights(backend: Backend) -> None:
    cfg = CONFIGS["classifier"]
    a, b = (backend.to_params(backend.init(cfg, seed=s)) for s in (0, 1))
    assert all(not np.array_equal(a[k], b[k]) for k in a)
