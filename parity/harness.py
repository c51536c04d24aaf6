"""Cross-backend parity: the same weights in reference_torch and jax_impl, every output compared.

For one ModelConfig and named batches, `check` moves weights between the backends through the shared
layout (torch -> jax in memory, jax -> torch through a safetensors file) and records, per quantity,
max absolute and max relative difference against a named tolerance: logits, per-example losses,
mean loss, every parameter's gradient, padding invariance, and training trajectories (SGD momentum
and Adam, with and without clipping). Torch always runs through the backend contract; JAX runs
jax_impl's own model (`apply_batch`, the per-example module vmapped) and optimizer (`make_optimizer`)
in one compiled program per config and width, since compiling each contract function per shape
would cost the grid many minutes. parity/harness_cli.check_contract covers the contract itself.
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile
import time
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from jaxtyping import Float, Int

from shared.backend import get_backend
from shared.batching import Batch, pad
from shared.config import ModelConfig, TrainConfig
from shared.errors import SeqbatchError
from shared.layout import init_bound, parameter_shapes

# ---- tolerances (what "the same" means) -------------------------------------------------------
OUTPUT_ABS_TOL: dict[str, float] = {"float32": 1e-5, "float64": 1e-10}  # logits, losses, mean loss
GRAD_REL_TOL = 1e-4  # per parameter: max |diff| / max |torch gradient|
TRAJ_LOSS_REL_TOL = 1e-4  # every step's loss, relative to torch's
# Gradient norms jump where a ReLU kink flips side, losses do not (rnn_relu Adam f32: 2e-4 vs 1e-6).
TRAJ_GRAD_NORM_REL_TOL = 1e-3
TRAJ_WEIGHT_REL_TOL = 1e-3  # final weights per parameter, relative to that parameter's max |torch value|
# Tokens under the padding change nothing, bit for bit. On an H100 the JAX side moved by an ulp
# (7e-9 / 1e-17; cause not established, atomics reordering is the suspect): reported as failures
# in parity/results/parity-cuda-*.json, not hidden by a looser GPU tolerance.
PAD_TOL = 0.0  # on every device and dtype
TRAJ_STEPS = 100

# Trajectory variants: clip 0.3 sits among the gradient norms of these models (0.2-1), so clipped runs
# take both branches of torch's min(1, max_norm / (norm + 1e-6)) (the clipped steps are counted).
CLIP = 0.3
# Learning rates: SGD at 0.1 can blow a relu RNN up; Adam at 0.003 let float32 rounding grow past 1e-3
# in 100 steps of one relu config (a kink taken on either side, then turned into a full Adam step);
# the same run in float64 agrees to 1e-15, so it is not a difference in the update rule.
VARIANTS: dict[str, TrainConfig] = {
    "sgd": TrainConfig(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=8, steps=TRAJ_STEPS),
    "sgd+clip": TrainConfig(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=8, steps=TRAJ_STEPS, clip_norm=CLIP),
    "adam": TrainConfig(optimizer="adam", lr=0.001, batch_size=8, steps=TRAJ_STEPS),
    "adam+clip": TrainConfig(optimizer="adam", lr=0.001, batch_size=8, steps=TRAJ_STEPS, clip_norm=CLIP),
}


@dataclass(frozen=True)
class Comparison:
    """One quantity on one case: `tol` bounds `max_abs` or `max_rel`, as `on` says."""

    quantity: str  # logits losses loss grad pad_invariance transfer traj_loss traj_grad_norm traj_weights
    case: str  # length pattern and transfer direction, or the trajectory variant
    name: str  # the parameter (gradients, weights) or the backend (pad_invariance); "" otherwise
    max_abs: float
    max_rel: float
    tol: float
    on: str  # "abs" | "rel"

    @property
    def value(self) -> float:
        return self.max_abs if self.on == "abs" else self.max_rel

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.value)) and self.value <= self.tol

    @property
    def where(self) -> str:
        return f"{self.case}" + (f" [{self.name}]" if self.name else "")


def compare(quantity: str, case: str, name: str, torch_value: Any, jax_value: Any, tol: float, on: str,
            *, elementwise: bool = False) -> Comparison:
    """max |a - b|, and that over max |a| (a = torch's) or, `elementwise`, max |a - b| / |a|; 0/0 is 0.
    A NaN or infinity on either side fails, even on both."""
    a, b = np.asarray(torch_value, np.float64), np.asarray(jax_value, np.float64)
    if a.shape != b.shape:
        return Comparison(quantity, case, f"{name} shape {a.shape} vs {b.shape}".strip(), np.inf, np.inf, tol, on)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return Comparison(quantity, case, name, np.nan, np.nan, tol, on)
    diff = np.abs(a - b)
    scale = np.abs(a) if elementwise else np.max(np.abs(a), initial=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(diff == 0, 0.0, diff / scale)
    return Comparison(quantity, case, name, float(np.max(diff, initial=0.0)), float(np.max(rel, initial=0.0)), tol, on)


@dataclass
class ConfigResult:
    config: ModelConfig
    comparisons: list[Comparison] = field(default_factory=list)
    trajectory_steps: int = 0
    clipped_steps: dict[str, int] = field(default_factory=dict)  # variant -> steps where torch clipped
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.comparisons)


# ---- length patterns --------------------------------------------------------------------------
BATCH, SHORT_T, LONG_T, IMDB_T = 8, 16, 200, 400
PATTERNS: tuple[str, ...] = ("equal", "ragged", "single", "long", "unmasked", "imdb_front", "imdb_back")


def patterns_for(cfg: ModelConfig) -> tuple[str, ...]:
    """IMDB-like batches are word-level: embedding input only."""
    return PATTERNS if cfg.embed_dim is not None else PATTERNS[:5]


def _seqs_to_batch(cfg: ModelConfig, seqs: Sequence[np.ndarray], time_: int) -> Batch:
    # Labels follow the first token, so training on these batches has something to learn.
    return pad(seqs, [int(s[0]) % cfg.num_classes for s in seqs], time=time_)


def pattern_batch(cfg: ModelConfig, pattern: str, rng: np.random.Generator) -> Batch:
    """One batch of a named length pattern; real tokens are 1..V-1, the padding PAD (0).

    equal: all lengths = T (no padding); ragged: lengths 1 and T in one batch; single: one
    padded example; long: T = 200, ragged; unmasked: the padding study's left-padded batch without
    a mask (ragged reviews padded in front to T, every length T: the models read the padding);
    imdb_front / imdb_back: raw sequences up to 650 tokens cut to 400 by dropping the front
    (keeping the end) or the back; the batch stays left-aligned.
    """
    tok = lambda n: rng.integers(1, cfg.vocab_size, int(n)).astype(np.int32)  # noqa: E731
    if pattern == "equal":
        lengths: list[int] = [SHORT_T] * BATCH
    elif pattern == "ragged":
        lengths = [1, SHORT_T, *rng.integers(1, SHORT_T + 1, BATCH - 2)]
    elif pattern == "single":
        lengths = [SHORT_T - 5]
    elif pattern == "long":
        lengths = [LONG_T, 1, *rng.integers(1, LONG_T + 1, BATCH - 2)]
    elif pattern == "unmasked":
        seqs = [tok(n) for n in (1, SHORT_T, *rng.integers(1, SHORT_T + 1, BATCH - 2))]
        return pad(seqs, [int(s[0]) % cfg.num_classes for s in seqs], time=SHORT_T, mask=False, side="left")
    elif pattern in ("imdb_front", "imdb_back"):
        raw = [tok(n) for n in (IMDB_T + 250, IMDB_T + 1, IMDB_T, 3, *rng.integers(1, IMDB_T + 250, BATCH - 4))]
        cut = [s[-IMDB_T:] if pattern == "imdb_front" else s[:IMDB_T] for s in raw]
        return _seqs_to_batch(cfg, cut, IMDB_T)
    else:
        raise SeqbatchError(f"unknown length pattern {pattern!r}; choose one of {', '.join(PATTERNS)}")
    width = LONG_T if pattern == "long" else SHORT_T
    return _seqs_to_batch(cfg, [tok(n) for n in lengths], width)


def repad(batch: Batch, rng: np.random.Generator, vocab_size: int) -> Batch:
    """The same batch with random token ids under the padding."""
    tokens = np.where(batch.mask, batch.tokens, rng.integers(0, vocab_size, batch.tokens.shape)).astype(np.int32)
    return dataclasses.replace(batch, tokens=tokens)


def config_rng(cfg: ModelConfig, seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(cfg.to_json().encode())])


# ---- the JAX side: jax_impl's model and optimizer, one compiled program per config and width ----
@dataclass(frozen=True)
class Stack:
    """Batches of one width stacked for one JAX call. Row p of `weights` holds 1/B_p on batch p's
    examples and 0 elsewhere, so d(weights[p] . losses) is batch p's mean-loss gradient with the very
    cotangents jax's `grad(mean)` feeds back (1/B_p each). Filler rows (weight 0) pad to a layout."""

    tokens: Int[np.ndarray, "slots time"]
    lengths: Int[np.ndarray, " slots"]
    labels: Int[np.ndarray, " slots"]
    weights: Float[np.ndarray, "rows slots"]
    spans: tuple[tuple[int, int], ...]

    def args(self, tokens: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        return (self.tokens if tokens is None else tokens, self.lengths, self.labels, self.weights)


def stack(batches: Sequence[Batch], dtype: str, *, slots: int = 0, rows: int = 0) -> Stack:
    n = sum(len(b) for b in batches)
    slots, rows, width = max(slots, n), max(rows, len(batches)), batches[0].tokens.shape[1]
    tokens = np.zeros((slots, width), np.int32)
    tokens[n:, 0] = 1  # fillers: one real token each, so every row is a valid example
    lengths, labels = np.ones(slots, np.int32), np.zeros(slots, np.int32)
    weights = np.zeros((rows, slots), dtype)
    spans, start = [], 0
    for p, b in enumerate(batches):
        end = start + len(b)
        tokens[start:end], lengths[start:end], labels[start:end] = b.tokens, b.lengths, b.labels
        weights[p, start:end] = np.asarray(1.0, dtype) / len(b)
        spans.append((start, end))
        start = end
    return Stack(tokens, lengths, labels, weights, tuple(spans))


# XLA:CPU spends most of a compile in LLVM; level 0 compiles these scans ~3x faster, results move by an
# ulp at most. Only the harness's own programs take it (the JSON says so); jax_impl's keep defaults.
FAST_COMPILE: dict[str, Any] = {"xla_backend_optimization_level": 0}


@functools.cache
def jax_evaluate(cfg: ModelConfig, fast: bool = False) -> Callable[..., Any]:
    """jit(params, tokens, lengths, labels, weights) -> logits (N, C), losses (N,), gradients (P, ...)."""
    import jax
    import optax

    from jax_impl.models import apply_batch

    def evaluate(params: Any, tokens: Any, lengths: Any, labels: Any, weights: Any) -> Any:
        def forward(p: Any) -> Any:  # jax_impl.models.batch_losses, keeping the logits
            out = apply_batch(cfg, p, tokens, lengths)
            return optax.softmax_cross_entropy_with_integer_labels(out, labels), out

        losses, vjp, out = jax.vjp(forward, params, has_aux=True)
        # One forward pass; the backward runs once per weight row (vmapped), not once per batch.
        (grads,) = jax.vmap(vjp)(weights)
        return out, losses, grads

    return jax.jit(evaluate, compiler_options=FAST_COMPILE if fast else None)


@functools.cache
def jax_update(variants: tuple[TrainConfig, ...], fast: bool = False) -> Callable[..., Any]:
    """jit: one optimizer step per variant (jax_impl.train.make_optimizer), all in one program."""
    import jax
    import optax

    from jax_impl.train import make_optimizer

    txs = [make_optimizer(v) for v in variants]

    def update(params: list[Any], states: list[Any], grads: list[Any]) -> Any:
        out = [tx.update(g, s, p) for tx, p, s, g in zip(txs, params, states, grads, strict=True)]
        new_params = [optax.apply_updates(p, u) for p, (u, _) in zip(params, out, strict=True)]
        return new_params, [s for _, s in out], [optax.tree.norm(g) for g in grads]

    return jax.jit(update, compiler_options=FAST_COMPILE if fast else None)


def _named(cfg: ModelConfig, tree: Any) -> dict[str, np.ndarray]:
    import jax_impl

    return jax_impl.to_params(jax_impl.Model(cfg, tree))


def _jax_outputs(cfg: ModelConfig, params: Any, st: Stack, fast: bool) -> list[tuple[Any, ...]]:
    """Per stacked batch: (logits, losses, mean loss, gradients by name)."""
    import jax

    # To NumPy before slicing: an eager slice of a JAX array is one dispatch (and compile) per shape.
    out, losses, grads = jax.tree.map(np.asarray, jax_evaluate(cfg, fast)(params, *st.args()))
    return [(out[s:e], losses[s:e], losses[s:e].mean(), _named(cfg, jax.tree.map(lambda g, p=p: g[p], grads)))
            for p, (s, e) in enumerate(st.spans)]


def by_width(batches: Mapping[str, Batch], dtype: str) -> dict[int, tuple[list[str], Stack]]:
    """The batches grouped by padded width, each group stacked for one JAX call."""
    groups: dict[int, list[str]] = {}
    for k, b in batches.items():
        groups.setdefault(b.tokens.shape[1], []).append(k)
    return {w: (names, stack([batches[k] for k in names], dtype)) for w, names in sorted(groups.items())}


# ---- one configuration ------------------------------------------------------------------------
def random_params(cfg: ModelConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Weights from torch's default distributions (shared.layout.init_bound), drawn by NumPy."""
    b = {name: init_bound(cfg, name) for name in parameter_shapes(cfg)}
    return {n: (rng.standard_normal(s) if b[n] is None else rng.uniform(-b[n], b[n], s)).astype(cfg.dtype)
            for n, s in parameter_shapes(cfg).items()}


def _flat(params: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([np.ravel(v) for v in params.values()])


def compare_outputs(cfg: ModelConfig, tm: Any, jm: Any, batches: Mapping[str, Batch], direction: str, *,
                    rng: np.random.Generator | None = None, fast: bool = False) -> list[Comparison]:
    """Logits, losses, mean loss and gradients of every batch; with `rng`, also that random tokens
    under the padding change nothing (logits and gradients, each backend against itself, T <= 200)."""
    tb = get_backend("torch")
    tol = OUTPUT_ABS_TOL[cfg.dtype]
    found: list[Comparison] = []
    for width, (names, st) in by_width(batches, cfg.dtype).items():
        jax_out = _jax_outputs(cfg, jm.params, st, fast)
        # Padding up to T = 200 is enough: longer only repeats the same masked steps, at torch's T=400 cost.
        pad_check = rng is not None and width <= LONG_T
        if pad_check:
            repadded = {k: repad(batches[k], rng, cfg.vocab_size) for k in names}
            jax_rep = _jax_outputs(cfg, jm.params, stack(list(repadded.values()), cfg.dtype), fast)
        for i, k in enumerate(names):
            logits, losses, loss, grads = jax_out[i]
            b = batches[k]
            t_logits, t_losses, t_grads = tb.logits(tm, b), tb.losses(tm, b), tb.gradients(tm, b)
            t_loss = t_losses.mean()  # what backend.loss returns; check_contract calls loss() itself
            case = f"{k} {direction}"
            found += [compare("logits", case, "", t_logits, logits, tol, "abs"),
                      compare("losses", case, "", t_losses, losses, tol, "abs"),
                      compare("loss", case, "", t_loss, loss, tol, "abs")]
            found += [compare("grad", case, n, t_grads[n], grads[n], GRAD_REL_TOL, "rel") for n in t_grads]
            if pad_check and not batches[k].mask.all():
                t_rep = (tb.logits(tm, repadded[k]), tb.gradients(tm, repadded[k]))
                j_rep = (jax_rep[i][0], jax_rep[i][3])
                for side, before, after in (("torch", (t_logits, t_grads), t_rep), ("jax", (logits, grads), j_rep)):
                    found.append(compare("pad_invariance", case, side, np.append(before[0], _flat(before[1])),
                                         np.append(after[0], _flat(after[1])), PAD_TOL, "abs"))
    return found


def trajectories(cfg: ModelConfig, params: Mapping[str, np.ndarray], train_batches: Sequence[Batch],
                 variants: Mapping[str, TrainConfig] = VARIANTS, *, layout: Stack | None = None, fast: bool = False
                 ) -> tuple[list[Comparison], dict[str, int]]:
    """From `params`, each variant trains on `train_batches` on both backends; every step's loss and
    gradient norm and the final weights are compared. The JAX step is jax_impl's train step taken
    apart: gradients from `jax_evaluate` (in `layout`'s shape, to reuse its compile), then
    `make_optimizer`'s update; loss and grad norm are read before the update, as train_step does."""
    import jax

    from jax_impl.train import make_optimizer

    tb, jb = get_backend("torch"), get_backend("jax")
    found: list[Comparison] = []
    clipped: dict[str, int] = {}
    j_params = [jb.from_params(cfg, dict(params)).params for _ in variants]
    states = [make_optimizer(v).init(p) for v, p in zip(variants.values(), j_params, strict=True)]
    update = jax_update(tuple(variants.values()), fast)
    j_loss, j_norm = np.zeros((2, len(variants), len(train_batches)))
    slots, rows = (layout.tokens.shape[0], layout.weights.shape[0]) if layout else (0, 0)
    for step, b in enumerate(train_batches):
        st, grads = stack([b], cfg.dtype, slots=slots, rows=rows), []
        for v, p in enumerate(j_params):
            _, losses, g = jax_evaluate(cfg, fast)(p, *st.args())
            j_loss[v, step] = np.asarray(losses)[: len(b)].mean()
            grads.append(jax.tree.map(lambda x: np.asarray(x)[0], g))
        j_params, states, norms = update(j_params, states, grads)
        j_norm[:, step] = [float(n) for n in norms]
    for v, (name, tc) in enumerate(variants.items()):
        state = tb.train_state(tb.from_params(cfg, dict(params)), tc)
        t_loss, t_norm = [], []
        for b in train_batches:
            state, metrics = tb.train_step(state, b)
            t_loss.append(float(metrics["loss"]))
            t_norm.append(float(metrics["grad_norm"]))
        clipped[name] = int(np.sum(np.asarray(t_norm) > tc.clip_norm)) if tc.clip_norm else 0
        found += [compare("traj_loss", name, "", t_loss, j_loss[v], TRAJ_LOSS_REL_TOL, "rel", elementwise=True),
                  compare("traj_grad_norm", name, "", t_norm, j_norm[v], TRAJ_GRAD_NORM_REL_TOL, "rel",
                          elementwise=True)]
        final = _named(cfg, j_params[v])
        found += [compare("traj_weights", name, n, w, final[n], TRAJ_WEIGHT_REL_TOL, "rel")
                  for n, w in tb.to_params(tb.model_of(state)).items()]
    return found, clipped


def check(cfg: ModelConfig, batches: Mapping[str, Batch] | Batch, *, steps: int = TRAJ_STEPS,
          train_batches: Sequence[Batch] | None = None, variants: Mapping[str, TrainConfig] = VARIANTS,
          file_batches: Collection[str] | None = None, seed: int = 0, fast: bool = False) -> ConfigResult:
    """Everything for one config (run it inside `backend_settings`). Weights travel both ways:
    torch.init -> jax.from_params in memory, and a JAX model -> jax.save -> torch.load through a
    safetensors file; outputs are compared for each (the file way on `file_batches`, default all).
    Trajectories start from torch's weights, over `train_batches` or `steps` ragged batches."""
    if cfg.dropout:
        raise SeqbatchError(f"parity needs dropout=0 (the backends draw different masks), got {cfg.dropout}")
    batches = {"batch": batches} if isinstance(batches, Batch) else batches
    tb, jb = get_backend("torch"), get_backend("jax")
    start, rng = time.perf_counter(), config_rng(cfg, seed)
    result = ConfigResult(cfg)
    t_model = tb.init(cfg, seed)
    pairs = {"torch->jax": (t_model, jb.from_params(cfg, tb.to_params(t_model)))}
    with tempfile.TemporaryDirectory(prefix="seqbatch-parity-") as tmp:
        # Not jax.init: it runs the model eagerly, seconds per config; the file is what is under test.
        j_model = jb.from_params(cfg, random_params(cfg, np.random.default_rng(seed + 1)))
        jb.save(j_model, Path(tmp) / "model.safetensors")
        pairs["jax->torch(file)"] = (tb.load(Path(tmp) / "model.safetensors"), j_model)
    for direction, (tm, jm) in pairs.items():
        result.comparisons.append(compare("transfer", direction, "", _flat(tb.to_params(tm)),
                                          _flat(jb.to_params(jm)), 0.0, "abs"))
        first = direction == "torch->jax"
        subset = batches if first or file_batches is None else {k: batches[k] for k in file_batches}
        # Padding invariance once: it is a property of each backend, not of the transfer.
        result.comparisons += compare_outputs(cfg, tm, jm, subset, direction, rng=rng if first else None, fast=fast)
    if steps or train_batches:
        if train_batches is None:
            train_batches = [pattern_batch(cfg, "ragged", rng) for _ in range(steps)]
        same = by_width(batches, cfg.dtype).get(train_batches[0].tokens.shape[1])
        comps, result.clipped_steps = trajectories(cfg, tb.to_params(t_model), train_batches, variants,
                                                   layout=same[1] if same else None, fast=fast)
        result.comparisons += comps
        result.trajectory_steps = len(train_batches)
    result.seconds = time.perf_counter() - start
    return result
