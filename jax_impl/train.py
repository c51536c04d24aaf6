"""Training with optax under jax.jit: SGD with momentum or Adam, torch's global-norm clipping, the
class-weighted mean of `TrainConfig.class_weights` as torch computes it.

Also the run state a resumed run needs beyond the weights (shared/runs.py writes it): the optax
state's leaves as named arrays `optim/<jax.tree_util.keystr path>` (restored into the structure a
fresh `make_optimizer(cfg).init(params)` has) and the dropout key's data `rng/jax_key`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jax_impl import cudnn, parallel
from jax_impl.models import Model, Params, batch_losses
from jax_impl.models.common import _flatten, _nest
from shared.batching import Batch
from shared.config import ModelConfig, TrainConfig
from shared.errors import SeqbatchError
from shared.host_memory import keep_freed_host_memory
from shared.layout import check_freeze

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
    frozen: Any = False  # device bool: a bad step came with on_nan="stop" (shared/guard.py)
    mesh: Any = None  # TrainConfig.devices > 1: the data-parallel mesh (jax_impl/parallel.py)


def guard(cfg: TrainConfig, loss: jax.Array, grad_norm: jax.Array, frozen: Any, new: Any, old: Any
          ) -> tuple[Any, jax.Array, jax.Array]:
    """shared/guard.py on the device: `new` where the step is good, else `old` (a pytree each);
    returns (kept, ok, frozen). After a bad step under on_nan="stop" every later step keeps `old`."""
    ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & ~jnp.asarray(frozen)
    if cfg.max_loss is not None:
        ok = ok & (loss <= cfg.max_loss)
    kept = jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)
    return kept, ok, (jnp.asarray(frozen) | ~ok) if cfg.on_nan == "stop" else jnp.asarray(frozen)


def partition(params: Params, names: tuple[str, ...]) -> tuple[Params, Params]:
    """(trainable, frozen) subtrees by shared/layout.py name; `params` itself and {} when nothing is
    frozen, so that the step without freezing traces exactly as before. Only the trainable part is
    differentiated and seen by the optimizer: a frozen parameter has no gradient, no optimizer state
    and no share of the clipping norm, as in torch (requires_grad=False)."""
    if not names:
        return params, {}
    flat = _flatten(params)
    return (_nest({k: v for k, v in flat.items() if k not in names}),
            _nest({k: v for k, v in flat.items() if k in names}))


def merge(trainable: Params, frozen: Params) -> Params:
    return _nest({**_flatten(trainable), **_flatten(frozen)}) if frozen else trainable


@lru_cache(maxsize=32)
def _compiled_step(model_cfg: ModelConfig, train_cfg: TrainConfig, kernel: str = "scan") -> Callable[..., Any]:
    tx = make_optimizer(train_cfg)
    use_dropout = model_cfg.dropout > 0
    losses_of = cudnn.batch_losses if kernel == "cudnn" else batch_losses

    def step(params: Params, opt_state: Any, key: jax.Array, frozen: Any, tokens: Any, lengths: Any,
             labels: Any) -> Any:
        COMPILATIONS["train_step"] += 1  # runs at trace time only
        next_key, sub = jax.random.split(key)

        trainable, fixed = partition(params, train_cfg.freeze)

        def mean_loss(p: Params) -> jax.Array:
            dropout_key = sub if use_dropout else None
            per_example = losses_of(model_cfg, merge(p, fixed), tokens, lengths, labels, dropout_key)
            if not train_cfg.class_weights:
                return per_example.mean()
            # torch's F.cross_entropy(weight=w): sum w[y] ce / sum w[y]
            w = jnp.asarray(train_cfg.class_weights, per_example.dtype)[labels]
            return (w * per_example).sum() / w.sum()

        loss, grads = jax.value_and_grad(mean_loss)(trainable)
        with jax.named_scope("optimizer"):  # clipping, the update and the guard (named for profile-step)
            grad_norm = optax.tree.norm(grads)
            updates, new_opt = tx.update(grads, opt_state, trainable)
            new_params = optax.apply_updates(trainable, updates)
            (trainable, opt_state, key), ok, frozen = guard(
                train_cfg, loss, grad_norm, frozen, (new_params, new_opt, next_key), (trainable, opt_state, key))
        return merge(trainable, fixed), opt_state, key, frozen, {"loss": loss, "grad_norm": grad_norm, "ok": ok}

    return jax.jit(step, donate_argnums=(0, 1))


def train_state(model: Model, cfg: TrainConfig, *, kernel: str = "scan") -> TrainState:
    """`kernel="cudnn"`: the batch's LSTM through cuDNN on a GPU (jax_impl/cudnn.py), else the scan."""
    if kernel not in KERNELS:
        raise SeqbatchError(f"unknown JAX kernel {kernel!r}; choose {' or '.join(KERNELS)}")
    if kernel == "cudnn":
        cudnn.check(model.cfg)
    if jax.default_backend() == "cpu":
        keep_freed_host_memory()
    if cfg.freeze:
        check_freeze(model.cfg, cfg.freeze)
    # Copy the parameters: the jitted step donates its inputs, and the caller keeps `model`.
    params = jax.tree.map(jnp.array, model.params)
    key = jax.random.key(cfg.seed)
    opt_state = make_optimizer(cfg).init(partition(params, cfg.freeze)[0])
    frozen, mesh = jnp.zeros((), bool), None
    if cfg.devices > 1:  # data parallel: everything but the batch replicated over the mesh
        mesh = parallel.data_mesh(cfg.devices)
        params, opt_state, key, frozen = parallel.replicate(mesh, (params, opt_state, key, frozen))
    return TrainState(Model(model.cfg, params), opt_state, key, cfg, kernel=kernel, frozen=frozen, mesh=mesh)


def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, Any]]:
    """One update on one batch. Metrics (device scalars): `loss` before the update, `grad_norm`
    before clipping, `ok` (False: a bad step, not applied; shared/guard.py). Dispatch is
    asynchronous: reading a metric waits for the step."""
    fn = _compiled_step(state.model.cfg, state.cfg, state.kernel)
    inputs = (batch.tokens, batch.lengths, batch.labels)
    if state.mesh is not None:
        inputs = parallel.shard_batch(state.mesh, *inputs)
    params, opt_state, key, frozen, metrics = fn(state.model.params, state.opt_state, state.key, state.frozen,
                                                 *inputs)
    new = dataclasses.replace(state, model=Model(state.model.cfg, params), opt_state=opt_state, key=key,
                              frozen=frozen)
    return dataclasses.replace(new, step=state.step + 1), metrics


def model_of(state: TrainState) -> Model:
    """The model; over processes, this process's own copy of the replicated weights (what it evaluates alone)."""
    if state.mesh is None:
        return state.model
    return Model(state.model.cfg, parallel.local_copy(state.model.params))


# ---- the run state beyond the weights (shared/runs.py)


def optimizer_arrays(opt_state: Any) -> dict[str, np.ndarray]:
    leaves, _ = jax.tree_util.tree_flatten_with_path(opt_state)
    return {f"optim/{jax.tree_util.keystr(path)}": np.asarray(leaf) for path, leaf in leaves}


def load_optimizer_arrays(template: Any, arrays: dict[str, np.ndarray]) -> Any:
    """`template`'s structure (a fresh optimizer state) filled with the saved leaves, checked."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    names = [f"optim/{jax.tree_util.keystr(path)}" for path, _ in leaves]
    missing = [n for n in names if n not in arrays]
    stray = sorted(k for k in arrays if k.startswith("optim/") and k not in set(names))
    if missing or stray:
        raise SeqbatchError(f"optimizer state does not match the optimizer (missing {missing[:3]}, "
                            f"unexpected {stray[:3]})")
    out = []
    for name, (_, leaf) in zip(names, leaves, strict=True):
        value = np.asarray(arrays[name])
        if value.shape != tuple(leaf.shape) or value.dtype != leaf.dtype:
            raise SeqbatchError(f"optimizer state {name} is {value.dtype}{list(value.shape)}, "
                                f"the optimizer wants {leaf.dtype}{list(leaf.shape)}")
        out.append(jnp.asarray(value))
    return jax.tree_util.tree_unflatten(treedef, out)


def key_arrays(key: jax.Array) -> dict[str, np.ndarray]:
    return {"rng/jax_key": np.asarray(jax.random.key_data(key))}


def load_key(arrays: dict[str, np.ndarray], like: jax.Array) -> jax.Array:
    data = arrays.get("rng/jax_key")
    want = jax.random.key_data(like)
    if data is None or data.shape != want.shape or data.dtype != want.dtype:
        raise SeqbatchError("the run state has no rng/jax_key of the right shape")
    return jax.random.wrap_key_data(jnp.asarray(data), impl=jax.random.key_impl(like))


def state_arrays(state: Any) -> dict[str, np.ndarray]:
    """Optimizer state and dropout key as named arrays (the weights are saved apart); any kind's
    train state with `opt_state` and `key`."""
    return {**optimizer_arrays(state.opt_state), **key_arrays(state.key)}


def restored(state: Any, arrays: dict[str, np.ndarray], step: int) -> Any:
    """A fresh train state of any kind (fields `opt_state`, `key`, `step`, `mesh`) given the saved
    optimizer state, key and step; on a mesh (data parallel), replicated over it as the fresh ones are."""
    opt_state, key = load_optimizer_arrays(state.opt_state, arrays), load_key(arrays, state.key)
    if getattr(state, "mesh", None) is not None:
        opt_state, key = parallel.replicate(state.mesh, (opt_state, key))
    return dataclasses.replace(state, opt_state=opt_state, key=key, step=step)


def restore_state(model: Model, cfg: TrainConfig, arrays: dict[str, np.ndarray], step: int) -> TrainState:
    """The train state `state_arrays` described, around `model` (its weights already loaded)."""
    return restored(train_state(model, cfg), arrays, step)
