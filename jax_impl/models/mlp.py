"""The JAX port of the MLP (shared/kinds/mlp.py), written for ONE row of features and batched by
`jax.vmap` (mirrors reference_torch/models/mlp.py name for name); optax under `jit` trains it.

The torch reference feeds its steps through a DataLoader driven by shared/tabular.py's batches;
`loader` here reads the same index batches, so both backends see the same examples in the same order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache, partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from jax_impl.models.common import Model, Params, _dtype, _flatten, _torch_init, _variables, from_params, init_params
from jax_impl.train import (  # the classifier's train state serves this kind as it is
    COMPILATIONS,
    TrainState,
    guard,
    make_optimizer,
    merge,
    partition,
    restore_state,
    state_arrays,
    train_state,
)
from shared.config import TrainConfig
from shared.kinds.mlp import MLPConfig, TabularBatch
from shared.layout import parameter_shapes
from shared.tabular import TabularSplit

__all__ = ["MLP", "TrainState", "from_params", "gradients", "init", "loader", "logits", "loss", "losses",
           "model_of", "restore_state", "state_arrays", "train_state", "train_step"]

# What `loader` yields and `train_step` takes besides a TabularBatch: (features [B, F], labels [B]).
Pair = tuple[Float[np.ndarray, "batch features"], Int[np.ndarray, " batch"]]


class MLP(nn.Module):
    """`__call__(features[F]) -> logits[C]` for ONE row; parameters `layers/<i>/weight|bias` (torch's names)."""

    cfg: MLPConfig

    @nn.compact
    def __call__(self, x: Float[Array, " features"]) -> Float[Array, " classes"]:
        cfg = self.cfg
        shapes = parameter_shapes(cfg)

        def param(name: str) -> Array:
            return self.param(name.replace(".", "/"), _torch_init(cfg, name), shapes[name], _dtype(cfg))

        for i in range(cfg.num_layers):
            x = param(f"layers.{i}.weight") @ x + param(f"layers.{i}.bias")
            if i < cfg.num_layers - 1:
                x = jax.nn.relu(x)
        return x


def _logits(cfg: MLPConfig, params: Params, features: Float[Array, "batch features"]) -> Float[Array, "batch classes"]:
    """The one place the batch appears: vmap over rows, the parameters broadcast."""
    return jax.vmap(partial(MLP(cfg).apply, _variables(params)))(features)


def _losses(cfg: MLPConfig, params: Params, features: Array, labels: Array) -> Float[Array, " batch"]:
    return optax.softmax_cross_entropy_with_integer_labels(_logits(cfg, params, features), labels)


def init(cfg: MLPConfig, seed: int) -> Model:
    """torch nn.Linear's distribution (uniform on +-1/sqrt(fan_in); not its random stream), seeded."""
    return init_params(cfg, MLP(cfg), seed, np.zeros((cfg.num_features,), cfg.dtype))  # NumPy: x64 may be off yet


def loader(model: Model, split: TabularSplit, batches: Iterable[Int[np.ndarray, " batch"]]
           ) -> Iterator[Pair]:
    """`(features [B, F], labels [B])` per index batch of `batches`, NumPy in the model's dtype (the
    jitted step moves them to the device); the torch reference's DataLoader yields the same rows."""
    features = np.asarray(split.features, np.dtype(model.cfg.dtype))
    labels = np.asarray(split.labels, np.int32)
    for index in batches:
        yield features[index], labels[index]


def _args(model: Model, batch: TabularBatch | Pair) -> tuple[Array, Array]:
    """A TabularBatch or a `loader` pair as (features in the model's dtype, int32 labels)."""
    features, labels = (batch.features, batch.labels) if isinstance(batch, TabularBatch) else batch
    return jnp.asarray(features, _dtype(model.cfg)), jnp.asarray(labels, jnp.int32)


_jit_logits = jax.jit(_logits, static_argnums=0)
_jit_losses = jax.jit(_losses, static_argnums=0)


def logits(model: Model, batch: TabularBatch | Pair) -> Float[np.ndarray, "batch classes"]:
    return np.asarray(_jit_logits(model.cfg, model.params, _args(model, batch)[0]))


def losses(model: Model, batch: TabularBatch | Pair) -> Float[np.ndarray, " batch"]:
    """Per-example cross-entropy."""
    return np.asarray(_jit_losses(model.cfg, model.params, *_args(model, batch)))


def loss(model: Model, batch: TabularBatch | Pair) -> float:
    """Mean cross-entropy over the batch."""
    return float(losses(model, batch).mean())


@partial(jax.jit, static_argnums=0)
def _gradients(cfg: MLPConfig, params: Params, features: Array, labels: Array) -> Any:
    return jax.grad(lambda p: _losses(cfg, p, features, labels).mean())(params)


def gradients(model: Model, batch: TabularBatch | Pair) -> dict[str, np.ndarray]:
    """d(mean cross-entropy)/d(parameter), by name."""
    return {k: np.asarray(v) for k, v in _flatten(_gradients(model.cfg, model.params, *_args(model, batch))).items()}


@lru_cache(maxsize=32)
def _compiled_step(model_cfg: MLPConfig, train_cfg: TrainConfig) -> Callable[..., Any]:
    tx = make_optimizer(train_cfg)

    def step(params: Params, opt_state: Any, frozen: Any, features: Array, labels: Array) -> Any:
        COMPILATIONS["train_step"] += 1  # runs at trace time only
        trainable, fixed = partition(params, train_cfg.freeze)

        def mean_loss(p: Params) -> tuple[Array, Array]:
            out = _logits(model_cfg, merge(p, fixed), features)
            return optax.softmax_cross_entropy_with_integer_labels(out, labels).mean(), out

        (value, out), grads = jax.value_and_grad(mean_loss, has_aux=True)(trainable)
        grad_norm = optax.tree.norm(grads)
        updates, new_opt = tx.update(grads, opt_state, trainable)
        new_params = optax.apply_updates(trainable, updates)
        (trainable, opt_state), ok, frozen = guard(train_cfg, value, grad_norm, frozen, (new_params, new_opt),
                                                   (trainable, opt_state))
        correct = jnp.sum(jnp.argmax(out, axis=-1) == labels)
        return merge(trainable, fixed), opt_state, frozen, {"loss": value, "grad_norm": grad_norm, "ok": ok,
                                                           "correct": correct}

    return jax.jit(step, donate_argnums=(0, 1))


def train_step(state: TrainState, batch: TabularBatch | Pair) -> tuple[TrainState, dict[str, Any]]:
    """One update. Metrics (device scalars): `loss` (mean, before the update), `grad_norm`, `ok`
    (shared/guard.py), `correct` (examples the pre-update logits classify right)."""
    fn = _compiled_step(state.model.cfg, state.cfg)
    params, opt_state, frozen, metrics = fn(state.model.params, state.opt_state, state.frozen,
                                            *_args(state.model, batch))
    return dataclasses.replace(state, model=Model(state.model.cfg, params), opt_state=opt_state, frozen=frozen,
                               step=state.step + 1), metrics


def model_of(state: TrainState) -> Model:
    return state.model
