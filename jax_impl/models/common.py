"""What every JAX model kind shares: dtypes, torch's initialisers, the recurrent cells and the masked
scan over one sequence, and the parameter pytree under PyTorch's names (mirrors reference_torch/models/common.py).

Each cell computes PyTorch's equations with PyTorch's parameters (both biases, gates in torch
order), so a checkpoint moves between backends unchanged. Padding is handled by masking the
scan's carry, not by packing: at t >= length the carry stays as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.ad_checkpoint import checkpoint_name
from jaxtyping import Array, Bool, Float, Int

from shared.layout import init_bound, parameter_shapes

Params = dict[str, Any]
SAVED = "preactivation"  # the one per-step value the backward pass stores (see cell_step)


def enable_dtype(cfg: Any) -> None:
    """float64 needs JAX's x64 mode, a process-wide switch."""
    if cfg.dtype == "float64" and not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)


def _dtype(cfg: Any) -> Any:
    return jnp.float64 if cfg.dtype == "float64" else jnp.float32


def _torch_init(cfg: Any, name: str) -> Any:
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
    init: Any = None,
) -> tuple[Float[Array, "time hidden"] | None, Any]:
    """Scan one direction over all T steps, holding the carry where `valid` is False.

    `weights` = (w_ih, w_hh, b_ih, b_hh) in torch's shapes; `xs` = token ids (one-hot input: the
    projection is row `t` of W_ih^T, a gather) or input vectors. Forward, the carry freezes after
    the last real token; reverse, it stays at zero through the padding and then walks the real
    tokens backwards. `init`: the starting carry (h, or (h, c) for an LSTM; zeros when None), as a
    language model carries it from one window to the next. Returns per-step h (None unless
    `collect`) and the final carry (h, or (h, c)).
    """
    w_ih, w_hh, b_ih, b_hh = weights
    hidden = w_hh.shape[1]
    zeros = jnp.zeros((hidden,), w_hh.dtype)
    if init is None:
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
    return hs, final


# ---- the pytree <-> torch-name mapping: Flax nests "rnn/weight_ih_l0" as {"rnn": {"weight_ih_l0": ...}}


@dataclass(frozen=True)
class Model:
    """A config and its parameters (a pytree whose flattened names are PyTorch's)."""

    cfg: Any  # the config of the model's kind (shared/kinds)
    params: Params


def _nest(flat: dict[str, Any]) -> Params:
    out: dict[str, Any] = {}
    for name, value in flat.items():
        prefix, leaf = name.split(".", 1)
        out.setdefault(prefix, {})[leaf] = value
    return out


def _flatten(params: Params) -> dict[str, Any]:
    return {f"{prefix}.{leaf}": v for prefix, sub in params.items() for leaf, v in sub.items()}


def to_params(model: Model) -> dict[str, np.ndarray]:
    order = parameter_shapes(model.cfg)
    flat = _flatten(model.params)
    return {k: np.asarray(flat[k]) for k in order}


def init_params(cfg: Any, module: nn.Module, seed: int, *example: Any) -> Model:
    """Initialise a per-example Flax module on `example` inputs; its "a/b" names re-nested by torch prefix."""
    enable_dtype(cfg)
    variables = module.init(jax.random.key(seed), *example)
    # Flax nests "a/b" names literally as one key; re-nest them by the torch prefix.
    return Model(cfg, _nest({k.replace("/", "."): v for k, v in variables["params"].items()}))


def from_params(cfg: Any, params: dict[str, np.ndarray]) -> Model:
    """A Model from named arrays in the shared layout (checked), in the config's dtype."""
    from shared.checkpoint import check_params

    check_params(cfg, params, "parameters")
    enable_dtype(cfg)
    dtype = _dtype(cfg)
    return Model(cfg, _nest({k: jnp.asarray(np.asarray(v), dtype) for k, v in params.items()}))


def config_of(model: Model) -> Any:
    return model.cfg


def _variables(params: Params) -> dict[str, Any]:
    return {"params": {k.replace(".", "/"): v for k, v in _flatten(params).items()}}


