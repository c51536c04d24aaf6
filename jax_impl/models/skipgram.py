"""The JAX port of the skip-gram model, written for ONE (centre, context, negatives) triple and
batched by `jax.vmap` (mirrors reference_torch/models/skipgram.py name for name).

DyNet's minibatching in the source maps here to: `lookup_batch` -> row gathers inside the
per-triple function, batched by `vmap`; broadcasting an unbatched parameter -> `in_axes=None` for
the tables; the per-element loss -> `jax.nn.log_sigmoid`; `sum_batches` -> `.mean()` over the batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from functools import lru_cache, partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float

from jax_impl.models.common import Model, Params, _dtype, _flatten, _torch_init, _variables, from_params, init_params
from jax_impl.train import (  # the classifier's train state serves this kind as it is
    COMPILATIONS,
    TrainState,
    guard,
    make_optimizer,
    restore_state,
    state_arrays,
    train_state,
)
from shared.config import TrainConfig
from shared.kinds.skipgram import SkipgramBatch, SkipgramConfig
from shared.layout import parameter_shapes

__all__ = ["SkipGram", "TrainState", "from_params", "gradients", "init", "logits", "loss", "losses", "model_of",
           "restore_state", "sparse_step", "state_arrays", "train_state", "train_step", "training_threads"]


class SkipGram(nn.Module):
    """`__call__(centre, context, negatives[K]) -> scores[1 + K]` for ONE triple; torch's names."""

    cfg: SkipgramConfig

    @nn.compact
    def __call__(self, centre: Array, context: Array, negatives: Array) -> Float[Array, " k1"]:
        cfg = self.cfg
        shapes = parameter_shapes(cfg)

        def param(name: str) -> Array:
            return self.param(name.replace(".", "/"), _torch_init(cfg, name), shapes[name], _dtype(cfg))

        v = param("in_embed.weight")[centre]  # (D,)
        u = param("out_embed.weight")[jnp.concatenate([context[None], negatives])]  # (1 + K, D)
        return u @ v


def pair_loss(scores: Float[Array, " k1"]) -> Array:
    """-log sigma(context score) - sum_k log sigma(-negative score), for one triple."""
    return -jax.nn.log_sigmoid(scores[0]) - jnp.sum(jax.nn.log_sigmoid(-scores[1:]))


def _scores(cfg: SkipgramConfig, params: Params, centre: Array, context: Array, negatives: Array) -> Array:
    """The one place the batch appears: vmap over triples, the tables broadcast (in_axes None)."""
    apply = partial(SkipGram(cfg).apply, _variables(params))
    return jax.vmap(apply)(centre, context, negatives)  # (B, 1 + K)


def _losses(cfg: SkipgramConfig, params: Params, centre: Array, context: Array, negatives: Array) -> Array:
    return jax.vmap(pair_loss)(_scores(cfg, params, centre, context, negatives))


def init(cfg: SkipgramConfig, seed: int) -> Model:
    """in_embed uniform on [-0.5/D, 0.5/D], out_embed zeros (word2vec's), seeded."""
    one = jnp.zeros((), jnp.int32)
    return init_params(cfg, SkipGram(cfg), seed, one, one, jnp.zeros((1,), jnp.int32))


def _args(batch: SkipgramBatch) -> tuple[Array, Array, Array]:
    return jnp.asarray(batch.centre), jnp.asarray(batch.context), jnp.asarray(batch.negatives)


_jit_scores = jax.jit(_scores, static_argnums=0)
_jit_losses = jax.jit(_losses, static_argnums=0)


def logits(model: Model, batch: SkipgramBatch) -> Float[np.ndarray, "batch k1"]:
    """The scores u . v_c of the context (column 0) and the negatives."""
    return np.asarray(_jit_scores(model.cfg, model.params, *_args(batch)))


def losses(model: Model, batch: SkipgramBatch) -> Float[np.ndarray, " batch"]:
    return np.asarray(_jit_losses(model.cfg, model.params, *_args(batch)))


def loss(model: Model, batch: SkipgramBatch) -> float:
    return float(losses(model, batch).mean())


@partial(jax.jit, static_argnums=0)
def _gradients(cfg: SkipgramConfig, params: Params, centre: Array, context: Array, negatives: Array) -> Any:
    return jax.grad(lambda p: _losses(cfg, p, centre, context, negatives).mean())(params)


def gradients(model: Model, batch: SkipgramBatch) -> dict[str, np.ndarray]:
    """d(mean loss)/d(parameter), dense, by name."""
    return {k: np.asarray(v) for k, v in _flatten(_gradients(model.cfg, model.params, *_args(batch))).items()}


@lru_cache(maxsize=32)
def _compiled_step(model_cfg: SkipgramConfig, train_cfg: TrainConfig) -> Callable[..., Any]:
    tx = make_optimizer(train_cfg)

    def step(params: Params, opt_state: Any, frozen: Any, centre: Array, context: Array, negatives: Array) -> Any:
        COMPILATIONS["train_step"] += 1  # runs at trace time only
        value, grads = jax.value_and_grad(lambda p: _losses(model_cfg, p, centre, context, negatives).mean())(params)
        grad_norm = optax.tree.norm(grads)
        updates, new_opt = tx.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        (params, opt_state), ok, frozen = guard(train_cfg, value, grad_norm, frozen, (new_params, new_opt),
                                                (params, opt_state))
        return params, opt_state, frozen, {"loss": value, "grad_norm": grad_norm, "ok": ok}

    return jax.jit(step, donate_argnums=(0, 1))


def train_step(state: TrainState, batch: SkipgramBatch) -> tuple[TrainState, dict[str, Any]]:
    """One update. Metrics (device scalars): `loss` (mean, before the update), `grad_norm`, `ok`."""
    fn = _compiled_step(state.model.cfg, state.cfg)
    params, opt_state, frozen, metrics = fn(state.model.params, state.opt_state, state.frozen, *_args(batch))
    return dataclasses.replace(state, model=Model(state.model.cfg, params), opt_state=opt_state, frozen=frozen,
                               step=state.step + 1), metrics


def _row_loss(v: Float[Array, " dim"], u: Float[Array, "k1 dim"]) -> Array:
    """One triple's loss from its gathered rows: v_c and (u_o, u_1..u_K)."""
    return pair_loss(u @ v)


@lru_cache(maxsize=32)
def _compiled_sparse(train_cfg: TrainConfig) -> Callable[..., Any]:
    def step(params: Params, frozen: Any, centre: Array, context: Array, negatives: Array, lr: Array) -> Any:
        COMPILATIONS["train_step"] += 1  # runs at trace time only
        w_in, w_out = params["in_embed"]["weight"], params["out_embed"]["weight"]
        rows = jnp.concatenate([context[:, None], negatives], axis=1)  # (B, 1 + K)
        v, u = w_in[centre], w_out[rows]
        per_pair, (grad_v, grad_u) = jax.vmap(jax.value_and_grad(_row_loss, argnums=(0, 1)))(v, u)
        loss = per_pair.mean()
        grad_norm = jnp.sqrt(jnp.sum(grad_v**2) + jnp.sum(grad_u**2)) / centre.shape[0]
        (scale,), ok, frozen = guard(train_cfg, loss, grad_norm, frozen, (lr,), (jnp.zeros_like(lr),))
        grad_v, grad_u = jnp.where(ok, grad_v, 0), jnp.where(ok, grad_u, 0)  # a bad step's NaN stays out
        w_in = w_in.at[centre].add(-scale * grad_v)
        w_out = w_out.at[rows.reshape(-1)].add(-scale * grad_u.reshape(-1, grad_u.shape[-1]))
        new = {"in_embed": {"weight": w_in}, "out_embed": {"weight": w_out}}
        return new, frozen, {"loss": loss, "grad_norm": grad_norm, "ok": ok}

    return jax.jit(step, donate_argnums=(0,))


def sparse_step(state: TrainState, batch: SkipgramBatch, lr: float) -> tuple[TrainState, dict[str, Any]]:
    """word2vec's update: plain SGD at rate `lr` on each pair's loss, applied to the rows the batch
    touches only (`.at[rows].add`, so a row met twice gets both updates), i.e. `lr * B` times the
    mean loss's gradient; the gradient is `jax.grad` of ONE triple's loss with respect to its
    gathered rows, `vmap`ped. Metrics (device scalars): `loss` (mean, before the update),
    `grad_norm` (of the per-pair row gradients), `ok` (shared/guard.py)."""
    fn = _compiled_sparse(state.cfg)
    lr_arr = jnp.asarray(lr, _dtype(state.model.cfg))
    params, frozen, metrics = fn(state.model.params, state.frozen, *_args(batch), lr_arr)
    return dataclasses.replace(state, model=Model(state.model.cfg, params), frozen=frozen,
                               step=state.step + 1), metrics


@contextlib.contextmanager
def training_threads() -> Iterator[None]:
    """Nothing to change: XLA's CPU thread pool shares the cores with the batch generator without
    the stalls torch's OpenMP barriers have (reference_torch/models/skipgram.py)."""
    yield


def model_of(state: TrainState) -> Model:
    return state.model
