"""Frozen configuration: one ModelConfig and one TrainConfig, handed whole to each part.

Variants are made with `dataclasses.replace`, never with new keyword plumbing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from shared.errors import SeqbatchError

Cell = Literal["rnn_tanh", "rnn_relu", "lstm", "gru"]
CELLS: tuple[str, ...] = ("rnn_tanh", "rnn_relu", "lstm", "gru")
# Gate count per cell: rows of weight_ih are G * hidden (torch order i,f,g,o for LSTM; r,z,n for GRU).
GATES: dict[str, int] = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
Optimizer = Literal["sgd", "adam"]
DType = Literal["float32", "float64"]


def check_recurrent(cfg: Any, positive: tuple[str, ...]) -> None:
    """Validation every recurrent kind shares: cell, sizes, embedding, dropout, dtype."""
    if cfg.cell not in CELLS:
        raise SeqbatchError(f"unknown cell {cfg.cell!r}; choose one of {', '.join(CELLS)}")
    for name in positive:
        if int(getattr(cfg, name)) < 1:
            raise SeqbatchError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.embed_dim is not None and cfg.embed_dim < 1:
        raise SeqbatchError(f"embed_dim must be >= 1 or None (one-hot), got {cfg.embed_dim}")
    if not 0.0 <= cfg.dropout < 1.0:  # also false for nan
        raise SeqbatchError(f"dropout must be in [0, 1), got {cfg.dropout}")
    if cfg.dtype not in ("float32", "float64"):
        raise SeqbatchError(f"dtype must be float32 or float64, got {cfg.dtype!r}")


SEED_LIMIT = 2**32  # NumPy's and torch's seeds: 0 <= seed < 2**32


def check_seed(seed: int, flag: str = "seed") -> None:
    """Seeds are integers in [0, 2**32): NumPy refuses negatives, torch and JAX wrap larger ones."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) < SEED_LIMIT:
        raise SeqbatchError(f"{flag} must be an integer in [0, 2**32), got {seed!r}")


def config_from_dict(cls: type, d: dict[str, Any], required: set[str]) -> Any:
    """`cls(**d)` keeping only its fields; SeqbatchError naming what is missing or malformed."""
    if not isinstance(d, dict):
        raise SeqbatchError(f"model config is not valid: a JSON object is needed, got {type(d).__name__}")
    missing = required - d.keys()
    if missing:
        raise SeqbatchError(f"model config lacks {sorted(missing)}")
    known = {f.name for f in dataclasses.fields(cls)}
    try:
        check_field_types(cls, {k: v for k, v in d.items() if k in known})
    except SeqbatchError as e:
        raise SeqbatchError(f"model config is not valid: {e}") from e
    try:
        return cls(**{k: v for k, v in d.items() if k in known})
    except (ValueError, TypeError, OverflowError) as e:
        raise SeqbatchError(f"model config is not valid: {e}") from e


def check_field_types(cls: type, values: dict[str, Any]) -> None:
    """SeqbatchError naming the first field whose JSON value is not of its annotated type (int,
    float, bool, str, `X | None`). JSON holds `4.0` or `true` where an int belongs; the config's own
    checks would let them through (`4.0 == 4`), and a backend then fails deep inside torch or XLA.
    Literal fields are left to the config's own check, which names the choices."""
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        if name in hints and not _is_a(value, hints[name]):
            hint = hints[name]
            shown = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
            raise SeqbatchError(f"{name} is {value!r:.60}, not {shown}")


def _is_a(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_a(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint in (int, float):  # bool is an int to Python, not to a config; an int is a fine float
        return isinstance(value, (int, float) if hint is float else int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # a type this check does not know: the config's own validation decides


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a SequenceClassifier, the same on both backends.

    `embed_dim=None` means one-hot input (the seed tutorial's char-RNN).
    `dropout` acts between stacked recurrent layers in training only (as torch's `nn.LSTM`).
    """

    vocab_size: int
    num_classes: int
    cell: Cell = "lstm"
    num_layers: int = 1
    bidirectional: bool = False
    hidden_size: int = 128
    embed_dim: int | None = None
    dropout: float = 0.0
    dtype: DType = "float32"

    def __post_init__(self) -> None:
        check_recurrent(self, ("vocab_size", "num_classes", "num_layers", "hidden_size"))
        if self.num_classes < 2:
            raise SeqbatchError(f"num_classes must be >= 2, got {self.num_classes}")

    @property
    def gates(self) -> int:
        return GATES[self.cell]

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def input_size(self) -> int:
        """Width of the first recurrent layer's input: the embedding, or the one-hot vocabulary."""
        return self.vocab_size if self.embed_dim is None else self.embed_dim

    @property
    def feature_size(self) -> int:
        """Width the head reads: the last layer's final state, both directions concatenated."""
        return self.hidden_size * self.directions

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return config_from_dict(cls, d, {"vocab_size", "num_classes"})

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        try:
            return cls.from_dict(json.loads(text))
        except (ValueError, TypeError, AttributeError, RecursionError) as e:  # bad JSON, a non-object, ...
            raise SeqbatchError(f"model config is not valid: {e} (in {text[:200]!r})") from e


@dataclass(frozen=True)
class TrainConfig:
    """How to train: optimizer, schedule length, clipping, batching, seed."""

    optimizer: Optimizer = "sgd"
    lr: float = 0.15
    momentum: float = 0.9
    batch_size: int = 512
    steps: int | None = 1000
    epochs: int | None = None
    clip_norm: float | None = None
    seed: int = 0
    sampler: Literal["random", "epoch", "balanced", "uniform"] = "random"
    eval_every: int = 100
    # The divergence guard (shared/guard.py): a step whose loss or gradient norm is not finite, or
    # whose mean loss exceeds `max_loss` (nats; None: no bound), is not applied. "stop" freezes the
    # state there and the run ends (exit 3); "skip" drops that batch and trains on.
    on_nan: Literal["stop", "skip"] = "stop"
    max_loss: float | None = 100.0
    # Parameters (shared/layout.py names) that training never moves (the classifier's train_state on
    # both backends): no gradient, no optimizer state, and outside the clipping norm, which is over
    # the parameters that have gradients, as torch's clip_grad_norm_ computes it.
    freeze: tuple[str, ...] = ()
    # Where the initial weights come from: "library", each backend's own seeded init (the two draw
    # different numbers from the same distributions), or "shared", drawn once in NumPy from those
    # distributions (shared/layout.py `shared_init`), so a torch and a jax run with one seed start
    # from identical weights.
    init: Literal["library", "shared"] = "library"
    # Per-class loss weights (shared/imbalance.py), () for none: the loss is torch's weighted mean
    # sum w[y] * ce / sum w[y] over the batch, on both backends.
    class_weights: tuple[float, ...] = ()
    # Data parallel in one program (JAX, the classifier): the batch axis sharded over this many
    # devices (jax_impl/parallel.py); the model and every figure stay those of one device.
    devices: int = 1

    def __post_init__(self) -> None:
        if self.init not in ("library", "shared"):
            raise SeqbatchError(f"init must be library or shared, got {self.init!r}")
        if self.optimizer not in ("sgd", "adam"):
            raise SeqbatchError(f"optimizer must be sgd or adam, got {self.optimizer!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):  # `nan <= 0` is False: test the good case
            raise SeqbatchError(f"lr must be > 0, got {self.lr} (a finite number)")
        if self.batch_size < 1:
            raise SeqbatchError(f"batch_size must be >= 1, got {self.batch_size}")
        if (self.steps is None) == (self.epochs is None):
            raise SeqbatchError("give exactly one of steps and epochs")
        for name in ("steps", "epochs", "eval_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SeqbatchError(f"{name} must be >= 1, got {value}")
        if not (math.isfinite(self.momentum) and 0 <= self.momentum < 1):
            raise SeqbatchError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.sampler not in ("random", "epoch", "balanced", "uniform"):
            raise SeqbatchError(f"sampler must be random, epoch, balanced or uniform, got {self.sampler!r}")
        weights = tuple(float(w) for w in self.class_weights)
        if not all(math.isfinite(w) and w > 0 for w in weights):
            raise SeqbatchError(f"class_weights must be > 0 (finite), got {self.class_weights!r}")
        object.__setattr__(self, "class_weights", weights)
        if not isinstance(self.devices, int) or self.devices < 1:
            raise SeqbatchError(f"devices must be an int >= 1, got {self.devices!r}")
        if self.clip_norm is not None and not (math.isfinite(self.clip_norm) and self.clip_norm > 0):
            raise SeqbatchError(f"clip_norm must be > 0, got {self.clip_norm} (a finite number)")
        if self.on_nan not in ("stop", "skip"):
            raise SeqbatchError(f"on_nan must be stop or skip, got {self.on_nan!r}")
        if self.max_loss is not None and not (math.isfinite(self.max_loss) and self.max_loss > 0):
            raise SeqbatchError(f"max_loss must be > 0, got {self.max_loss} (a finite number)")
        if isinstance(self.freeze, str) or not all(isinstance(n, str) for n in self.freeze):
            raise SeqbatchError(f"freeze must be parameter names, got {self.freeze!r}")
        object.__setattr__(self, "freeze", tuple(self.freeze))  # hashable: compiled steps are cached on it
        check_seed(self.seed)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)
