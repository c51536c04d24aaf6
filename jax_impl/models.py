"""The JAX port: the same SequenceClassifier, written for ONE sequence, batched by `jax.vmap`.

Each cell computes PyTorch's equations with PyTorch's parameters (both biases, gates in torch
order), so a checkpoint moves between backends unchanged. Padding is handled by masking the
scan's carry, not by packing: at t >= length the carry stays as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.ad_checkpoint import checkpoint_name
from jaxtyping import Array, Bool, Float, Int

from shared.batching import Batch
from shared.checkpoint import check_params
from shared.config import ModelConfig
from shared.layout import init_bound, parameter_shapes, suffix

Params = dict[str, Any]
SAVED = "preactivation"  # the one per-step value the backward pass stores (see cell_step)


def enable_dtype(cfg: ModelConfig) -> None:
    """float64 needs JAX's x64 mode, a process-wide switch."""
    if cfg.dtype == "float64" and not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)


def _dtype(cfg: ModelConfig) -> Any:
    return jnp.float64 if cfg.dtype == "float64" else jnp.float32


def _torch_init(cfg: ModelConfig, name: str) -> Any:
    bound = init_bound(cfg, name)
    if bound is None:
        return nn.initializers.normal(1.0)
    return lambda key, shape, dtype: jax.random.uniform(key, shape, dtype, -bound, bound)


def cell_step(
    cell: str, w_hh: Float[Array, "gh hidden"], b_hh: Float[Array, " gh"], carry: Any, gi: Float[Array, " gh"]
) -> Any:
    """One time step of one example, given `gi = W_ih x + b_ih` for this step."""
    h = carry[0] if cell == "lstm" else carry
    gh = w_hh @ h + b_hh
    # The backward pass keeps only the pre-activations named here (one [T, G*H] array per
    # direction) and recomputes the gate nonlinearities from them: XLA otherwise stores ~10
    # separate [T, H] intermediates per step and the step becomes memory-bound on CPU.
    if cell == "gru":
        gi, gh = checkpoint_name(gi, SAVED), checkpoint_name(gh, SAVED)
    else:
        z = checkpoint_name(gi + gh, SAVED)
    if cell == "rnn_tanh":
        return jnp.tanh(z)
    if cell == "rnn_relu":
        return jax.nn.relu(z)
    if cell == "lstm":
        i, f, g, o = jnp.split(z, 4)
        c = jax.nn.sigmoid(f) * carry[1] + jax.nn.sigmoid(i) * jnp.tanh(g)
        return (jax.nn.sigmoid(o) * jnp.tanh(c), c)
    # GRU, torch's form: n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    i_r, i_z, i_n = jnp.split(gi, 3)
    h_r, h_z, h_n = jnp.split(gh, 3)
    r = jax.nn.sigmoid(i_r + h_r)
    z = jax.nn.sigmoid(i_z + h_z)
    n = jnp.tanh(i_n + r * h_n)
    return (1.0 - z) * n + z * h


def run_direction(
    cell: str,
    weights: tuple[Array, Array, Array, Array],
    xs: Int[Array, " time"] | Float[Array, "time features"],
    valid: Bool[Array, " time"],
    *,
    reverse: bool,
    collect: bool = True,
) -> tuple[Float[Array, "time hidden"] | None, Float[Array, " hidden"]]:
    """Scan one direction over all T steps, holding the carry where `valid` is False.

    `weights` = (w_ih, w_hh, b_ih, b_hh) in torch's shapes; `xs` = token ids (one-hot input: the
    projection is row `t` of W_ih^T, a gather) or input vectors. Forward, the carry freezes after
    the last real token; reverse, it stays at zero through the padding and then walks the real
    tokens backwards. Returns per-step h (None unless `collect`) and the final h.
    """
    w_ih, w_hh, b_ih, b_hh = weights
    hidden = w_hh.shape[1]
    zeros = jnp.zeros((hidden,), w_hh.dtype)
    init = (zeros, zeros) if cell == "lstm" else zeros
    w_ih_t = w_ih.T if xs.ndim == 1 else None  # (In, G*H): one row per token id

    def body(carry: Any, x: tuple[Array, Array]) -> tuple[Any, Array | None]:
        inp, ok = x
        # The input projection runs inside the step, not for all T steps up front: a [T, G*H]
        # array per example (vmapped: [B, T, G*H], then transposed to time-major for the scan)
        # costs more memory traffic on CPU than the per-step product saves.
        gi = (w_ih_t[inp] if w_ih_t is not None else w_ih @ inp) + b_ih
        new = cell_step(cell, w_hh, b_hh, carry, gi)
        carry = jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, carry)
        h = carry[0] if cell == "lstm" else carry
        return carry, (h if collect else None)

    body = jax.checkpoint(body, policy=jax.checkpoint_policies.save_only_these_names(SAVED))
    final, hs = jax.lax.scan(body, init, (xs, valid), reverse=reverse)
    return hs, (final[0] if cell == "lstm" else final)


class SequenceClassifier(nn.Module):
    """`__call__(tokens[T], length) -> logits[C]` for ONE sequence; parameter names as in torch."""

    cfg: ModelConfig

    @nn.compact
    def __call__(
        self, tokens: Int[Array, " time"], length: Int[Array, ""], *, train: bool = False
    ) -> Float[Array, " classes"]:
        # This code is effectively for a single example; the batch comes from vmap in `apply_batch`.
        cfg = self.cfg
        dtype = _dtype(cfg)
        shapes = parameter_shapes(cfg)

        def param(name: str) -> Array:
            return self.param(name.replace(".", "/"), _torch_init(cfg, name), shapes[name], dtype)

        valid = jnp.arange(tokens.shape[0]) < length  # derived mask, (T,)
        x: Array = tokens  # layer 0 reads token ids (one-hot: a row gather) or their embeddings
        if cfg.embed_dim is not None:
            x = param("embedding.weight")[tokens]  # (T, E)
        finals: list[Array] = []
        for k in range(cfg.num_layers):
            last = k == cfg.num_layers - 1
            outputs, finals = [], []
            for reverse in (False, True)[: cfg.directions]:
                s = suffix(k, reverse)
                weights = tuple(param(f"rnn.{w}{s}") for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
                # The last layer's per-step outputs are never read: only its final state is.
                hs, h_last = run_direction(cfg.cell, weights, x, valid, reverse=reverse, collect=not last)
                outputs.append(hs)
                finals.append(h_last)
            if not last:
                x = jnp.concatenate(outputs, axis=-1)  # (T, H * directions)
                if train and cfg.dropout > 0:
                    x = nn.Dropout(cfg.dropout, deterministic=False)(x)
        features = jnp.concatenate(finals)  # (H * directions,), fwd | bwd as torch's h_n
        return param("head.weight") @ features + param("head.bias")


# ---- the pytree <-> torch-name mapping: Flax nests "rnn/weight_ih_l0" as {"rnn": {"weight_ih_l0": ...}}


@dataclass(frozen=True)
class Model:
    """A config and its parameters (a pytree whose flattened names are PyTorch's)."""

    cfg: ModelConfig
    params: Params


def _nest(flat: dict[str, Any]) -> Params:
    out: dict[str, Any] = {}
    for name, value in flat.items():
        prefix, leaf = name.split(".", 1)
        out.setdefault(prefix, {})[leaf] = value
    return out


def _flatten(params: Params) -> dict[str, Any]:
    return {f"{prefix}.{leaf}": v for prefix, sub in params.items() for leaf, v in sub.items()}


def init(cfg: ModelConfig, seed: int) -> Model:
    """Fresh parameters with PyTorch's default distributions (not its random stream), seeded."""
    enable_dtype(cfg)
    module = SequenceClassifier(cfg)
    variables = module.init(jax.random.key(seed), jnp.zeros((1,), jnp.int32), jnp.asarray(1))
    # Flax nests "a/b" names literally as one key; re-nest them by the torch prefix.
    flat = {k.replace("/", "."): v for k, v in variables["params"].items()}
    return Model(cfg, _nest(flat))


def from_params(cfg: ModelConfig, params: dict[str, np.ndarray]) -> Model:
    check_params(cfg, params, "parameters")
    enable_dtype(cfg)
    dtype = _dtype(cfg)
    return Model(cfg, _nest({k: jnp.asarray(np.asarray(v), dtype) for k, v in params.items()}))


def to_params(model: Model) -> dict[str, np.ndarray]:
    order = parameter_shapes(model.cfg)
    flat = _flatten(model.params)
    return {k: np.asarray(flat[k]) for k in order}


def config_of(model: Model) -> ModelConfig:
    return model.cfg


def _variables(params: Params) -> dict[str, Any]:
    return {"params": {k.replace(".", "/"): v for k, v in _flatten(params).items()}}


def apply_batch(
    cfg: ModelConfig,
    params: Params,
    tokens: Int[Array, "batch time"],
    lengths: Int[Array, " batch"],
    dropout_key: Array | None = None,
) -> Float[Array, "batch classes"]:
    """The one place the batch appears: vmap the per-example model over tokens and lengths."""
    module = SequenceClassifier(cfg)
    variables = _variables(params)
    if dropout_key is None:
        per_example = partial(module.apply, variables)
        return jax.vmap(per_example, in_axes=(0, 0))(tokens, lengths)
    keys = jax.random.split(dropout_key, tokens.shape[0])  # one dropout mask per example

    def per_example_train(t: Array, n: Array, key: Array) -> Array:
        return module.apply(variables, t, n, train=True, rngs={"dropout": key})

    return jax.vmap(per_example_train, in_axes=(0, 0, 0))(tokens, lengths, keys)


def batch_losses(
    cfg: ModelConfig, params: Params, tokens: Array, lengths: Array, labels: Array, dropout_key: Array | None = None
) -> Float[Array, " batch"]:
    out = apply_batch(cfg, params, tokens, lengths, dropout_key)
    return optax.softmax_cross_entropy_with_integer_labels(out, labels)


@partial(jax.jit, static_argnums=0)
def _logits(cfg: ModelConfig, params: Params, tokens: Array, lengths: Array) -> Array:
    return apply_batch(cfg, params, tokens, lengths)


@partial(jax.jit, static_argnums=0)
def _losses(cfg: ModelConfig, params: Params, tokens: Array, lengths: Array, labels: Array) -> Array:
    return batch_losses(cfg, params, tokens, lengths, labels)


@partial(jax.jit, static_argnums=0)
def _gradients(cfg: ModelConfig, params: Params, tokens: Array, lengths: Array, labels: Array) -> Params:
    return jax.grad(lambda p: batch_losses(cfg, p, tokens, lengths, labels).mean())(params)


def logits(model: Model, batch: Batch) -> Float[np.ndarray, "batch classes"]:
    return np.asarray(_logits(model.cfg, model.params, batch.tokens, batch.lengths))


def losses(model: Model, batch: Batch) -> Float[np.ndarray, " batch"]:
    """Per-example cross-entropy."""
    return np.asarray(_losses(model.cfg, model.params, batch.tokens, batch.lengths, batch.labels))


def loss(model: Model, batch: Batch) -> float:
    """Mean cross-entropy over the batch."""
    return float(losses(model, batch).mean())


def gradients(model: Model, batch: Batch) -> dict[str, np.ndarray]:
    """d(mean cross-entropy)/d(parameter), by PyTorch name (no dropout)."""
    grads = _gradients(model.cfg, model.params, batch.tokens, batch.lengths, batch.labels)
    return {k: np.asarray(v) for k, v in _flatten(grads).items()}
