"""Cross-backend parity for the language model: the same weights in both backends, every output compared.

For one LMConfig and one way of batching (a stream of windows with the state carried between them,
or ragged documents), `check_lm` compares, with the classifier's tolerances (parity/harness.py):

- `logits` [B, T, V] at every real position, `losses` per position, the mean `loss`, and the `carry`
  (h, and c for an LSTM) after each row's last real step, on the first batch and on a later window
  started from the carried state (stream);
- every parameter's gradient by its PyTorch name (`grad`, relative to torch's largest entry);
- `pad_invariance`: other tokens under the padding change nothing at real positions (documents);
- `transfer`: weights jax -> safetensors -> torch come back bit for bit;
- trajectories of K consecutive batches (stream: the carried state crosses every window edge) for
  SGD with momentum and Adam with clipping: loss and gradient norm at every step, final weights.

Unlike the classifier grid, both sides run through the backend contract (`<backend>.models.lm`):
the LM grid is small enough to compile each function per configuration.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from parity import harness as H
from shared.backend import get_backend, kind_module
from shared.config import CELLS, TrainConfig
from shared.kinds.lm import LMBatch, LMConfig

VOCAB, HIDDEN, EMBED = 13, 12, 6
ROWS, WINDOW, WINDOWS = 4, 12, 6  # stream: 4 rows, windows of 12 characters, 6 consecutive windows
LM_VARIANTS: dict[str, TrainConfig] = {
    "sgd": H.VARIANTS["sgd"],
    "adam+clip": H.VARIANTS["adam+clip"],
}


def grid(dtype: str = "float32") -> list[LMConfig]:
    """Every cell x 1-2 layers x one-hot/embedding input."""
    return [LMConfig(VOCAB, cell=c, num_layers=n, hidden_size=HIDDEN, embed_dim=e, dtype=dtype)
            for c in CELLS for n in (1, 2) for e in (None, EMBED)]


def label(cfg: LMConfig, batching: str) -> str:
    return f"lm {cfg.cell} L{cfg.num_layers} {'onehot' if cfg.embed_dim is None else f'emb{cfg.embed_dim}'} {batching}"


def stream_batches(rng: np.random.Generator, k: int = WINDOWS) -> list[LMBatch]:
    """K consecutive windows of one random text laid out in ROWS rows (shared.lm_data's layout)."""
    from shared.lm_data import stream_windows

    text = rng.integers(2, VOCAB, ROWS * WINDOW * k + 1).astype(np.int32)
    return list(stream_windows(text, ROWS, WINDOW))


def doc_batches(rng: np.random.Generator, k: int = WINDOWS) -> list[LMBatch]:
    """K batches of 6 ragged documents (lengths 1 and T among them), junk under the padding."""
    from shared.lm_data import doc_batch

    out = []
    for _ in range(k):
        lengths = np.concatenate([[2, 17], rng.integers(2, 18, 4)])
        batch = doc_batch([rng.integers(2, VOCAB, n).astype(np.int32) for n in lengths], multiple=8)
        out.append(junk_padding(batch, rng))
    return out


def junk_padding(batch: LMBatch, rng: np.random.Generator) -> LMBatch:
    """The same batch with random tokens (not PAD) under the padding."""
    pad = ~batch.mask
    inputs = np.where(pad, rng.integers(2, VOCAB, batch.inputs.shape), batch.inputs).astype(np.int32)
    targets = np.where(pad, rng.integers(2, VOCAB, batch.inputs.shape), batch.targets).astype(np.int32)
    return dataclasses.replace(batch, inputs=inputs, targets=targets)


def _outputs(lm: Any, model: Any, batch: LMBatch, carry: Any) -> dict[str, Any]:
    logits, new = lm.logits(model, batch, carry)
    losses, _ = lm.losses(model, batch, carry)
    return {"logits": np.where(batch.mask[:, :, None], logits, 0.0), "losses": losses,
            "loss": lm.loss(model, batch, carry), "carry": np.stack(new)}


def check_lm(cfg: LMConfig, batching: str, *, seed: int = 0, steps: int = WINDOWS) -> H.ConfigResult:
    """All comparisons for one config and one way of batching (see the module docstring)."""
    start = time.perf_counter()
    torch_b, jax_b = get_backend("torch"), get_backend("jax")
    tlm, jlm = kind_module(torch_b, "lm"), kind_module(jax_b, "lm")
    rng = np.random.default_rng(seed + 1009 * CELLS.index(cfg.cell) + 7 * cfg.num_layers)
    params = H.random_params(cfg, rng)
    batches = stream_batches(rng, max(steps, 2)) if batching == "stream" else doc_batches(rng, max(steps, 2))
    tm, jm = tlm.from_params(cfg, params), jlm.from_params(cfg, params)
    out_tol, result = H.OUTPUT_ABS_TOL[cfg.dtype], H.ConfigResult(cfg)  # type: ignore[arg-type]
    cs = result.comparisons

    # The first batch from a zero state, then (stream) the second window from the state torch carried.
    t_carry: Any = None
    for i, batch in enumerate(batches[:2]):
        case = f"{batching} batch {i}"
        t_out, j_out = _outputs(tlm, tm, batch, t_carry), _outputs(jlm, jm, batch, t_carry)
        for q in ("logits", "losses", "loss", "carry"):
            cs.append(H.compare(q, case, "", t_out[q], j_out[q], out_tol, "abs"))
        t_grads, j_grads = tlm.gradients(tm, batch, t_carry), jlm.gradients(jm, batch, t_carry)
        cs += [H.compare("grad", case, n, t_grads[n], j_grads[n], H.GRAD_REL_TOL, "rel") for n in params]
        t_carry = tuple(t_out["carry"])
    if batching == "documents":
        other = junk_padding(batches[0], rng)
        for name, lm, m in (("torch", tlm, tm), ("jax", jlm, jm)):
            a, b = _outputs(lm, m, batches[0], None), _outputs(lm, m, other, None)
            cs.append(H.compare("pad_invariance", "documents", name, a["logits"], b["logits"], H.PAD_TOL, "abs"))

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lm.safetensors"
        jax_b.save(jm, path)
        back = torch_b.to_params(torch_b.load(path))
        cs += [H.compare("transfer", "jax->torch", n, params[n], back[n], 0.0, "abs") for n in params]

    for variant, train_cfg in LM_VARIANTS.items():
        cs += _trajectory(cfg, params, batches[:steps], variant, train_cfg)
    result.trajectory_steps = steps
    result.seconds = time.perf_counter() - start
    return result


def _trajectory(cfg: LMConfig, params: dict[str, np.ndarray], batches: Sequence[LMBatch], variant: str,
                train_cfg: TrainConfig) -> list[H.Comparison]:
    """The same batches through each backend's train_step; the state carries unless a batch resets."""
    runs: dict[str, tuple[list[float], list[float], dict[str, np.ndarray]]] = {}
    for name in ("torch", "jax"):
        backend = get_backend(name)
        state = backend.train_state(backend.from_params(cfg, params), train_cfg)
        losses, norms = [], []
        for batch in batches:
            state, metrics = backend.train_step(state, batch)
            losses.append(float(metrics["loss"]))
            norms.append(float(metrics["grad_norm"]))
        runs[name] = (losses, norms, backend.to_params(backend.model_of(state)))
    (tl, tn, tw), (jl, jn, jw) = runs["torch"], runs["jax"]
    out = [H.compare("traj_loss", variant, "", tl, jl, H.TRAJ_LOSS_REL_TOL, "rel", elementwise=True),
           H.compare("traj_grad_norm", variant, "", tn, jn, H.TRAJ_GRAD_NORM_REL_TOL, "rel", elementwise=True)]
    return out + [H.compare("traj_weights", variant, n, tw[n], jw[n], H.TRAJ_WEIGHT_REL_TOL, "rel") for n in tw]


def run_grid(dtype: str, *, device: str = "cpu", seed: int = 0, steps: int = WINDOWS,
             progress: bool = True) -> list[tuple[str, H.ConfigResult]]:
    """`check_lm` for every config of `grid(dtype)` and both ways of batching, under parity's device settings."""
    from tqdm.auto import tqdm

    from parity.harness_cli import backend_settings

    jobs = [(cfg, b) for cfg in grid(dtype) for b in ("stream", "documents")]
    out = []
    with backend_settings(device, dtype):
        for cfg, batching in tqdm(jobs, disable=not progress, desc=f"parity lm {device} {dtype}", unit="config"):
            out.append((label(cfg, batching), check_lm(cfg, batching, seed=seed, steps=steps)))
    return out



def report_json(dtype: str, device: str, results: list[tuple[str, H.ConfigResult]], seconds: float) -> dict[str, Any]:
    from parity.harness_cli import _finite, environment

    return _finite({
        "format": "seqbatch-parity-lm/1", "kind": "lm", "device": device, "dtype": dtype,
        "passed": all(r.passed for _, r in results), "seconds": round(seconds, 1), "environment": environment(device),
        "settings": {"tolerances": {"output_abs": H.OUTPUT_ABS_TOL, "grad_rel": H.GRAD_REL_TOL, "pad_abs": H.PAD_TOL,
                                    "traj_loss_rel": H.TRAJ_LOSS_REL_TOL,
                                    "traj_grad_norm_rel": H.TRAJ_GRAD_NORM_REL_TOL,
                                    "traj_weight_rel": H.TRAJ_WEIGHT_REL_TOL},
                     "variants": {k: dataclasses.asdict(v) for k, v in LM_VARIANTS.items()},
                     "stream": {"rows": ROWS, "window": WINDOW}, "documents": {"batch": 6, "max_len": 17}},
        "configs": [{"label": name, "config": dataclasses.asdict(r.config), "passed": r.passed,
                     "seconds": round(r.seconds, 2), "trajectory_steps": r.trajectory_steps,
                     "comparisons": [{**dataclasses.asdict(c), "passed": c.passed} for c in r.comparisons]}
                    for name, r in results],
    })


def table(results: list[tuple[str, H.ConfigResult]]) -> str:
    """configuration x quantity -> the worst case, as the classifier's parity table."""
    from parity.harness_cli import worst

    rows = [("configuration", "quantity", "worst case", "max abs", "max rel", "tol", "ok")]
    for name, r in results:
        rows += [(name, q, c.where, f"{c.max_abs:.2e}", f"{c.max_rel:.2e}", f"{c.tol:.0e} {c.on}",
                  "ok" if c.passed else "FAIL") for q, c in worst(r.comparisons).items()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def cmd_parity_lm(a: Any, paths: dict[str, Path]) -> int:
    """`seqbatch parity --kind lm [--all]`: one config (--cell, --layers, --embed-dim) or the grid; the
    flags and the report `paths` (one per dtype) were checked by `parity.flags.check_parity`."""
    import json
    import sys

    from parity.harness_cli import backend_settings

    steps = WINDOWS if a.steps is None else a.steps
    ok = True
    for dtype in paths:
        start = time.perf_counter()
        if a.all:
            results = run_grid(dtype, device=a.device, seed=a.seed, steps=steps, progress=not a.no_progress)
        else:
            cfg = LMConfig(VOCAB, cell=a.cell, num_layers=a.layers, hidden_size=a.hidden, embed_dim=a.embed_dim,
                           dtype=dtype)
            with backend_settings(a.device, dtype):
                results = [(label(cfg, b), check_lm(cfg, b, seed=a.seed, steps=steps)) for b in ("stream", "documents")]
        seconds = time.perf_counter() - start
        print(table(results))
        failed = [(n, c) for n, r in results for c in r.comparisons if not c.passed]
        for name, c in failed:
            print(f"FAIL {name}: {c.quantity} {c.where}: max abs {c.max_abs:.3e}, max rel {c.max_rel:.3e} "
                  f"> {c.tol:.0e} ({c.on})", file=sys.stderr)
        n_cmp = sum(len(r.comparisons) for _, r in results)
        print(f"lm {dtype} on {a.device}: {len(results)} configs, {n_cmp} comparisons, {len(failed)} failed, "
              f"{seconds:.0f} s")
        paths[dtype].write_text(json.dumps(report_json(dtype, a.device, results, seconds), indent=1) + "\n")
        print(f"wrote {paths[dtype]}")
        ok = ok and not failed
    return 0 if ok else 1
