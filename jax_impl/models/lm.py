"""The JAX port of the language model, written for ONE sequence and batched by `jax.vmap`.

Mirrors reference_torch/models/lm.py name for name. Each layer is the classifier's masked
`lax.scan` (jax_impl/models/common.py), started from the carried state and emitting h at every
step; the head reads every step. Past a row's length the carry stays as it was, so the state
returned is the one after the last real step, as torch's packed `h_n`. The carried state crosses
the boundary as NumPy `[layers, B, H]` (h, and c for an LSTM); training keeps it in the TrainState
on the device. No gradient flows into it: it enters the step as data (truncated backpropagation).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from jax_impl import parallel
from jax_impl.models.common import (
    Model,
    Params,
    _dtype,
    _flatten,
    _torch_init,
    _variables,
    enable_dtype,
    from_params,
    init_params,
    run_direction,
)
from jax_impl.train import (
    COMPILATIONS,
    guard,
    key_arrays,
    make_optimizer,
    optimizer_arrays,
    restored,
)
from shared.config import TrainConfig
from shared.errors import SeqbatchError
from shared.host_memory import keep_freed_host_memory
from shared.kinds.lm import Carry, LMBatch, LMConfig
from shared.layout import parameter_shapes, suffix

__all__ = ["CharLM", "TrainState", "apply_batch", "from_params", "gradients", "init", "logits", "loss", "losses",
           "model_of", "restore_state", "state_arrays", "train_state", "train_step"]

JaxCarry = tuple[Array, ...]  # (h,) or (h, c): [layers, hidden] per example, [layers, B, hidden] batched


class CharLM(nn.Module):
    """`__call__(tokens[T], length, carry) -> (logits[T, V], carry)` for ONE sequence; torch's names."""

    cfg: LMConfig

    @nn.compact
    def __call__(
        self, tokens: Int[Array, " time"], length: Int[Array, ""], carry: JaxCarry, *, train: bool = False
    ) -> tuple[Float[Array, "time vocab"], JaxCarry]:
        # This code is effectively for a single example; the batch comes from vmap in `apply_batch`.
        cfg = self.cfg
        dtype = _dtype(cfg)
        shapes = parameter_shapes(cfg)

        def param(name: str) -> Array:
            return self.param(name.replace(".", "/"), _torch_init(cfg, name), shapes[name], dtype)

        def dropout(x: Array) -> Array:
            return nn.Dropout(cfg.dropout, deterministic=False)(x) if train and cfg.dropout > 0 else x

        valid = jnp.arange(tokens.shape[0]) < length  # derived mask, (T,)
        x: Array = tokens  # layer 0 reads token ids (one-hot: a row gather) or their embeddings
        if cfg.embed_dim is not None:
            with jax.named_scope("input"):  # named scopes: what `seqbatch profile-step` groups the step by
                x = param("embedding.weight")[tokens]  # (T, E)
        finals = []
        for k in range(cfg.num_layers):
            s = suffix(k, False)
            weights = tuple(param(f"rnn.{w}{s}") for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            start = (carry[0][k], carry[1][k]) if cfg.cell == "lstm" else carry[0][k]
            with jax.named_scope("recurrence"):
                x, final = run_direction(cfg.cell, weights, x, valid, reverse=False, init=start)  # x: (T, H)
            finals.append(final if cfg.cell == "lstm" else (final,))
            if k < cfg.num_layers - 1:
                x = dropout(x)  # between layers, as torch's nn.LSTM(dropout=...)
        new = tuple(jnp.stack([f[i] for f in finals]) for i in range(cfg.state_count))  # (L, H) each
        with jax.named_scope("head"):
            return dropout(x) @ param("head.weight").T + param("head.bias"), new  # (T, V): the head at every step


def init(cfg: LMConfig, seed: int) -> Model:
    """Fresh parameters with PyTorch's default distributions (not its random stream), seeded."""
    enable_dtype(cfg)  # before the zeros below: float64 needs x64 on
    zeros = tuple(jnp.zeros((cfg.num_layers, cfg.hidden_size), _dtype(cfg)) for _ in range(cfg.state_count))
    return init_params(cfg, CharLM(cfg), seed, jnp.zeros((1,), jnp.int32), jnp.asarray(1), zeros)


def apply_batch(
    cfg: LMConfig,
    params: Params,
    inputs: Int[Array, "batch time"],
    lengths: Int[Array, " batch"],
    carry: JaxCarry,
    dropout_key: Array | None = None,
) -> tuple[Float[Array, "batch time vocab"], JaxCarry]:
    """The one place the batch appears: vmap the per-example model over rows (carry: axis 1, torch's)."""
    module = CharLM(cfg)
    variables = _variables(params)
    if dropout_key is None:
        return jax.vmap(partial(module.apply, variables), in_axes=(0, 0, 1), out_axes=(0, 1))(inputs, lengths, carry)
    keys = jax.random.split(dropout_key, inputs.shape[0])  # one dropout mask per row

    def per_example_train(t: Array, n: Array, c: JaxCarry, key: Array) -> Any:
        return module.apply(variables, t, n, c, train=True, rngs={"dropout": key})

    return jax.vmap(per_example_train, in_axes=(0, 0, 1, 0), out_axes=(0, 1))(inputs, lengths, carry, keys)


def batch_token_losses(
    cfg: LMConfig, params: Params, inputs: Array, targets: Array, lengths: Array, carry: JaxCarry,
    dropout_key: Array | None = None,
) -> tuple[Float[Array, "batch time"], JaxCarry]:
    """Cross-entropy per position, 0 past each row's length, and the new state."""
    out, new = apply_batch(cfg, params, inputs, lengths, carry, dropout_key)
    mask = jnp.arange(inputs.shape[1])[None, :] < lengths[:, None]
    with jax.named_scope("loss"):
        return jnp.where(mask, optax.softmax_cross_entropy_with_integer_labels(out, targets), 0.0), new


def _mean_loss(cfg: LMConfig, params: Params, inputs: Array, targets: Array, lengths: Array, carry: JaxCarry,
               dropout_key: Array | None = None) -> tuple[Array, JaxCarry]:
    per_token, new = batch_token_losses(cfg, params, inputs, targets, lengths, carry, dropout_key)
    return per_token.sum() / lengths.sum(), new


@partial(jax.jit, static_argnums=0)
def _logits(cfg: LMConfig, params: Params, inputs: Array, lengths: Array, carry: JaxCarry) -> Any:
    return apply_batch(cfg, params, inputs, lengths, carry)


@partial(jax.jit, static_argnums=0)
def _losses(cfg: LMConfig, params: Params, inputs: Array, targets: Array, lengths: Array, carry: JaxCarry) -> Any:
    return batch_token_losses(cfg, params, inputs, targets, lengths, carry)


@partial(jax.jit, static_argnums=0)
def _gradients(cfg: LMConfig, params: Params, inputs: Array, targets: Array, lengths: Array, carry: JaxCarry) -> Any:
    return jax.grad(lambda p: _mean_loss(cfg, p, inputs, targets, lengths, carry)[0])(params)


def _carry_in(cfg: LMConfig, batch: LMBatch, carry: Carry | JaxCarry | None) -> JaxCarry:
    """The starting state: zeros where the batch resets or none is given, else the one given."""
    b = len(batch)
    if carry is None or batch.reset:
        return tuple(jnp.zeros((cfg.num_layers, b, cfg.hidden_size), _dtype(cfg)) for _ in range(cfg.state_count))
    if carry[0].shape[1] != b:
        raise SeqbatchError(f"carried state is for {carry[0].shape[1]} rows, the batch has {b}")
    return tuple(jnp.asarray(c, _dtype(cfg)) for c in carry)


def _numpy(carry: JaxCarry) -> Carry:
    return tuple(np.asarray(c) for c in carry)


def logits(model: Model, batch: LMBatch, carry: Carry | None = None
           ) -> tuple[Float[np.ndarray, "batch time vocab"], Carry]:
    """Next-token logits at every step, and the state after each row's last real step."""
    out, new = _logits(model.cfg, model.params, batch.inputs, batch.lengths, _carry_in(model.cfg, batch, carry))
    return np.asarray(out), _numpy(new)


def losses(model: Model, batch: LMBatch, carry: Carry | None = None
           ) -> tuple[Float[np.ndarray, "batch time"], Carry]:
    """Per-position cross-entropy (0 past each length), and the new state."""
    out, new = _losses(model.cfg, model.params, batch.inputs, batch.targets, batch.lengths,
                       _carry_in(model.cfg, batch, carry))
    return np.asarray(out), _numpy(new)


def loss(model: Model, batch: LMBatch, carry: Carry | None = None) -> float:
    """Mean cross-entropy over the batch's real positions."""
    per_token, _ = losses(model, batch, carry)
    return float(per_token.sum() / batch.n_tokens)


def gradients(model: Model, batch: LMBatch, carry: Carry | None = None) -> dict[str, np.ndarray]:
    """d(mean loss)/d(parameter), by PyTorch name (no dropout)."""
    grads = _gradients(model.cfg, model.params, batch.inputs, batch.targets, batch.lengths,
                       _carry_in(model.cfg, batch, carry))
    return {k: np.asarray(v) for k, v in _flatten(grads).items()}


@dataclass(frozen=True)
class TrainState:
    model: Model
    opt_state: Any
    key: jax.Array
    cfg: TrainConfig
    step: int = 0
    carry: JaxCarry | None = None  # the state the last window left, on the device
    frozen: Any = False  # device bool: a bad step came with on_nan="stop" (shared/guard.py)
    mesh: Any = None  # TrainConfig.devices > 1: the data-parallel mesh (jax_impl/parallel.py)


@lru_cache(maxsize=32)
def _compiled_step(model_cfg: LMConfig, train_cfg: TrainConfig) -> Callable[..., Any]:
    tx = make_optimizer(train_cfg)
    use_dropout = model_cfg.dropout > 0

    def step(params: Params, opt_state: Any, key: jax.Array, carry: JaxCarry, frozen: Any, inputs: Any,
             targets: Any, lengths: Any) -> Any:
        COMPILATIONS["train_step"] += 1  # runs at trace time only
        next_key, sub = jax.random.split(key)

        def mean_loss(p: Params) -> tuple[Array, JaxCarry]:
            return _mean_loss(model_cfg, p, inputs, targets, lengths, carry, sub if use_dropout else None)

        (loss_value, new), grads = jax.value_and_grad(mean_loss, has_aux=True)(params)
        with jax.named_scope("optimizer"):  # clipping, the update and the guard
            grad_norm = optax.tree.norm(grads)
            updates, new_opt = tx.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
            (params, opt_state, key, new), ok, frozen = guard(
                train_cfg, loss_value, grad_norm, frozen, (new_params, new_opt, next_key, new),
                (params, opt_state, key, carry))
        return params, opt_state, key, new, frozen, {"loss": loss_value, "grad_norm": grad_norm, "ok": ok}

    return jax.jit(step, donate_argnums=(0, 1, 3))


def train_state(model: Model, cfg: TrainConfig) -> TrainState:
    if jax.default_backend() == "cpu":
        keep_freed_host_memory()
    # Copy the parameters: the jitted step donates its inputs, and the caller keeps `model`.
    params = jax.tree.map(jnp.array, model.params)
    opt_state, key, frozen, mesh = make_optimizer(cfg).init(params), jax.random.key(cfg.seed), jnp.zeros((), bool), None
    if cfg.devices > 1:  # data parallel: the batch's rows (and their carried state) sharded, the rest replicated
        mesh = parallel.data_mesh(cfg.devices)
        params, opt_state, key, frozen = parallel.replicate(mesh, (params, opt_state, key, frozen))
    return TrainState(Model(model.cfg, params), opt_state, key, cfg, frozen=frozen, mesh=mesh)


def train_step(state: TrainState, batch: LMBatch) -> tuple[TrainState, dict[str, Any]]:
    """One update; the state carries over unless `batch.reset`. Metrics (device scalars): `loss`
    (mean per real position, before the update), `grad_norm` (before clipping) and `ok` (False: a
    bad step, not applied, the carried state left as it was; shared/guard.py)."""
    cfg = state.model.cfg
    fn = _compiled_step(cfg, state.cfg)
    carry = _carry_in(cfg, batch, state.carry)
    inputs = (batch.inputs, batch.targets, batch.lengths)
    if state.mesh is not None:  # rows over the devices; the state [layers, B, H] by its row axis
        inputs = parallel.shard_batch(state.mesh, *inputs)
        carry = parallel.shard_batch(state.mesh, *carry, axis=1)
    params, opt_state, key, new, frozen, metrics = fn(state.model.params, state.opt_state, state.key, carry,
                                                      state.frozen, *inputs)
    if state.mesh is not None and jax.process_count() > 1:
        # Over processes, each holds only its devices' rows of the state; gathered whole on every
        # process (one small all-gather a step), rank 0 can save it with the run state.
        new = parallel.replicate_global(state.mesh, new)
    return dataclasses.replace(state, model=Model(cfg, params), opt_state=opt_state, key=key, carry=new,
                               frozen=frozen, step=state.step + 1), metrics


def model_of(state: TrainState) -> Model:
    """The model; over processes, this process's own copy of the replicated weights."""
    if state.mesh is None:
        return state.model
    return Model(state.model.cfg, parallel.local_copy(state.model.params))


def state_arrays(state: TrainState) -> dict[str, np.ndarray]:
    """Optimizer state, dropout key and the carried state `carry/<i>` ([layers, B, H]) as named arrays."""
    carry = {} if state.carry is None else {f"carry/{i}": np.asarray(c) for i, c in enumerate(state.carry)}
    return {**optimizer_arrays(state.opt_state), **key_arrays(state.key), **carry}


def restore_state(model: Model, cfg: TrainConfig, arrays: dict[str, np.ndarray], step: int) -> TrainState:
    """The train state `state_arrays` described, around `model` (its weights already loaded)."""
    state = restored(train_state(model, cfg), arrays, step)
    # The saved state is every row's; on a mesh the step shards it by rows (parallel.shard_batch).
    carry = [arrays[k] for k in sorted(k for k in arrays if k.startswith("carry/"))]
    return dataclasses.replace(state, carry=tuple(jnp.asarray(c, _dtype(model.cfg)) for c in carry) if carry else None)
