"""The backend contract: what `reference_torch` and `jax_impl` both export at package level.

The command line and the parity harness import a backend by name and never branch on it again.
What crosses the boundary is NumPy (a `Batch` in, arrays and floats out).
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from shared.batching import Batch
from shared.config import TrainConfig
from shared.errors import SeqbatchError

BACKENDS: dict[str, str] = {"torch": "reference_torch", "jax": "jax_impl"}
# The names every backend package exports (each __init__ derives __all__ from this). Functions taking
# a model, a config or a train state work for every model kind (they look the kind up); `logits`,
# `losses`, `loss` and `gradients` are the classifier's: another kind's are in `<backend>.models.<kind>`
# (same names, same meaning, plus the carried state for a language model; see `kind_module`).
CONTRACT: tuple[str, ...] = ("name", "init", "from_params", "to_params", "config_of", "load", "save", "logits",
                             "losses", "loss", "gradients", "train_state", "train_step", "model_of",
                             "state_arrays", "restore_state",
                             "per_example_step", "per_example_gradients")
TORCH_KERNEL_ENV = "SEQBATCH_TORCH_KERNEL"  # packed (default) or padded: see reference_torch/models.py


@contextlib.contextmanager
def torch_kernel(name: str | None) -> Iterator[None]:
    """Torch models built inside use kernel `name` (None: leave the environment as it is); restored after."""
    if name is None:
        yield
        return
    saved = os.environ.get(TORCH_KERNEL_ENV)
    os.environ[TORCH_KERNEL_ENV] = name
    try:
        yield
    finally:
        if saved is None:
            del os.environ[TORCH_KERNEL_ENV]
        else:
            os.environ[TORCH_KERNEL_ENV] = saved


class Backend(Protocol):
    """Module-level functions of a backend package. `Model` and `State` are the backend's own types.

    `cfg` is the config of any model kind (ModelConfig, LMConfig, ...); `batch` in `train_step` is
    that kind's batch type. `logits` ... `gradients` here are the classifier's (a `Batch` in).
    """

    name: str

    def init(self, cfg: Any, seed: int) -> Any: ...
    def from_params(self, cfg: Any, params: dict[str, np.ndarray]) -> Any: ...
    def to_params(self, model: Any) -> dict[str, np.ndarray]: ...
    def config_of(self, model: Any) -> Any: ...
    def load(self, path: str | Path) -> Any: ...
    def save(self, model: Any, path: str | Path, *, vocab: Any = None, labels: list[str] | None = None) -> None: ...
    def logits(self, model: Any, batch: Batch) -> np.ndarray: ...
    def losses(self, model: Any, batch: Batch) -> np.ndarray: ...
    def loss(self, model: Any, batch: Batch) -> float: ...
    def gradients(self, model: Any, batch: Batch) -> dict[str, np.ndarray]: ...
    def train_state(self, model: Any, train_cfg: TrainConfig) -> Any: ...
    def train_step(self, state: Any, batch: Any) -> tuple[Any, dict[str, Any]]: ...
    def model_of(self, state: Any) -> Any: ...
    def state_arrays(self, state: Any) -> dict[str, np.ndarray]: ...
    def restore_state(self, model: Any, train_cfg: TrainConfig, arrays: dict[str, np.ndarray], step: int) -> Any: ...


def kind_module(backend: Backend, cfg_or_kind: Any) -> Any:
    """The backend's file for a model kind (`reference_torch.models.lm`, ...), for a config or kind name."""
    from shared.kinds import backend_module

    return backend_module(BACKENDS[backend.name], cfg_or_kind)


def backend_file(name: str, module: str) -> Any:
    """A backend's own module by command-line name, e.g. ("torch", "parallel") -> reference_torch.parallel."""
    get_backend(name)  # the one error for an unknown or missing backend
    return importlib.import_module(f"{BACKENDS[name]}.{module}")


def get_backend(name: str) -> Backend:
    """Import a backend package by its command-line name (`torch` or `jax`)."""
    if name not in BACKENDS:
        raise SeqbatchError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    try:
        module = importlib.import_module(BACKENDS[name])
    except ImportError as e:
        extra = "torch" if name == "torch" else "jax"
        raise SeqbatchError(f"the {name} backend is not installed ({e}); pip install 'seqbatch[{extra}]'") from e
    return module  # type: ignore[return-value]
