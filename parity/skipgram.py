"""Cross-backend parity for the skip-gram kind (`seqbatch parity --kind skipgram`), issue 13 item 6.

The same weights in both backends and the same batches (shared/skipgram_data.py on a Zipf corpus),
then, with the classifier's float32 tolerances and 1e-10 in float64:

- `scores` [B, 1+K], per-pair `losses` and the mean `loss` (abs);
- each table's gradient of the mean loss (`grad`, relative to torch's largest entry);
- `transfer`: weights jax -> safetensors -> torch come back bit for bit;
- trajectories of 100 steps: word2vec's sparse SGD (`sparse_steps`, the rate decaying linearly, as
  `seqbatch train --task skipgram` runs it, JAX scanning 8 steps per call) and the dense Adam
  option: the loss at every step (relative) and the final weights of the rows the batches touched.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from parity import harness as H
from shared.backend import get_backend, kind_module
from shared.config import TrainConfig
from shared.kinds.skipgram import SkipgramConfig
from shared.layout import parameter_shapes
from shared.skipgram_data import SkipgramBatch, SkipgramDataConfig, build_corpus, epoch_batches

VOCAB, DIM, BATCH, STEPS, GROUP = 80, 16, 64, 100, 8
GRAD_TOL = {"float32": H.GRAD_REL_TOL, "float64": 1e-10}
TRAJ_LOSS_TOL = {"float32": H.TRAJ_LOSS_REL_TOL, "float64": 1e-10}
TRAJ_WEIGHT_TOL = {"float32": H.TRAJ_WEIGHT_REL_TOL, "float64": 1e-10}
ADAM = TrainConfig(optimizer="adam", lr=0.01, steps=STEPS, max_loss=None)
SGD = TrainConfig(optimizer="sgd", lr=0.05, momentum=0.0, steps=STEPS, max_loss=None)


def batches(seed: int, n: int) -> list[SkipgramBatch]:
    rng = np.random.default_rng(seed)
    docs = [[f"w{int(i) % VOCAB}" for i in rng.zipf(1.3, 60)] for _ in range(300)]
    corpus = build_corpus(docs, min_count=1)
    cfg = SkipgramDataConfig(min_count=1, window=3, negatives=5, sample=1e-2)
    out: list[SkipgramBatch] = []
    epoch = 0
    while len(out) < n:
        out += [b for b in epoch_batches(corpus, cfg, BATCH, seed=seed, epoch=epoch) if len(b) == BATCH]
        epoch += 1
    return out[:n]


def check_skipgram(dtype: str, *, seed: int = 0, steps: int = STEPS) -> H.ConfigResult:
    start = time.perf_counter()
    data = batches(seed, max(steps, 1))
    cfg = SkipgramConfig(vocab_size=VOCAB, embed_dim=DIM, dtype=dtype)  # the corpus's ids are < VOCAB
    rng = np.random.default_rng(seed + 1)
    params = {k: (0.3 * rng.standard_normal(s)).astype(dtype) for k, s in parameter_shapes(cfg).items()}
    result = H.ConfigResult(cfg)  # type: ignore[arg-type]
    cs = result.comparisons
    tb, jb = get_backend("torch"), get_backend("jax")
    tk, jk = kind_module(tb, "skipgram"), kind_module(jb, "skipgram")
    tm, jm = tb.from_params(cfg, params), jb.from_params(cfg, params)
    out_tol = H.OUTPUT_ABS_TOL[dtype]
    for i, batch in enumerate(data[:2]):
        case = f"batch {i}"
        cs.append(H.compare("scores", case, "", tk.logits(tm, batch), jk.logits(jm, batch), out_tol, "abs"))
        cs.append(H.compare("losses", case, "", tk.losses(tm, batch), jk.losses(jm, batch), out_tol, "abs"))
        cs.append(H.compare("loss", case, "", tk.loss(tm, batch), jk.loss(jm, batch), out_tol, "abs"))
        tg, jg = tk.gradients(tm, batch), jk.gradients(jm, batch)
        cs += [H.compare("grad", case, n, tg[n], jg[n], GRAD_TOL[dtype], "rel") for n in params]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sg.safetensors"
        jb.save(jm, path)
        back = tb.to_params(tb.load(path))
        cs += [H.compare("transfer", "jax->torch", n, params[n], back[n], 0.0, "abs") for n in params]
    touched = {"in_embed.weight": np.unique(np.concatenate([b.centre for b in data[:steps]])),
               "out_embed.weight": np.unique(np.concatenate([np.r_[b.context, b.negatives.ravel()]
                                                             for b in data[:steps]]))}
    lrs = list(np.linspace(SGD.lr, SGD.lr / 100, steps))
    for variant in ("sgd (word2vec, sparse)", "adam (dense)"):
        runs = {}
        for name, b, k in (("torch", tb, tk), ("jax", jb, jk)):
            train = SGD if variant.startswith("sgd") else ADAM
            state = b.train_state(b.from_params(cfg, params), train)
            metrics: list[Any] = []
            for lo in range(0, steps, GROUP):
                if train is SGD:
                    state, ms = k.sparse_steps(state, data[lo:lo + GROUP], lrs[lo:lo + GROUP])
                else:
                    ms = []
                    for batch in data[lo:lo + GROUP]:
                        state, m = k.train_step(state, batch)
                        ms.append(m)
                metrics += ms
            runs[name] = ([m["loss"] for m in k.host_metrics(metrics)], b.to_params(b.model_of(state)))
        (tl, tw), (jl, jw) = runs["torch"], runs["jax"]
        cs.append(H.compare("traj_loss", variant, "", tl, jl, TRAJ_LOSS_TOL[dtype], "rel", elementwise=True))
        cs += [H.compare("traj_weights", variant, n, tw[n][touched[n]], jw[n][touched[n]], TRAJ_WEIGHT_TOL[dtype],
                         "rel") for n in tw]
    result.trajectory_steps = steps
    result.seconds = time.perf_counter() - start
    return result


def cmd_parity_skipgram(a: Any, paths: dict[str, Path]) -> int:
    """`seqbatch parity --kind skipgram [--dtype both]`: the checks above per dtype, a table, a JSON report."""
    from parity.harness_cli import _finite, backend_settings, environment, worst

    steps = STEPS if a.steps is None else a.steps
    ok = True
    for dtype in paths:
        with backend_settings(a.device, dtype):
            r = check_skipgram(dtype, seed=a.seed, steps=max(steps, 1))
        for c in worst(r.comparisons).values():
            print(f"{c.quantity:14s} {c.where:44s} max abs {c.max_abs:.2e}  max rel {c.max_rel:.2e}  "
                  f"tol {c.tol:.0e} {c.on}  {'ok' if c.passed else 'FAIL'}")
        failed = [c for c in r.comparisons if not c.passed]
        for c in failed:
            print(f"FAIL {c.quantity} {c.where}: max abs {c.max_abs:.3e}, max rel {c.max_rel:.3e} > {c.tol:.0e}",
                  file=sys.stderr)
        print(f"skipgram {dtype} on {a.device}: {len(r.comparisons)} comparisons, {len(failed)} failed, "
              f"{r.seconds:.0f} s")
        report = {"format": "seqbatch-parity-skipgram/1", "kind": "skipgram", "device": a.device, "dtype": dtype,
                  "passed": not failed, "seconds": round(r.seconds, 1), "environment": environment(a.device),
                  "settings": {"vocab": VOCAB, "dim": DIM, "batch": BATCH, "steps": r.trajectory_steps,
                               "group": GROUP, "sgd_lr": [SGD.lr, SGD.lr / 100], "adam_lr": ADAM.lr},
                  "comparisons": [{**c.__dict__, "passed": c.passed} for c in r.comparisons]}
        paths[dtype].write_text(json.dumps(_finite(report), indent=1) + "\n")
        print(f"wrote {paths[dtype]}")
        ok = ok and not failed
    return 0 if ok else 1

