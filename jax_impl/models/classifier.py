"""The JAX port: the same SequenceClassifier, written for ONE sequence, batched by `jax.vmap`.

Mirrors reference_torch/models/classifier.py; the cells and the masked scan are in common.py.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from jax_impl.models.common import (
    Model,
    Params,
    _dtype,
    _flatten,
    _torch_init,
    _variables,
    from_params,
    init_params,
    run_direction,
)
from shared.batching import Batch
from shared.config import ModelConfig
from shared.layout import parameter_shapes, suffix

__all__ = ["SequenceClassifier", "apply_batch", "batch_losses", "from_params", "gradients", "init", "logits", "loss",
           "losses", "model_of", "restore_state", "state_arrays", "train_state",
           "train_step"]

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
            with jax.named_scope("input"):  # named scopes: what `seqbatch profile-step` groups the step by
                x = param("embedding.weight")[tokens]  # (T, E)
        finals: list[Array] = []
        for k in range(cfg.num_layers):
            last = k == cfg.num_layers - 1
            outputs, finals = [], []
            for reverse in (False, True)[: cfg.directions]:
                s = suffix(k, reverse)
                weights = tuple(param(f"rnn.{w}{s}") for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
                # The last layer's per-step outputs are never read: only its final state is.
                with jax.named_scope("recurrence"):
                    hs, final = run_direction(cfg.cell, weights, x, valid, reverse=reverse, collect=not last)
                h_last = final[0] if cfg.cell == "lstm" else final
                outputs.append(hs)
                finals.append(h_last)
            if not last:
                x = jnp.concatenate(outputs, axis=-1)  # (T, H * directions)
                if train and cfg.dropout > 0:
                    x = nn.Dropout(cfg.dropout, deterministic=False)(x)
        features = jnp.concatenate(finals)  # (H * directions,), fwd | bwd as torch's h_n
        with jax.named_scope("head"):
            return param("head.weight") @ features + param("head.bias")


def init(cfg: ModelConfig, seed: int) -> Model:
    """Fresh parameters with PyTorch's default distributions (not its random stream), seeded."""
    return init_params(cfg, SequenceClassifier(cfg), seed, jnp.zeros((1,), jnp.int32), jnp.asarray(1))


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
    with jax.named_scope("loss"):
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


def train_state(model: Any, cfg: Any, **kw: Any) -> Any:
    """The classifier trains in jax_impl/train.py (imported here lazily: it imports this file)."""
    from jax_impl import train

    return train.train_state(model, cfg, **kw)


def train_step(state: Any, batch: Batch) -> Any:
    from jax_impl import train

    return train.train_step(state, batch)


def state_arrays(state: Any) -> dict[str, np.ndarray]:
    """Optimizer state and dropout RNG as named arrays (jax_impl/train.py)."""
    from jax_impl import train

    return train.state_arrays(state)


def restore_state(model: Any, cfg: Any, arrays: dict[str, np.ndarray], step: int) -> Any:
    from jax_impl import train

    return train.restore_state(model, cfg, arrays, step)


def model_of(state: Any) -> Any:
    return state.model
