"""`seqbatch bench-dp`: training throughput against the number of processes or devices (issue 15, item 5).

One optimizer step of the names classifier (LSTM, hidden 128, global batch 512, SGD with momentum)
on real batches, timed after warm-up, for every data-parallel layout of both backends:

- torch, N processes: DistributedDataParallel (gloo on a CPU), each rank training on its shard of
  every global batch (`torch.distributed.run`);
- jax, N devices: one program, the batch axis sharded over N devices of one process (host devices
  on a CPU);
- jax, N processes: one program over N processes of one device each (`jax.distributed`, gloo).

Every layout runs in fresh processes (a device count or a process group is fixed at start-up) and
reports examples/s of the global batch (`examples_per_s`), the speedup over the same backend's one
process, and the scaling efficiency (speedup / N). On a machine with C cores, N workers share them:
with N <= C the figures show what data parallel costs and gains there; they cannot show what N
GPUs or N nodes would give.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from parity import flags
from shared.distributed import check_world
from shared.paths import writable_dir

LAYOUTS = ("torch_procs", "jax_devices", "jax_procs")
HIDDEN, BATCH, POOL = 128, 512, 4


def _measure(step: Any, pool: list[Any], min_seconds: float) -> float:
    """Seconds per step: parity/bench.py's measure (warm-up over the pool, at least 3 passes)."""
    from parity.bench import measure

    return measure(step, pool, repeats=3 * len(pool), min_seconds=min_seconds)["step_ms"] / 1e3


def worker(layout: str, n: int, min_seconds: float, out: Path, hidden: int = HIDDEN, batch: int = BATCH) -> None:
    """Inside the fresh process(es) of one layout: time the step, rank 0 writes the record."""
    from parity.bench import batch_pool
    from shared.config import ModelConfig, TrainConfig
    from shared.dataset import names_dataset

    data = names_dataset(None, seed=0)
    pool, _ = batch_pool(data, batch, bucketed=False, k=POOL, seed=0)
    model_cfg = ModelConfig(len(data.vocab), data.num_classes, cell="lstm", hidden_size=hidden)
    train_cfg = TrainConfig(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=batch, seed=0)
    main = True
    if layout == "torch_procs":
        import torch

        from parity.data_parallel import shard
        from reference_torch import parallel
        from reference_torch.train import train_state, train_step
        from shared.backend import get_backend

        world = parallel.init_world() if n > 1 else None
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // n))
        state = [train_state(get_backend("torch").init(model_cfg, 0), train_cfg)]

        def step(batch: Any) -> None:
            part = shard(batch, world.rank, world.size) if world is not None else batch
            state[0], metrics = train_step(state[0], part)
            float(metrics["loss"])

        seconds = _measure(step, pool, min_seconds)
        if world is not None:
            main = world.main
            world.close()
    else:
        import dataclasses

        import jax

        from jax_impl import parallel
        from jax_impl.train import train_state, train_step
        from shared.backend import get_backend
        from shared.distributed import request_host_devices

        world = parallel.init_world() if layout == "jax_procs" and n > 1 else None
        if layout == "jax_devices":
            request_host_devices(n)
        devices = world.devices if world is not None else n
        jstate = [train_state(get_backend("jax").init(model_cfg, 0), dataclasses.replace(train_cfg, devices=devices))]

        def jstep(batch: Any) -> None:
            jstate[0], metrics = train_step(jstate[0], batch)
            jax.block_until_ready(metrics["loss"])

        seconds = _measure(jstep, pool, min_seconds)
        if world is not None:
            main = world.main
            world.close()
    if main:
        out.write_text(json.dumps({"layout": layout, "n": n, "step_ms": 1e3 * seconds,
                                   "examples_per_s": batch / seconds}) + "\n")


def run_layout(layout: str, n: int, min_seconds: float, out: Path, hidden: int = HIDDEN,
               batch: int = BATCH) -> dict[str, Any]:
    """One layout at N workers, in fresh processes; its record."""
    argv = ["--worker", layout, "--count", str(n), "--min-seconds", str(min_seconds), "--record", str(out),
            "--hidden", str(hidden), "--batch-size", str(batch)]
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "WORLD_SIZE", "RANK")}
    env["SEQBATCH_TORCH_DEVICE"] = "cpu"
    env["JAX_PLATFORMS"] = "cpu"
    if layout == "torch_procs" and n > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
               "-m", "parity.bench_dp", *argv]
    elif layout == "jax_procs" and n > 1:
        cmd = [sys.executable, "-c", "import sys; from shared.cli.procs import launch_jax; "
               f"sys.exit(launch_jax(sys.argv[1:], {n}, module='parity.bench_dp'))", *argv]
    else:
        cmd = [sys.executable, "-m", "parity.bench_dp", *argv]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        from shared.errors import SeqbatchError

        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SeqbatchError(f"bench-dp: {layout} over {n} failed: {tail}")
    return json.loads(out.read_text())


def run(layouts: tuple[str, ...], counts: tuple[int, ...], min_seconds: float, scratch: Path,
        progress: bool = True, hidden: int = HIDDEN, batch: int = BATCH) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from parity.bench import machine_info

    records = []
    jobs = [(layout, n) for layout in layouts for n in counts]
    for layout, n in tqdm(jobs, desc="bench-dp", unit="run", disable=not progress):
        records.append(run_layout(layout, n, min_seconds, scratch / f"{layout}-{n}.json", hidden, batch))
    for r in records:
        base = next((b for b in records if b["n"] == 1 and b["layout"].split("_")[0] == r["layout"].split("_")[0]),
                    None)
        if base is not None:
            r["speedup"] = r["examples_per_s"] / base["examples_per_s"]
            r["efficiency"] = r["speedup"] / r["n"]
    return {"machine": machine_info("cpu", ("torch", "jax")), "cpus": os.cpu_count(), "hidden": hidden,
            "batch_size": batch, "records": records}


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# bench-dp (cpu, {report['cpus']} cores): names LSTM, hidden {report['hidden']}, global batch "
             f"{report['batch_size']}, one SGD step", "",
             "| layout | workers | step ms | examples/s | speedup over 1 | efficiency |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in report["records"]:
        lines.append(f"| {r['layout'].replace('_', ' ')} | {r['n']} | {r['step_ms']:.1f} | {r['examples_per_s']:,.0f} "
                     f"| {r.get('speedup', float('nan')):.2f}x | {r.get('efficiency', float('nan')):.0%} |")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for layout, style in zip(LAYOUTS, ("o-", "s-", "^-"), strict=True):
        pts = sorted((r["n"], r["examples_per_s"]) for r in report["records"] if r["layout"] == layout)
        if pts:
            ax.plot(*zip(*pts, strict=True), style, label=layout.replace("_", " "))
    ax.set(xlabel="processes or devices", ylabel="examples / s (global batch)",
           title=f"data parallel on {report['cpus']} CPU cores (names LSTM h{report['hidden']}, "
                 f"batch {report['batch_size']})")
    ax.set_xticks(sorted({r["n"] for r in report["records"]}))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def add_bench_dp(sub: Any) -> None:
    p = sub.add_parser("bench-dp", help="training throughput against the number of processes or devices",
                       description=__doc__.splitlines()[0] + " Writes dp.json, dp.md and dp.png.")
    p.add_argument("--layouts", type=flags.split, default=LAYOUTS,
                   help=f"comma-separated among {', '.join(LAYOUTS)} (default all)")
    p.add_argument("--counts", type=flags.int_list, default=(1, 2),
                   help="comma-separated numbers of processes or devices (default 1,2)")
    p.add_argument("--min-seconds", type=float, default=3.0,
                   help="time each layout at least this long (seconds > 0; default 3)")
    p.add_argument("--hidden", type=int, default=HIDDEN, help=f"LSTM hidden size (default {HIDDEN})")
    p.add_argument("--batch-size", type=int, default=BATCH,
                   help=f"global batch, divisible by every count (default {BATCH})")
    p.add_argument("--out", type=Path, required=True, help="folder for dp.json, dp.md, dp.png")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_bench_dp)


def cmd_bench_dp(a: argparse.Namespace) -> int:
    layouts = flags.names(a.layouts, LAYOUTS, "--layouts")
    flags.all_at_least(a.counts, 1, "--counts")
    flags.positive_seconds(a.min_seconds, "--min-seconds")
    flags.at_least(a.hidden, 1, "--hidden")
    counts = tuple(sorted(set(a.counts)))
    for n in counts:
        check_world(n, a.batch_size)
    out = writable_dir(a.out)  # last, and before minutes of work
    report = run(layouts, counts, a.min_seconds, out, progress=not a.no_progress, hidden=a.hidden,
                 batch=a.batch_size)
    for f in out.glob("*-*.json"):
        f.unlink()  # the per-layout scratch records, now in dp.json
    (out / "dp.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "dp.md").write_text(markdown(report))
    plot(report, out / "dp.png")
    print(markdown(report), end="")
    print(f"wrote {out}/dp.json, dp.md, dp.png", file=sys.stderr)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m parity.bench_dp", description="one layout's worker (bench-dp)")
    p.add_argument("--worker", choices=LAYOUTS, required=True, help="the layout to time")
    p.add_argument("--count", type=int, required=True, help="processes or devices")
    p.add_argument("--min-seconds", type=float, default=3.0, help="time at least this long")
    p.add_argument("--record", type=Path, required=True, help="where rank 0 writes the record")
    p.add_argument("--hidden", type=int, default=HIDDEN, help="LSTM hidden size")
    p.add_argument("--batch-size", type=int, default=BATCH, help="global batch")
    a = p.parse_args()
    worker(a.worker, a.count, a.min_seconds, a.record, a.hidden, a.batch_size)
    return 0


if __name__ == "__main__":
    from shared.distributed import world_size_from_env
    from shared.host_memory import keep_freed_host_memory

    keep_freed_host_memory()
    code = main()
    if world_size_from_env() > 1:  # a worker of a run over processes: leave before a runtime thread aborts
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
