"""`seqbatch parity`: the parity grid, the device settings it runs under, and its report.

    seqbatch parity --all --dtype both          # 48 configs x length patterns, table + JSON, exit 1 on a failure
    seqbatch parity --cell gru --layers 2 --bidirectional --embed-dim 8

`parity/harness.py` compares one config; this module chooses the configs, runs them (compiling the
next config's JAX programs in a thread while the current one runs), and writes the report.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from parity import flags, resume
from parity import harness as H
from shared.backend import get_backend
from shared.batching import Batch
from shared.config import CELLS, ModelConfig, TrainConfig
from shared.errors import SeqbatchError
from shared.layout import parameter_shapes

RESULTS = Path(__file__).resolve().parent / "results"
VOCAB, CLASSES, HIDDEN, EMBED = 20, 5, 12, 8  # small on purpose: the grid is about coverage, not size
GRID_STEPS = 10  # trajectory length for configs outside the representative set


def grid(dtype: str = "float32", hidden: int = HIDDEN) -> list[ModelConfig]:
    """cell x layers 1|2|3 x uni|bidirectional x one-hot|embedding: 48 configs."""
    return [ModelConfig(VOCAB, CLASSES, cell=c, num_layers=n, bidirectional=bi, hidden_size=hidden,
                        embed_dim=e, dtype=dtype)  # type: ignore[arg-type]
            for c in CELLS for n in (1, 2, 3) for bi in (False, True) for e in (None, EMBED)]


def label(cfg: ModelConfig) -> str:
    inputs = "onehot" if cfg.embed_dim is None else f"emb{cfg.embed_dim}"
    return f"{cfg.cell}-L{cfg.num_layers}-{'bi' if cfg.bidirectional else 'uni'}-{inputs}-{cfg.dtype}"


def representative(cfg: ModelConfig) -> bool:
    """Configs that get full-length trajectories: every cell, 2 layers, bidirectional, one-hot input."""
    return cfg.num_layers == 2 and cfg.bidirectional and cfg.embed_dim is None


# ---- device and precision ---------------------------------------------------------------------
@contextlib.contextmanager
def jax_settings(device: str, dtype: str) -> Iterator[None]:
    """JAX's part of `backend_settings`; JAX config contexts are per thread, so compile threads enter it too."""
    import jax

    try:
        jax_device = jax.local_devices(backend="cpu" if device == "cpu" else "gpu")[0]  # this process's own
    except RuntimeError as e:
        raise SeqbatchError(f"device {device} asked for, but JAX has no such backend ({e})") from e
    with jax.enable_x64(dtype == "float64"), jax.default_matmul_precision("highest"), jax.default_device(jax_device):
        yield


@contextlib.contextmanager
def backend_settings(device: str = "cpu", dtype: str = "float32") -> Iterator[None]:
    """Both backends on `device` at full float precision (no TF32 on either side), JAX x64 for
    float64, one torch thread on CPU; all restored afterwards, so a float64 check leaves x64 off."""
    import torch

    if device not in ("cpu", "cuda"):
        raise SeqbatchError(f"device must be cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise SeqbatchError("device cuda asked for, but torch sees no CUDA device")
    saved_env = os.environ.get("SEQBATCH_TORCH_DEVICE")
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.get_num_threads())
    os.environ["SEQBATCH_TORCH_DEVICE"] = device  # read by reference_torch when it builds a model
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    if device == "cpu":
        torch.set_num_threads(1)  # tiny models: a second intra-op thread only adds synchronisation
    try:
        with jax_settings(device, dtype):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, threads = saved
        torch.set_num_threads(threads)
        os.environ.pop("SEQBATCH_TORCH_DEVICE", None)
        if saved_env is not None:
            os.environ["SEQBATCH_TORCH_DEVICE"] = saved_env


def environment(device: str) -> dict[str, Any]:
    """What a result depends on: versions, platform, device and driver."""
    import flax
    import jax
    import optax
    import torch

    env: dict[str, Any] = {
        "platform": platform.platform(), "python": platform.python_version(), "machine": platform.machine(),
        "cpu": _cpu_name(), "cpu_count": os.cpu_count(), "device": device,
        "torch": torch.__version__, "jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
        "numpy": np.__version__, "torch_cuda": torch.version.cuda, "jax_devices": [str(d) for d in jax.devices()],
    }
    if device == "cuda":
        env["device_name"] = torch.cuda.get_device_name(0)
        env["cudnn"] = torch.backends.cudnn.version()
    if shutil.which("nvidia-smi"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            env["nvidia_smi"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=30, check=False).stdout.strip()
    return env


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def worst(comparisons: Sequence[H.Comparison]) -> dict[str, H.Comparison]:
    """Per quantity (per variant for trajectories), the comparison nearest to, or furthest past, its tolerance."""
    out: dict[str, H.Comparison] = {}
    for c in comparisons:
        key = c.quantity + (f" {c.case}" if c.quantity.startswith("traj") else "")
        if key not in out or _badness(c) > _badness(out[key]):
            out[key] = c
    return out


def _badness(c: H.Comparison) -> float:
    if not np.isfinite(c.value):
        return np.inf
    return c.value / c.tol if c.tol > 0 else (np.inf if c.value > 0 else 0.0)


# ---- the report -------------------------------------------------------------------------------
@dataclass
class Report:
    device: str
    dtype: str
    environment: dict[str, Any]
    settings: dict[str, Any]
    results: list[H.ConfigResult] = field(default_factory=list)
    contract: dict[str, list[H.Comparison]] = field(default_factory=dict)  # config label -> api.* comparisons
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results) and all(c.passed for cs in self.contract.values() for c in cs)

    def failures(self) -> list[tuple[str, H.Comparison]]:
        out = [(label(r.config), c) for r in self.results for c in r.comparisons if not c.passed]
        return out + [(f"contract {k}", c) for k, cs in self.contract.items() for c in cs if not c.passed]

    def table(self) -> str:
        """configuration x quantity -> the worst case, its max abs and max rel, tolerance, ok."""
        rows = [("configuration", "quantity", "worst case", "max abs", "max rel", "tol", "ok")]
        groups = [(label(r.config), worst(r.comparisons)) for r in self.results]
        groups += [(f"contract {k}", worst(cs)) for k, cs in self.contract.items()]
        for name, per_quantity in groups:
            rows += [(name, q, c.where, f"{c.max_abs:.2e}", f"{c.max_rel:.2e}", f"{c.tol:.0e} {c.on}",
                      "ok" if c.passed else "FAIL") for q, c in per_quantity.items()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])

    def to_json(self) -> str:
        def comparisons(cs: list[H.Comparison]) -> list[dict[str, Any]]:
            return [{**dataclasses.asdict(c), "passed": c.passed} for c in cs]

        doc = {
            "format": "seqbatch-parity/1", "device": self.device, "dtype": self.dtype, "passed": self.passed,
            "seconds": round(self.seconds, 1), "environment": self.environment, "settings": self.settings,
            "configs": [{"label": label(r.config), "config": dataclasses.asdict(r.config), "passed": r.passed,
                         "seconds": round(r.seconds, 2), "trajectory_steps": r.trajectory_steps,
                         "clipped_steps": r.clipped_steps, "comparisons": comparisons(r.comparisons)}
                        for r in self.results],
            "contract": {k: comparisons(cs) for k, cs in self.contract.items()},
        }
        return json.dumps(_finite(doc), indent=1)


def _finite(x: Any) -> Any:
    """JSON has no NaN or infinity: write them as strings."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


# ---- running the grid -------------------------------------------------------------------------
def precompile(cfg: ModelConfig, stacks: Sequence[H.Stack], variants: Mapping[str, TrainConfig], fast: bool) -> None:
    """Compile `check`'s JAX programs ahead (e.g. in a thread, inside `backend_settings`): jit's cache
    then serves the later calls, so compiling the next config overlaps running this one."""
    import jax

    from jax_impl.train import make_optimizer

    params = get_backend("jax").from_params(cfg, {k: np.zeros(v) for k, v in parameter_shapes(cfg).items()}).params
    spec = lambda tree: jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), tree)  # noqa: E731
    for st in stacks:
        H.jax_evaluate(cfg, fast).lower(spec(params), *spec(st.args())).compile()
    if variants:
        states = [make_optimizer(v).init(params) for v in variants.values()]
        n = len(variants)
        H.jax_update(tuple(variants.values()), fast).lower(*spec(([params] * n, states, [params] * n))).compile()


def check_contract(cfg: ModelConfig, batch: Batch, *, steps: int = 5,
                   variants: Mapping[str, TrainConfig] = H.VARIANTS, seed: int = 0) -> list[H.Comparison]:
    """The backend contract itself on both sides: logits, losses, loss, gradients, train_state/train_step
    (each compiles on its own in jax_impl, so this runs on few configs). Quantities are prefixed `api.`.
    The weights start in jax.init here (`check` starts from torch.init and from NumPy draws)."""
    tb, jb = get_backend("torch"), get_backend("jax")
    jm = jb.init(cfg, seed)
    tm = tb.from_params(cfg, {k: v.copy() for k, v in jb.to_params(jm).items()})  # writable, as torch wants
    tol = H.OUTPUT_ABS_TOL[cfg.dtype]
    found = [H.compare(f"api.{q}", "contract", "", getattr(tb, q)(tm, batch), getattr(jb, q)(jm, batch), tol, "abs")
             for q in ("logits", "losses", "loss")]
    t_grads, j_grads = tb.gradients(tm, batch), jb.gradients(jm, batch)
    found += [H.compare("api.grad", "contract", n, g, j_grads.get(n), H.GRAD_REL_TOL, "rel")
              for n, g in t_grads.items()]
    # The class-weighted loss (shared/imbalance.py) through both real train steps: uneven weights per class.
    weighted = dataclasses.replace(H.VARIANTS["adam"], class_weights=tuple(np.linspace(0.25, 2.0, cfg.num_classes)))
    for name, tc in {**variants, "adam+class_weights": weighted}.items():
        ts, js = tb.train_state(tb.from_params(cfg, tb.to_params(tm)), tc), jb.train_state(jm, tc)
        t_loss, j_loss = [], []
        for _ in range(steps):
            ts, tmet = tb.train_step(ts, batch)
            js, jmet = jb.train_step(js, batch)
            t_loss.append(float(tmet["loss"]))
            j_loss.append(float(jmet["loss"]))
        found.append(H.compare("api.traj_loss", name, "", t_loss, j_loss, H.TRAJ_LOSS_REL_TOL, "rel", elementwise=True))
        j_final = jb.to_params(jb.model_of(js))
        found += [H.compare("api.traj_weights", name, n, w, j_final[n], H.TRAJ_WEIGHT_REL_TOL, "rel")
                  for n, w in tb.to_params(tb.model_of(ts)).items()]
    return found


def pattern_batches(cfg: ModelConfig, seed: int = 0) -> dict[str, Batch]:
    """Every length pattern that applies to `cfg`, drawn from the config's own random stream."""
    rng = H.config_rng(cfg, seed + 1)
    return {p: H.pattern_batch(cfg, p, rng) for p in H.patterns_for(cfg)}


def _precompile_in(device: str, dtype: str, *args: Any) -> None:
    with jax_settings(device, dtype):
        precompile(*args)


def run(configs: Sequence[ModelConfig], *, device: str = "cpu", steps: int = H.TRAJ_STEPS,
        grid_steps: int = GRID_STEPS, full_steps: Any = representative, contract_on: Sequence[ModelConfig] = (),
        fast: bool = True, seed: int = 0, progress: bool = True) -> Report:
    """`check` every config (one dtype) on every length pattern; configs where `full_steps(cfg)` get
    `steps` trajectory steps, the others min(steps, grid_steps); the contract check on `contract_on`."""
    from tqdm.auto import tqdm

    dtypes = {c.dtype for c in configs}
    if len(dtypes) != 1:
        raise SeqbatchError(f"one dtype per run, got {sorted(dtypes)}")
    dtype, start = dtypes.pop(), time.perf_counter()
    variants = H.VARIANTS
    with backend_settings(device, dtype):
        report = Report(device, dtype, environment(device), _settings(steps, grid_steps, fast, seed))
        batches = [pattern_batches(cfg, seed) for cfg in configs]
        n_steps = [steps if full_steps is None or full_steps(cfg) else min(steps, grid_steps) for cfg in configs]
        for cfg in configs:  # create the jit objects here: two threads racing on a first call could make two
            H.jax_evaluate(cfg, fast)
        H.jax_update(tuple(variants.values()), fast)
        pool = ThreadPoolExecutor(1, thread_name_prefix="parity-compile")
        try:
            futures: list[Future[None]] = [
                pool.submit(_precompile_in, device, dtype, cfg, [st for _, st in H.by_width(b, dtype).values()],
                            variants if n else {}, fast)
                for cfg, b, n in zip(configs, batches, n_steps, strict=True)]
            bar = tqdm(list(zip(configs, batches, n_steps, futures, strict=True)), disable=not progress,
                       desc=f"parity {device} {dtype}", unit="config")
            for cfg, b, n, fut in bar:
                bar.set_postfix_str(label(cfg))
                fut.result()
                short = [k for k, x in b.items() if x.tokens.shape[1] == H.SHORT_T]
                report.results.append(H.check(cfg, b, steps=n, variants=variants, file_batches=short, seed=seed,
                                              fast=fast))
        finally:
            pool.shutdown(cancel_futures=True)
        for cfg in contract_on:
            ragged = H.pattern_batch(cfg, "ragged", H.config_rng(cfg, seed + 2))
            report.contract[label(cfg)] = check_contract(cfg, ragged, variants=variants, seed=seed)
    report.settings["full_trajectory_configs"] = [label(c) for c, n in zip(configs, n_steps, strict=True)
                                                  if n == steps]
    report.seconds = time.perf_counter() - start
    return report


def _settings(steps: int, grid_steps: int, fast: bool, seed: int) -> dict[str, Any]:
    return {
        "tolerances": {"output_abs": H.OUTPUT_ABS_TOL, "grad_rel": H.GRAD_REL_TOL, "pad_abs": H.PAD_TOL,
                       "traj_loss_rel": H.TRAJ_LOSS_REL_TOL,
                       "traj_grad_norm_rel": H.TRAJ_GRAD_NORM_REL_TOL, "traj_weight_rel": H.TRAJ_WEIGHT_REL_TOL},
        "variants": {k: dataclasses.asdict(v) for k, v in H.VARIANTS.items()},
        "trajectory_steps": {"full": steps, "grid": min(steps, grid_steps)},
        "patterns": {"batch": H.BATCH, "short_T": H.SHORT_T, "long_T": H.LONG_T, "imdb_T": H.IMDB_T},
        "jax_compiler_options": H.FAST_COMPILE if fast else {}, "seed": seed,
    }


# ---- the sub-command --------------------------------------------------------------------------
def add_parity(sub: Any) -> None:
    p = sub.add_parser(
        "parity", help="check that the torch reference and the JAX port compute the same thing",
        description="Load the same weights into both backends and compare logits, losses, gradients, padding "
                    "invariance and training trajectories against named tolerances; exit 1 on any failure.")
    p.add_argument("--kind", choices=("classifier", "lm", "skipgram"), default="classifier",
                   help="model kind to check: the sequence classifier, or the language model (logits at every "
                        "step, carried state over stream windows, ragged documents; grid: every cell x 1-2 layers "
                        "x one-hot/embedding x stream/documents); default classifier")
    p.add_argument("--cell", choices=CELLS, default="lstm", help="recurrent cell of the single config (default lstm)")
    p.add_argument("--layers", type=int, default=1, help="stacked recurrent layers of the single config (default 1)")
    p.add_argument("--bidirectional", action="store_true", help="the single config runs a reverse direction too")
    p.add_argument("--embed-dim", type=flags.embed, default=None, metavar="E|one-hot",
                   help="embedding size of the single config, or one-hot input (default one-hot)")
    p.add_argument("--hidden", type=int, default=HIDDEN, help=f"hidden size per direction (default {HIDDEN})")
    p.add_argument("--dtype", choices=("float32", "float64", "both"), default="float32",
                   help="parameter dtype; both runs float32, then float64 (default float32)")
    p.add_argument("--steps", type=int, default=None,
                   help=f"trajectory steps per optimizer variant (default {H.TRAJ_STEPS}; lm: 6 consecutive "
                        "windows); with --all, for the representative configs (every cell, 2 layers, "
                        "bidirectional, one-hot)")
    p.add_argument("--grid-steps", type=int, default=GRID_STEPS,
                   help=f"with --all, trajectory steps for the other configs (default {GRID_STEPS})")
    p.add_argument("--all", action="store_true",
                   help="run the grid: every cell x layers 1-3 x uni/bidirectional x one-hot/embedding")
    p.add_argument("--json", type=Path, default=None,
                   help="where to write the JSON report (default parity/results/parity-<device>-<dtype>.json)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where both backends run (default cpu)")
    p.add_argument("--fast-compile", action=argparse.BooleanOptionalAction, default=True,
                   help="compile the harness's JAX programs at XLA optimisation level 0 (about 3x faster "
                        "compiles, results move by an ulp at most; default on)")
    p.add_argument("--contract", action=argparse.BooleanOptionalAction, default=True,
                   help="also run the backend contract functions themselves (logits ... train_step) on one config")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and batches (default 0)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    resume.add_args(p)
    p.set_defaults(func=cmd_parity)


def cmd_parity(a: argparse.Namespace) -> int:
    if a.resume_check:
        return resume.cmd_resume_check(a, RESULTS)
    paths = flags.check_parity(a, RESULTS)  # every flag, then the report paths: before any work
    if a.kind == "lm":
        from parity.lm import cmd_parity_lm

        return cmd_parity_lm(a, paths)
    if a.kind == "skipgram":
        from parity.skipgram import cmd_parity_skipgram

        return cmd_parity_skipgram(a, paths)
    if a.steps is None:
        a.steps = H.TRAJ_STEPS
    ok = True
    for dtype in paths:
        if a.all:
            configs = grid(dtype, a.hidden)
            contract = [c for c in configs if c.cell == "lstm" and representative(c)]
        else:
            configs = [ModelConfig(VOCAB, CLASSES, cell=a.cell, num_layers=a.layers, bidirectional=a.bidirectional,
                                   hidden_size=a.hidden, embed_dim=a.embed_dim, dtype=dtype)]
            contract = configs
        report = run(configs, device=a.device, steps=a.steps, grid_steps=a.grid_steps,
                     full_steps=representative if a.all else None, contract_on=contract if a.contract else (),
                     fast=a.fast_compile, seed=a.seed, progress=not a.no_progress)
        print(report.table())
        for where, c in report.failures():
            print(f"FAIL {where}: {c.quantity} {c.where}: max abs {c.max_abs:.3e}, max rel {c.max_rel:.3e} "
                  f"> {c.tol:.0e} ({c.on})", file=sys.stderr)
        full = report.settings["full_trajectory_configs"]
        n_cmp = sum(len(r.comparisons) for r in report.results) + sum(len(c) for c in report.contract.values())
        print(f"\ntrajectories ({', '.join(H.VARIANTS)}): {a.steps} steps for {', '.join(full) or 'none'}; "
              f"{min(a.steps, a.grid_steps)} steps for the other {len(configs) - len(full)} configs")
        print(f"{dtype} on {a.device}: {len(configs)} configs, {n_cmp} comparisons, "
              f"{len(report.failures())} failed, {report.seconds:.0f} s")
        paths[dtype].write_text(report.to_json() + "\n")
        print(f"wrote {paths[dtype]}")
        ok = ok and report.passed
    return 0 if ok else 1
