"""The MLP kind: a multilayer perceptron over a row of numeric features (tabular data, e.g. wine).

    features [B, F] float   one standardised row per example (shared/tabular.py)
    labels   [B]    int     the class of each row

    Linear(F, h_1) -> ReLU -> Linear(h_1, h_2) -> ReLU -> ... -> Linear(h_k, C): the logits

Parameters carry torch's `nn.ModuleList` names (the last Linear is the head):

    layers.0.weight  [h_1, F]     layers.0.bias  [h_1]
    layers.i.weight  [h_i+1, h_i] layers.i.bias  [h_i+1]
    layers.k.weight  [C, h_k]     layers.k.bias  [C]

Initialisation is torch's default for `nn.Linear` on both backends: weight and bias uniform on
+-1/sqrt(fan_in) (kaiming_uniform with a = sqrt(5) works out to that bound). Loss: mean
cross-entropy. Selected on validation top-1, higher is better (as the classifier).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from jaxtyping import Float, Int

from shared.config import DType, config_from_dict
from shared.errors import SeqbatchError
from shared.kinds import Kind

__all__ = ["KIND", "MLPConfig", "TabularBatch", "mlp_init_bound", "mlp_shapes"]


@dataclass(frozen=True)
class MLPConfig:
    num_features: int
    num_classes: int
    hidden_sizes: tuple[int, ...] = (10, 10)
    dtype: DType = "float32"

    def __post_init__(self) -> None:
        for name in ("num_features", "num_classes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise SeqbatchError(f"{name} must be an integer >= 1, got {value!r}")
        if self.num_classes < 2:
            raise SeqbatchError(f"num_classes must be >= 2, got {self.num_classes}")
        sizes = self.hidden_sizes
        if isinstance(sizes, str | bytes) or not isinstance(sizes, tuple | list):
            raise SeqbatchError(f"hidden_sizes must be a list of layer widths, got {sizes!r:.60}")
        if not all(isinstance(h, int | np.integer) and not isinstance(h, bool) and h >= 1 for h in sizes):
            raise SeqbatchError(f"hidden_sizes must be integers >= 1, got {list(sizes)!r:.80}")
        # A tuple of Python ints: hashable (JAX caches compiled steps on the config) and JSON-ready.
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in sizes))
        if self.dtype not in ("float32", "float64"):
            raise SeqbatchError(f"dtype must be float32 or float64, got {self.dtype!r}")

    @property
    def widths(self) -> tuple[int, ...]:
        """Input, hidden and output widths: F, h_1, ..., h_k, C."""
        return (self.num_features, *self.hidden_sizes, self.num_classes)

    @property
    def num_layers(self) -> int:
        """Linear layers, the head included (what shared/checkpoint.py bounds by the tensor count / 2)."""
        return len(self.hidden_sizes) + 1

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MLPConfig:
        return config_from_dict(cls, d, {"num_features", "num_classes"})

    @classmethod
    def from_json(cls, text: str) -> MLPConfig:
        try:
            return cls.from_dict(json.loads(text))
        except (ValueError, RecursionError) as e:
            raise SeqbatchError(f"model config is not valid JSON: {e} (in {text[:200]!r})") from e


@dataclass(frozen=True)
class TabularBatch:
    """Rows of features and their labels, plain NumPy (a backend converts at its boundary)."""

    features: Float[np.ndarray, "batch features"]
    labels: Int[np.ndarray, " batch"]

    def __len__(self) -> int:
        return len(self.labels)


def mlp_shapes(cfg: MLPConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter's name and shape, in torch's state_dict order."""
    shapes: dict[str, tuple[int, ...]] = {}
    widths = cfg.widths
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
        shapes[f"layers.{i}.weight"] = (fan_out, fan_in)
        shapes[f"layers.{i}.bias"] = (fan_out,)
    return shapes


def mlp_init_bound(cfg: MLPConfig, name: str) -> float | None:
    """torch's nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias alike."""
    layer = int(name.split(".")[1])
    return float(cfg.widths[layer]) ** -0.5


KIND = Kind("mlp", MLPConfig, mlp_shapes, mlp_init_bound, select_metric="top1", higher_is_better=True)
