"""Training with optax under jax.jit: SGD with momentum or Adam, torch's global-norm clipping."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jax_impl import cudnn
from jax_impl.models import Model, Params, batch_losses
from shared.batching import Batch
from shared.config import ModelConfig, TrainConfig
from shared.errors import SeqbatchError
from shared.host_memory import keep_freed_host_memory

# How many times a step was traced (= compiled): the batched step once per (config, batch shape),
# the per-example baseline (jax_impl/per_example.py) once per (config, sequence length).
COMPILATIONS: dict[str, int] = {"train_step": 0, "per_example": 0}
KERNELS = ("scan", "cudnn")
class ClipState(NamedTuple):
    pass


def clip_like_torch(max_norm: float) -> optax.GradientTransformation:
    """torch.nn.utils.clip_grad_norm_: scale by min(1, max_norm / (norm + 1e-6)).

    optax.clip_by_global_norm scales by max_norm / norm and only when norm > max_norm; the
    1e-6 makes the two differ in the last digits, enough to split training trajectories.
    """

    def init_fn(params: Params) -> ClipState:
        del params
        return ClipState()

    def update_fn(updates: Params, state: ClipState, params: Params | None = None) -> tuple[Params, ClipState]:
        del params
        norm = optax.tree.norm(updates)
        scale = jnp.minimum(1.0, max_norm / (norm + 1e-6))
        return jax.tree.map(lambda g: g * scale.astype(g.dtype), updates), state

    return optax.GradientTransformation(init_fn, update_fn)  # type: ignore[arg-type]


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    # optax.sgd's trace is torch's momentum buffer (buf = m * buf + g; p -= lr * buf); optax.adam
    # adds eps outside the square root with bias correction, as torch.optim.Adam does.
    if cfg.optimizer == "sgd":
        opt = optax.sgd(cfg.lr, momentum=cfg.momentum if cfg.momentum else None)
    else:
        opt = optax.adam(cfg.lr)
    return opt if cfg.clip_norm is None else optax.chain(clip_like_torch(cfg.clip_norm), opt)


@dataclass(frozen=True)
class TrainState:
    model: Model
    opt_state: Any
    key: jax.Array
    cfg: TrainConfig
    step: int = 0
    kernel: str = "scan"


@lru_cache(maxsize=32)
def _compiled_step(model_cfg: ModelConfig, train_cfg: TrainConfig, kernel: str = "scan") -> Callable[..., Any]:
    tx = make_optimizer(train_cfg)
    use_dropout = model_cfg.dropout > 0
    losses_of = cudnn.batch_losses if kernel == "cudnn" else batch_losses

    def step(params: Params, opt_state: Any, key: jax.Array, tokens: Any, lengths: Any, labels: Any) -> Any:
        COMPILATIONS["train_step"] += 1  # runs at trace time only
        key, sub = jax.random.split(key)

        def mean_loss(p: Params) -> jax.Array:
            return losses_of(model_cfg, p, tokens, lengths, labels, sub if use_dropout else None).mean()

        loss, grads = jax.value_and_grad(mean_loss)(params)
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, key, {"loss": loss, "grad_norm": grad_norm}

    return jax.jit(step, donate_argnums=(0, 1))


def train_state(model: Model, cfg: TrainConfig, *, kernel: str = "scan") -> TrainState:
    """`kernel="cudnn"`: the batch's LSTM through cuDNN on a GPU (jax_impl/cudnn.py), else the scan."""
    if kernel not in KERNELS:
        raise SeqbatchError(f"unknown JAX kernel {kernel!r}; choose {' or '.join(KERNELS)}")
    if kernel == "cudnn":
        cudnn.check(model.cfg)
    if jax.default_backend() == "cpu":
        keep_freed_host_memory()
    # Copy the parameters: the jitted step donates its inputs, and the caller keeps `model`.
    params = jax.tree.map(jnp.array, model.params)
    key = jax.random.key(cfg.seed)
    return TrainState(Model(model.cfg, params), make_optimizer(cfg).init(params), key, cfg, kernel=kernel)


def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, Any]]:
    """One update on one batch. Metrics (device scalars): `loss` before the update, `grad_norm`
    before clipping. Dispatch is asynchronous: reading a metric waits for the step."""
    fn = _compiled_step(state.model.cfg, state.cfg, state.kernel)
    params, opt_state, key, metrics = fn(
        state.model.params, state.opt_state, state.key, batch.tokens, batch.lengths, batch.labels
    )
    new = dataclasses.replace(state, model=Model(state.model.cfg, params), opt_state=opt_state, key=key)
    return dataclasses.replace(new, step=state.step + 1), metrics


def model_of(state: TrainState) -> Model:
    return state.model
