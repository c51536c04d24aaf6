"""The model kinds: one registry, one file per kind in `shared/kinds/` and in each backend's `models/`.

A kind names its config class, its parameter layout (PyTorch state_dict names and shapes), how it
is evaluated and which validation metric selects the best checkpoint. The command line, the
checkpoint format and the parity harness look the kind up here instead of branching on it; a new
kind is `shared/kinds/<kind>.py`, `reference_torch/models/<kind>.py`, `jax_impl/models/<kind>.py`
and one line in `KINDS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

from shared.errors import SeqbatchError


@dataclass(frozen=True)
class Kind:
    """What the rest of seqbatch needs to know about one model kind."""

    name: str
    config: type  # a frozen dataclass with to_json / from_dict
    parameter_shapes: Callable[[Any], dict[str, tuple[int, ...]]]
    init_bound: Callable[[Any, str], float | None]
    select_metric: str  # the validation metric that picks the best checkpoint
    higher_is_better: bool


@cache
def _registry() -> dict[str, Kind]:
    # Imported here, not at module level: each kind's module imports shared.layout, which imports us.
    from shared.kinds import classifier, lm, mlp, skipgram

    return {k.name: k for k in (classifier.KIND, lm.KIND, skipgram.KIND, mlp.KIND)}


KIND_NAMES: tuple[str, ...] = ("classifier", "lm", "skipgram", "mlp")


def get_kind(name: str) -> Kind:
    kinds = _registry()
    if name not in kinds:
        raise SeqbatchError(f"unknown model kind {name!r}; known: {', '.join(kinds)}")
    return kinds[name]


def kind_of(cfg: Any) -> Kind:
    """The kind whose config class `cfg` is an instance of."""
    for kind in _registry().values():
        if isinstance(cfg, kind.config):
            return kind
    raise SeqbatchError(f"{type(cfg).__name__} is not the config of any model kind")


def backend_module(package: str, cfg_or_kind: Any) -> ModuleType:
    """`<package>.models.<kind>` for a config (or a kind name): where a backend keeps that kind's model."""
    name = cfg_or_kind if isinstance(cfg_or_kind, str) else kind_of(cfg_or_kind).name
    return importlib.import_module(f"{package}.models.{name}")


@dataclass(frozen=True)
class Dispatch:
    """A backend's functions that serve every model kind, each looking the kind up and calling
    `<package>.models.<kind>`: both backends build theirs here, so the lookup is written once."""

    package: str
    config_of: Callable[[Any], Any]

    def init(self, cfg: Any, seed: int) -> Any:
        """A fresh model of `cfg`'s kind with the library's default initialisation, seeded."""
        return backend_module(self.package, cfg).init(cfg, seed)

    def from_params(self, cfg: Any, params: dict[str, Any]) -> Any:
        """A model of `cfg`'s kind holding named arrays in the shared layout."""
        return backend_module(self.package, cfg).from_params(cfg, params)

    def train_state(self, model: Any, train_cfg: Any, **kw: Any) -> Any:
        """A train state for `model` of any kind (its optimizer from `train_cfg`, a TrainConfig)."""
        return backend_module(self.package, self.config_of(model)).train_state(model, train_cfg, **kw)

    def train_step(self, state: Any, batch: Any) -> tuple[Any, dict[str, Any]]:
        """One update; `batch` is the kind's batch type. Metrics: `loss`, `grad_norm`."""
        return backend_module(self.package, self.config_of(state.model)).train_step(state, batch)

    def state_arrays(self, state: Any) -> dict[str, Any]:
        """What a resumed run needs beyond the weights (optimizer, RNG, carried state), as named arrays."""
        return backend_module(self.package, self.config_of(state.model)).state_arrays(state)

    def restore_state(self, model: Any, train_cfg: Any, arrays: dict[str, Any], step: int) -> Any:
        """The train state `state_arrays` saved, around `model` (the saved weights), at `step`."""
        return backend_module(self.package, self.config_of(model)).restore_state(model, train_cfg, arrays, step)
