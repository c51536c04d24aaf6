"""The JAX port of the skip-gram model, written for ONE (centre, context, negatives) triple and
batched by `jax.vmap` (mirrors reference_torch/models/skipgram.py name for name).

DyNet's minibatching in the source maps here to: `lookup_batch` -> row gathers inside the
per-triple function, batched by `vmap`; broadcasting an unbatched parameter -> `in_axes=None` for
the tables; the per-element loss -> `jax.nn.log_sigmoid`; `sum_batches` -> `.mean()` over the batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
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

__all__ = ["SkipGram", "TrainState", "from_params", "gradients", "host_metrics", "init", "logits", "loss", "losses",
           "model_of", "restore_state", "sparse_step", "sparse_steps", "state_arrays", "train_state", "train_step",
           "training_threads"]


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


def _args(batch: SkipgramBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The batch's ids as NumPy int32: they go straight into the jitted call (its C++ path moves them);
    a jnp.asarray each went through a dispatched device_put, ~110 us apiece, a third of a step."""
    return tuple(np.asarray(x, np.int32) for x in (batch.centre, batch.context, batch.negatives))  # type: ignore[return-value]


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
    def step(carry: tuple[tuple[Array, Array], Any], x: tuple[Array, Array, Array, Array]) -> Any:
        (w_in, w_out), frozen = carry
        centre, context, negatives, lr = x
        rows = jnp.concatenate([context[:, None], negatives], axis=1)  # (B, 1 + K)
        v, u = w_in[centre], w_out[rows]
        per_pair, (grad_v, grad_u) = jax.vmap(jax.value_and_grad(_row_loss, argnums=(0, 1)))(v, u)
        loss = per_pair.mean()
        grad_norm = jnp.sqrt(jnp.sum(grad_v**2) + jnp.sum(grad_u**2)) / centre.shape[0]
        _, ok, frozen = guard(train_cfg, loss, grad_norm, frozen, (), ())

        def apply(tables: tuple[Array, Array]) -> tuple[Array, Array]:
            w_in, w_out = tables
            return (w_in.at[centre].add(-lr * grad_v),
                    w_out.at[rows.reshape(-1)].add(-lr * grad_u.reshape(-1, grad_u.shape[-1])))

        # A bad step leaves the tables as they were (its NaN never reaches them); lax.cond costs
        # nothing on good steps, where two jnp.where over the gradients cost a pass each.
        tables = jax.lax.cond(ok, apply, lambda tables: tables, (w_in, w_out))
        return (tables, frozen), jnp.stack([loss, grad_norm, ok.astype(loss.dtype)])

    def steps(params: Params, frozen: Any, centre: Array, context: Array, negatives: Array, lr: Array) -> Any:
        COMPILATIONS["train_step"] += 1  # runs at trace time only
        tables = (params["in_embed"]["weight"], params["out_embed"]["weight"])
        ((w_in, w_out), frozen), packed = jax.lax.scan(step, (tables, frozen), (centre, context, negatives, lr))
        return {"in_embed": {"weight": w_in}, "out_embed": {"weight": w_out}}, frozen, packed

    return jax.jit(steps, donate_argnums=(0,))


class StepMetrics(Mapping[str, Any]):
    """`loss`, `grad_norm`, `ok` of one step: row `row` of a group's packed [S, 3] device array,
    read with one transfer per group (`host_metrics` fetches many groups' at once)."""

    KEYS = ("loss", "grad_norm", "ok")

    def __init__(self, packed: Array, row: int) -> None:
        self.packed, self.row = packed, row
        self._host: np.ndarray | None = None

    def __getitem__(self, key: str) -> Any:
        if self._host is None:
            self._host = np.asarray(self.packed)[self.row]
        value = self._host[self.KEYS.index(key)]
        return bool(value) if key == "ok" else value

    def __iter__(self) -> Iterator[str]:
        return iter(self.KEYS)

    def __len__(self) -> int:
        return len(self.KEYS)


def sparse_steps(state: TrainState, batches: Sequence[SkipgramBatch], lrs: Sequence[float]
                 ) -> tuple[TrainState, list[StepMetrics]]:
    """`sparse_step` on each batch in turn (equal sizes), in ONE jitted call: a `lax.scan` over the
    batches, 1.3x the throughput of a call per batch at 1,024 pairs (measured on a 2-core CPU)."""
    fn = _compiled_sparse(state.cfg)
    lr_arr = np.asarray(lrs, np.dtype(state.model.cfg.dtype))
    ids = [np.stack(column) for column in zip(*map(_args, batches), strict=True)]
    params, frozen, packed = fn(state.model.params, state.frozen, *ids, lr_arr)
    return (dataclasses.replace(state, model=Model(state.model.cfg, params), frozen=frozen,
                                step=state.step + len(batches)),
            [StepMetrics(packed, i) for i in range(len(batches))])


def sparse_step(state: TrainState, batch: SkipgramBatch, lr: float) -> tuple[TrainState, StepMetrics]:
    """word2vec's update: plain SGD at rate `lr` on each pair's loss, applied to the rows the batch
    touches only (`.at[rows].add`, so a row met twice gets both updates), i.e. `lr * B` times the
    mean loss's gradient; the gradient is `jax.grad` of ONE triple's loss with respect to its
    gathered rows, `vmap`ped. Metrics: `loss` (mean, before the update), `grad_norm` (of the
    per-pair row gradients), `ok` (shared/guard.py)."""
    state, metrics = sparse_steps(state, [batch], [lr])
    return state, metrics[0]


def host_metrics(pending: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Many steps' metrics to Python floats in one device-to-host transfer (one per value costs ~15 us,
    10 % of a skip-gram step)."""
    groups = {id(m.packed): m.packed for m in pending if isinstance(m, StepMetrics)}
    host = dict(zip(groups, jax.device_get(list(groups.values())), strict=True))
    dense = jax.device_get([m for m in pending if not isinstance(m, StepMetrics)])  # Adam's train_step
    out, rest = [], iter(dense)
    for m in pending:
        if isinstance(m, StepMetrics):
            row = host[id(m.packed)][m.row]
        else:
            values = next(rest)
            row = [values[k] for k in StepMetrics.KEYS]
        out.append(dict(zip(StepMetrics.KEYS, map(float, row), strict=True)))
    return out


@contextlib.contextmanager
def training_threads() -> Iterator[Callable[[bool], None]]:
    """Yields `share(producing)` like the reference's, which does nothing here: XLA's CPU thread
    pool shares the cores with the batch generator without the stalls torch's OpenMP barriers have
    (reference_torch/models/skipgram.py)."""

    def share(producing: bool) -> None:
        del producing

    yield share


def model_of(state: TrainState) -> Model:
    return state.model
