"""The per-example baseline: the seed tutorial's way of training, one sequence at a time.

Every example of a batch runs alone and unpadded through the per-example model (no vmap), its
gradient is added into an accumulator on the device, and one optimizer update is made from the
mean, so a step here is the same update as `jax_impl.train.train_step` on the same batch, only
B separate programs slower. Each distinct sequence length is a new shape and so a new
compilation (counted in `COMPILATIONS["per_example"]`). Mirrors reference_torch/per_example.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from jax_impl.models import Model, Params, SequenceClassifier, _flatten, _variables
from jax_impl.train import COMPILATIONS, TrainState, make_optimizer
from shared.batching import Batch
from shared.config import ModelConfig, TrainConfig


@lru_cache(maxsize=32)
def _accumulate_one(cfg: ModelConfig) -> Callable[..., Any]:
    """jit: add one example's loss and gradient into the running sums (donated, so in place)."""
    module = SequenceClassifier(cfg)
    train = cfg.dropout > 0

    def add(
        params: Params, grad_sum: Params, loss_sum: Array, tokens: Int[Array, " time"], label: Array, key: Array
    ) -> tuple[Params, Array]:
        COMPILATIONS["per_example"] += 1  # trace time only: once per sequence length
        length = jnp.asarray(tokens.shape[0], jnp.int32)  # unpadded: the length is the shape

        def example_loss(p: Params) -> Float[Array, ""]:
            rngs = {"dropout": key} if train else None
            out = module.apply(_variables(p), tokens, length, train=train, rngs=rngs)
            return optax.softmax_cross_entropy_with_integer_labels(out, label)

        loss, grad = jax.value_and_grad(example_loss)(params)
        return jax.tree.map(jnp.add, grad_sum, grad), loss_sum + loss

    return jax.jit(add, donate_argnums=(1, 2))


@lru_cache(maxsize=32)
def _update(train_cfg: TrainConfig) -> Callable[..., Any]:
    """jit: the mean gradient, its norm, and one optimizer update (as the batched step makes it)."""
    tx = make_optimizer(train_cfg)

    def update(params: Params, opt_state: Any, grad_sum: Params, loss_sum: Array, n: Array) -> Any:
        grads = jax.tree.map(lambda g: g / n, grad_sum)
        updates, opt_state = tx.update(grads, opt_state, params)
        metrics = {"loss": loss_sum / n, "grad_norm": optax.tree.norm(grads)}
        return optax.apply_updates(params, updates), opt_state, metrics

    return jax.jit(update, donate_argnums=(0, 1))


def _accumulated(model: Model, batch: Batch, key: Array) -> tuple[Params, Array]:
    add = _accumulate_one(model.cfg)
    grad_sum = jax.tree.map(jnp.zeros_like, model.params)
    loss_sum = jnp.zeros((), grad_sum["head"]["bias"].dtype)
    # One dropout key per example, drawn as the batched step draws them, so that even with dropout
    # example i sees the mask it would see inside the batch.
    keys = jax.random.split(key, len(batch))
    for i in range(len(batch)):
        tokens = batch.tokens[i, : int(batch.lengths[i])]  # no padding: a batch of one, its own shape
        grad_sum, loss_sum = add(model.params, grad_sum, loss_sum, tokens, batch.labels[i], keys[i])
    return grad_sum, loss_sum


def gradients(model: Model, batch: Batch) -> dict[str, np.ndarray]:
    """d(mean cross-entropy)/d(parameter) as the mean of per-example gradients (no dropout)."""
    eval_model = Model(dataclasses.replace(model.cfg, dropout=0.0), model.params)
    grad_sum, _ = _accumulated(eval_model, batch, jax.random.key(0))
    return {k: np.asarray(v) / len(batch) for k, v in _flatten(grad_sum).items()}


def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, Any]]:
    """One optimizer update from B per-example gradients; the same update as `train.train_step`.

    Metrics (device scalars): `loss` (mean, before the update) and `grad_norm` (before clipping).
    """
    key, sub = jax.random.split(state.key)
    grad_sum, loss_sum = _accumulated(state.model, batch, sub)
    n = jnp.asarray(len(batch), loss_sum.dtype)
    params, opt_state, metrics = _update(state.cfg)(state.model.params, state.opt_state, grad_sum, loss_sum, n)
    new = dataclasses.replace(state, model=Model(state.model.cfg, params), opt_state=opt_state, key=key)
    return dataclasses.replace(new, step=state.step + 1), metrics


def compilations() -> int:
    """Programs compiled for per-example steps so far in this process (one per config and length)."""
    return COMPILATIONS["per_example"]
