"""The frozen configs: derived sizes, JSON round trip, and the errors bad values raise."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from shared.config import ModelConfig, TrainConfig
from shared.errors import SeqbatchError


def test_derived_sizes() -> None:
    one_hot = ModelConfig(vocab_size=30, num_classes=5, cell="gru", bidirectional=True, hidden_size=16)
    assert (one_hot.gates, one_hot.directions, one_hot.input_size, one_hot.feature_size) == (3, 2, 30, 32)
    embedded = dataclasses.replace(one_hot, cell="lstm", bidirectional=False, embed_dim=8)
    assert (embedded.gates, embedded.directions, embedded.input_size, embedded.feature_size) == (4, 1, 8, 16)
    assert ModelConfig(vocab_size=3, num_classes=2, cell="rnn_relu").gates == 1


def test_configs_are_frozen() -> None:
    cfg = ModelConfig(vocab_size=3, num_classes=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.hidden_size = 4  # type: ignore[misc]


def test_model_config_json_round_trip() -> None:
    cfg = ModelConfig(vocab_size=30, num_classes=5, cell="rnn_tanh", num_layers=3, embed_dim=7, dropout=0.2,
                      dtype="float64")
    assert ModelConfig.from_json(cfg.to_json()) == cfg


def test_from_json_ignores_unknown_keys_but_needs_the_sizes() -> None:
    assert ModelConfig.from_dict({"vocab_size": 4, "num_classes": 2, "future_key": 1}).vocab_size == 4
    with pytest.raises(SeqbatchError, match=r"lacks \['num_classes'\]"):
        ModelConfig.from_dict({"vocab_size": 4})


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"vocab_size": "many", "num_classes": 2}'])
def test_from_json_rejects_what_is_not_a_config(text: str) -> None:
    with pytest.raises(SeqbatchError, match="model config is not valid"):
        ModelConfig.from_json(text)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"cell": "transformer"}, "unknown cell 'transformer'"),
        ({"vocab_size": 0}, "vocab_size must be >= 1, got 0"),
        ({"num_classes": 1}, "num_classes must be >= 2, got 1"),
        ({"num_layers": 0}, "num_layers must be >= 1, got 0"),
        ({"hidden_size": -3}, "hidden_size must be >= 1, got -3"),
        ({"embed_dim": 0}, "embed_dim must be >= 1 or None"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
        ({"dropout": -0.1}, "dropout must be in"),
        ({"dtype": "float16"}, "dtype must be float32 or float64, got 'float16'"),
    ],
)
def test_model_config_rejects_bad_values(change: dict[str, Any], match: str) -> None:
    with pytest.raises(SeqbatchError, match=match):
        ModelConfig(**{"vocab_size": 10, "num_classes": 3, **change})


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"optimizer": "rmsprop"}, "optimizer must be sgd or adam, got 'rmsprop'"),
        ({"lr": 0.0}, "lr must be > 0, got 0.0"),
        ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
        ({"steps": None}, "give exactly one of steps and epochs"),
        ({"epochs": 3}, "give exactly one of steps and epochs"),
        ({"steps": 0}, "steps must be >= 1, got 0"),
        ({"steps": None, "epochs": 0}, "epochs must be >= 1, got 0"),
        ({"eval_every": 0}, "eval_every must be >= 1, got 0"),
        ({"momentum": -0.5}, r"momentum must be in \[0, 1\), got -0.5"),
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\), got 1.0"),
        ({"on_nan": "ignore"}, "on_nan must be stop or skip, got 'ignore'"),
        ({"max_loss": 0.0}, "max_loss must be > 0, got 0.0"),
        ({"max_loss": float("nan")}, "max_loss must be > 0, got nan"),
        ({"seed": -1}, r"seed must be an integer in \[0, 2\*\*32\), got -1"),
        ({"seed": 2**32}, r"seed must be an integer in \[0, 2\*\*32\), got 4294967296"),
        ({"clip_norm": 0.0}, "clip_norm must be > 0, got 0.0"),
        # NaN compares false with everything, so `nan <= 0` let these through and trained NaN weights
        ({"lr": float("nan")}, "lr must be > 0, got nan"),
        ({"lr": float("inf")}, "lr must be > 0, got inf"),
        ({"momentum": float("nan")}, r"momentum must be in \[0, 1\), got nan"),
        ({"clip_norm": float("nan")}, "clip_norm must be > 0, got nan"),
        ({"clip_norm": float("inf")}, "clip_norm must be > 0, got inf"),
        ({"sampler": "bucketed"}, "sampler must be random, epoch, balanced or uniform, got 'bucketed'"),
    ],
)
def test_train_config_rejects_bad_values(change: dict[str, Any], match: str) -> None:
    with pytest.raises(SeqbatchError, match=match):
        TrainConfig(**change)


def test_train_config_defaults_are_valid_and_epochs_replace_steps() -> None:
    cfg = TrainConfig()
    assert cfg.steps is not None and cfg.epochs is None
    by_epochs = dataclasses.replace(cfg, steps=None, epochs=2)
    assert by_epochs.epochs == 2
