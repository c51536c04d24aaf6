"""An optional fast path on GPU: the batch's LSTM through cuDNN (`jax.experimental.rnn`).

Not the model the project defines (that is the per-example masked scan in `models.py`): this runs
the whole batch through one cuDNN call, for LSTM in float32 on a GPU only, and is benchmarked beside
the scan (`seqbatch bench --jax-kernel cudnn`, impl `jax_cudnn`), never substituted for it silently.
It reads the same parameter pytree under PyTorch's names: cuDNN's LSTM keeps torch's gate order
(i, f, g, o) and both biases, so packing is a flatten and a concatenate, and gradients flow back
through the concatenate to the named parameters.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int

from jax_impl.models import Params
from shared.config import ModelConfig
from shared.errors import SeqbatchError
from shared.layout import suffix


def unsupported(cfg: ModelConfig) -> str | None:
    """Why the cuDNN kernel cannot run this config here, or None when it can."""
    if cfg.cell != "lstm":
        return f"the cuDNN kernel runs LSTM only, not {cfg.cell}"
    if cfg.dtype != "float32":
        return f"the cuDNN kernel runs float32 only, not {cfg.dtype}"
    if cfg.dropout > 0:
        return "the cuDNN kernel draws its own dropout masks; use dropout 0 (or the scan kernel)"
    if jax.default_backend() != "gpu":
        return f"the cuDNN kernel needs a GPU; JAX's default backend here is {jax.default_backend()}"
    return None


def check(cfg: ModelConfig) -> None:
    reason = unsupported(cfg)
    if reason is not None:
        raise SeqbatchError(f"--jax-kernel cudnn: {reason}")


def _pseudo_layers(cfg: ModelConfig) -> list[str]:
    """cuDNN's order: layer 0 forward, layer 0 reverse, layer 1 forward, ... as torch's suffixes."""
    return [suffix(k, reverse) for k in range(cfg.num_layers) for reverse in (False, True)[: cfg.directions]]


def pack_weights(cfg: ModelConfig, params: Params) -> Float[Array, " n"]:
    """cuDNN's flat weight vector: every (W_ih, W_hh) pair in pseudo-layer order, then every
    (b_ih, b_hh) pair (see the layout notes at the top of jax/experimental/rnn.py)."""
    rnn = params["rnn"]
    layers = _pseudo_layers(cfg)
    mats = [rnn[f"{w}{s}"].ravel() for s in layers for w in ("weight_ih", "weight_hh")]
    biases = [rnn[f"{b}{s}"] for s in layers for b in ("bias_ih", "bias_hh")]
    return jnp.concatenate(mats + biases)


def _inputs(cfg: ModelConfig, params: Params, tokens: Int[Array, "batch time"]) -> Float[Array, "batch time in"]:
    if cfg.embed_dim is not None:
        return params["embedding"]["weight"][tokens]
    return jax.nn.one_hot(tokens, cfg.vocab_size, dtype=jnp.float32)  # cuDNN takes dense input


def apply_batch(
    cfg: ModelConfig, params: Params, tokens: Int[Array, "batch time"], lengths: Int[Array, " batch"]
) -> Float[Array, "batch classes"]:
    """Logits for a whole batch in one cuDNN call; h_n holds each sequence's state at its length."""
    from jax.experimental import rnn

    batch = tokens.shape[0]
    zeros = jnp.zeros((cfg.num_layers * cfg.directions, batch, cfg.hidden_size), jnp.float32)
    _, h_n, _ = rnn.lstm(
        _inputs(cfg, params, tokens), zeros, zeros, pack_weights(cfg, params), lengths.astype(jnp.int32),
        input_size=cfg.input_size, hidden_size=cfg.hidden_size, num_layers=cfg.num_layers, dropout=0.0,
        bidirectional=cfg.bidirectional,
    )
    last = h_n[-cfg.directions :]  # (directions, B, H): the last layer, fwd | bwd as torch's h_n
    features = jnp.transpose(last, (1, 0, 2)).reshape(batch, cfg.feature_size)
    return _head(params, features)


def _head(params: Params, features: Float[Array, "batch features"]) -> Float[Array, "batch classes"]:
    return features @ params["head"]["weight"].T + params["head"]["bias"][None, :]


def reference_apply_batch(cfg: ModelConfig, params: Params, tokens: Array, lengths: Array) -> Array:
    """The same computation through `jax.experimental.rnn.lstm_ref` (pure JAX, any device), which
    unpacks the flat vector with jax's own layout: a CPU check that `pack_weights` is right."""
    from jax.experimental import rnn

    w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(
        pack_weights(cfg, params), cfg.input_size, cfg.hidden_size, cfg.num_layers, cfg.bidirectional
    )
    batch = tokens.shape[0]
    zeros = jnp.zeros((cfg.num_layers * cfg.directions, batch, cfg.hidden_size), jnp.float32)
    _, h_n, _ = rnn.lstm_ref(
        _inputs(cfg, params, tokens), zeros, zeros, w_ih, w_hh, b_ih, b_hh, lengths.astype(jnp.int32),
        cfg.input_size, cfg.hidden_size, cfg.num_layers, 0.0, cfg.bidirectional,
    )
    features = jnp.transpose(h_n[-cfg.directions :], (1, 0, 2)).reshape(batch, cfg.feature_size)
    return _head(params, features)


def batch_losses(
    cfg: ModelConfig, params: Params, tokens: Array, lengths: Array, labels: Array, dropout_key: Any = None
) -> Float[Array, " batch"]:
    del dropout_key  # refused in `unsupported`: cuDNN's masks are not ours
    return optax.softmax_cross_entropy_with_integer_labels(apply_batch(cfg, params, tokens, lengths), labels)
