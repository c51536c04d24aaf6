"""`seqbatch profile-step`: where one training step's time goes, on each backend (issue 16, item 1).

Two cases: `names` (the classifier's LSTM, hidden 128, a plain batch of 512 names, SGD with
momentum) and `lm` (the char-RNN lesson's 2 x 512 LSTM language model, batch 128 x 100, Adam, clip 5).
After warm-up, `--steps` steps run under each library's profiler and their time is grouped into
the step's parts, forward and backward: input (embedding), recurrence (input projection and the
recurrent scan), head, loss, and the optimizer (clipping, update, guard); what no operation
accounts for is dispatch, host work and Python (`overhead`).

- jax: `jax.profiler` with XLA:CPU's per-operation trace events (`--xla_cpu_enable_xprof_traceme`,
  set before JAX starts); each event is an HLO instruction of the compiled step, and its
  `op_name` carries the named scopes of jax_impl's model code (`input`, `recurrence`, `head`,
  `loss`, `optimizer`) and whether it belongs to the backward pass (`transpose(...)`);
- torch: `torch.profiler`; an operation belongs to the part of its nearest named ancestor (the
  autograd node for the backward pass, e.g. `MkldnnRnnLayerBackward0`; `Optimizer.step`).

The FLOPs of the step (matrix products) and their rate against the measured matmul peak come with
it. Times are wall-clock per step; operations that run in parallel on several threads are counted
once each, so the parts can add up to more than the step on a multi-core machine.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from parity import flags
from shared.paths import writable_dir

CASES = ("names", "lm")
PARTS = ("input", "recurrence", "head", "loss")
ROWS = [f"forward: {p}" for p in PARTS] + [f"backward: {p}" for p in PARTS] + ["optimizer", "other ops", "overhead"]
TRACE_FLAG = "--xla_cpu_enable_xprof_traceme=true"


def jax_category(op_name: str) -> str:
    """The part an XLA instruction belongs to, from its op_name (named scopes, transforms)."""
    if "optimizer" in op_name:
        return "optimizer"
    part = next((p for p in PARTS if f"/{p}/" in op_name or op_name.endswith(f"/{p}")), None)
    if part is None:
        return "other ops"
    return f"{'backward' if 'transpose(' in op_name else 'forward'}: {part}"


TORCH_FORWARD = [("recurrence", re.compile(r"aten::(lstm|gru|rnn_tanh|rnn_relu|_pack_padded|_pad_packed|mkldnn_rnn)")),
                 ("loss", re.compile(r"aten::(cross_entropy_loss|log_softmax|nll_loss)")),
                 ("input", re.compile(r"aten::embedding")),
                 ("head", re.compile(r"aten::(linear|addmm)"))]
BACKWARD_NODE = "autograd::engine::evaluate_function: "


def torch_forward_part(chain: list[str]) -> str | None:
    """The part of a forward operation: its outermost named ancestor's (chain: innermost first)."""
    for name in reversed(chain):
        part = next((p for p, pat in TORCH_FORWARD if pat.match(name)), None)
        if part:
            return part
    return None


def torch_category(chain: list[str], backward_of: str | None = None) -> str:
    """The part of a torch operation from its name and its ancestors' (innermost first). A backward
    operation takes the part of the forward operation that made its autograd node (`backward_of`,
    found through the profiler's sequence numbers)."""
    for name in chain:
        if name.startswith("Optimizer.") or "clip_grad" in name or "_foreach_norm" in name:
            return "optimizer"
        if name.startswith(BACKWARD_NODE):
            return f"backward: {backward_of}" if backward_of else "other ops"
    part = torch_forward_part(chain)
    return f"forward: {part}" if part else "other ops"


def build(case: str, backend: str, data: Path | None, tiny: bool = False) -> tuple[Any, list[Any], float]:
    """(step function, batches, matmul FLOPs per step) for one case on one backend (`tiny`: for tests)."""
    if case == "lm":
        from parity.bench_lm import EMBED, SIZES, VOCAB, seqbatch_step, step_flops, windows
        from shared.kinds.lm import LMConfig

        hidden, batch = SIZES["tiny" if tiny else "lesson"]
        cfg = LMConfig(VOCAB, cell="lstm", num_layers=2, hidden_size=hidden, embed_dim=EMBED)
        return seqbatch_step(backend, cfg), windows(batch, 2), step_flops(cfg, batch, 100)
    from parity.bench import _backend_step, batch_pool, recurrent_flops
    from shared.config import ModelConfig, TrainConfig
    from shared.dataset import names_dataset

    ds = names_dataset(data, seed=0)
    batch_size = 16 if tiny else 512
    pool, _ = batch_pool(ds, batch_size, bucketed=False, k=2, seed=0)
    model_cfg = ModelConfig(len(ds.vocab), ds.num_classes, cell="lstm", hidden_size=8 if tiny else 128)
    train_cfg = TrainConfig(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=batch_size, seed=0)
    flops = statistics.mean(recurrent_flops(model_cfg, b) for b in pool)
    return _backend_step(backend, model_cfg, train_cfg, per_example=False), pool, flops


def _timed(step: Any, pool: list[Any], steps: int) -> float:
    start = time.perf_counter()
    for i in range(steps):
        step(pool[i % len(pool)])
    return (time.perf_counter() - start) / steps


def profile_jax(step: Any, pool: list[Any], steps: int) -> dict[str, float]:
    import jax

    _HLO_TEXTS.clear()  # this case's programs only (every case compiles a module named jit_step)
    for b in pool * 2:
        step(b)
    names = _hlo_op_names()
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp, create_perfetto_trace=True):
            wall = _timed(step, pool, steps)
        trace = next(Path(tmp).rglob("*.trace.json.gz"))
        with gzip.open(trace) as f:
            events = json.load(f)["traceEvents"]
    parts: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("ph") != "X":
            continue
        key = (e.get("args", {}).get("hlo_module"), e.get("name"))
        if key not in names:
            continue
        kind, op_name = names[key]
        if kind in ("while", "conditional", "call"):  # containers: their bodies' operations are counted
            continue
        parts[jax_category(op_name)] += e["dur"] / 1e6 / steps
    return _finish(parts, wall)


_HLO_TEXTS: list[str] = []


def _hlo_op_names() -> dict[tuple[str, str], tuple[str, str]]:
    """(module, instruction) -> (opcode, op_name) over the programs compiled since the last clear."""
    out: dict[tuple[str, str], tuple[str, str]] = {}
    line_re = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = .*? ([\w\-]+)\(.*?op_name=\"([^\"]*)\"")
    for text in _HLO_TEXTS:
        module = text.split(None, 2)[1].rstrip(",") if text.startswith("HloModule") else ""
        for line in text.splitlines():
            m = line_re.match(line)
            if m:
                out[(module, m.group(1))] = (m.group(2), m.group(3))
    return out


def profile_torch(step: Any, pool: list[Any], steps: int) -> dict[str, float]:
    from torch.profiler import ProfilerActivity, profile

    for b in pool * 2:
        step(b)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        wall = _timed(step, pool, steps)
    events = prof.events()
    chains = {}
    for e in events:
        chain, node = [], e
        while node is not None:
            chain.append(node.name)
            node = node.cpu_parent
        chains[id(e)] = chain
    # An autograd node carries the sequence number of the forward operation that made it.
    made_by: dict[int, str] = {}
    for e in events:
        part = torch_forward_part(chains[id(e)])
        if part and e.sequence_nr >= 0 and not any(n.startswith(BACKWARD_NODE) for n in chains[id(e)]):
            made_by.setdefault(e.sequence_nr, part)
    parts: dict[str, float] = defaultdict(float)
    for e in events:
        node = next((n for n in _ancestors(e) if n.name.startswith(BACKWARD_NODE)), None)
        backward_of = made_by.get(node.sequence_nr) if node is not None else None
        parts[torch_category(chains[id(e)], backward_of)] += e.self_cpu_time_total / 1e6 / steps
    return _finish(parts, wall)


def _ancestors(e: Any) -> list[Any]:
    out = []
    while e is not None:
        out.append(e)
        e = e.cpu_parent
    return out


def _finish(parts: dict[str, float], wall: float) -> dict[str, float]:
    out = {row: parts.get(row, 0.0) * 1e3 for row in ROWS[:-1]}
    out["overhead"] = max(0.0, wall * 1e3 - sum(out.values()))
    out["step"] = wall * 1e3
    return out


def run(a: argparse.Namespace) -> dict[str, Any]:
    from parity.bench import machine_info, matmul_peak, use_device

    use_device("cpu", ("torch", "jax"), None)
    peak = max(matmul_peak("cpu", ("torch", "jax")).values())
    import jax

    _capture_compiles(jax)
    results = []
    for case in a.cases:
        for backend in ("torch", "jax"):
            step, pool, flops = build(case, backend, a.data, tiny=a.tiny)
            ms = profile_jax(step, pool, a.steps) if backend == "jax" else profile_torch(step, pool, a.steps)
            rate = flops / (ms["step"] / 1e3)
            results.append({"case": case, "backend": backend, "ms": ms, "flops_per_step": flops,
                            "gflop_per_s": rate / 1e9, "flops_fraction": rate / peak})
    return {"machine": machine_info("cpu", ("torch", "jax")), "matmul_peak_flops": peak, "steps": a.steps,
            "tiny": a.tiny, "results": results}


def _capture_compiles(jax: Any) -> None:
    """Keep the optimized HLO text of every program JAX compiles from here on (for the op names)."""
    from jax._src import compiler

    original = compiler.backend_compile_and_load if hasattr(compiler, "backend_compile_and_load") else None
    if original is None:  # an older or newer JAX: read the dump instead
        return

    def keep(*args: Any, **kwargs: Any) -> Any:
        executable = original(*args, **kwargs)
        with contextlib.suppress(Exception):  # the profile is still useful without one program's names
            _HLO_TEXTS.extend(m.to_string() for m in executable.hlo_modules())
        return executable

    compiler.backend_compile_and_load = keep


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# profile-step (cpu): one training step, {report['steps']} profiled steps, ms per step", "",
             f"{report['machine'].get('cpu', '')}; torch {report['machine']['versions'].get('torch')}, jax "
             f"{report['machine']['versions'].get('jax')}; matmul peak {report['matmul_peak_flops'] / 1e9:.0f} "
             "GFLOP/s", ""]
    for case in sorted({r["case"] for r in report["results"]}):
        recs = {r["backend"]: r for r in report["results"] if r["case"] == case}
        title = ("names classifier: LSTM h128, batch 512, SGD" if case == "names"
                 else "language model: 2 x 512 LSTM, batch 128 x 100, Adam, clip 5")
        if report.get("tiny"):
            title = f"{title.split(':')[0]}: tiny stand-in (--tiny)"
        lines += [f"## {title}", "", "| part | torch ms | torch % | jax ms | jax % |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for row in [*ROWS, "step"]:
            cells = []
            for b in ("torch", "jax"):
                ms = recs[b]["ms"]
                cells += [f"{ms[row]:.1f}", f"{100 * ms[row] / ms['step']:.0f} %"]
            lines.append(f"| {'**step (wall)**' if row == 'step' else row} | " + " | ".join(cells) + " |")
        lines += ["", "| | torch | jax |", "| --- | ---: | ---: |",
                  f"| matmul GFLOP per step | {recs['torch']['flops_per_step'] / 1e9:.2f} | "
                  f"{recs['jax']['flops_per_step'] / 1e9:.2f} |",
                  f"| GFLOP/s | {recs['torch']['gflop_per_s']:.0f} | {recs['jax']['gflop_per_s']:.0f} |",
                  f"| of the matmul peak | {recs['torch']['flops_fraction']:.0%} "
                  f"| {recs['jax']['flops_fraction']:.0%} |",
                  ""]
    return "\n".join(lines)


def add_profile_step(sub: Any) -> None:
    p = sub.add_parser("profile-step", help="where one training step's time goes, per backend",
                       description=__doc__.split("\n\n")[0] + " Writes profile.json and profile.md.")
    p.add_argument("--cases", type=flags.split, default=CASES, help=f"comma-separated among {', '.join(CASES)}")
    p.add_argument("--steps", type=int, default=5, help="profiled steps per case and backend (default 5)")
    p.add_argument("--data", type=Path, default=None, help="names folder for the names case (default: embedded)")
    p.add_argument("--tiny", action="store_true", help="tiny models instead of the cases' sizes (a smoke test)")
    p.add_argument("--out", type=Path, required=True, help="folder for profile.json and profile.md")
    p.set_defaults(func=cmd_profile_step)


def cmd_profile_step(a: argparse.Namespace) -> int:
    a.cases = flags.names(a.cases, CASES, "--cases")
    flags.at_least(a.steps, 1, "--steps")
    flags.existing(a.data)
    out = writable_dir(a.out)
    if TRACE_FLAG not in os.environ.get("XLA_FLAGS", ""):  # before JAX makes its CPU backend
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TRACE_FLAG}".strip()
    report = run(a)
    (out / "profile.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "profile.md").write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {out}/profile.json, profile.md", file=sys.stderr)
    return 0
