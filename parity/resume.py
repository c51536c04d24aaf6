"""`seqbatch parity --resume-check`: kill training runs with SIGKILL at random steps, resume them, and
compare with the same run left alone.

For each configuration: one uninterrupted `seqbatch train` (the reference), then the same command
started in another folder, killed with SIGKILL at a random moment of its training (`kills` times,
each time resumed with `seqbatch train --resume`), and finally resumed to the end. The check
passes when the two `model.safetensors` hold bit-identical tensors (max |diff| = 0) and the two
`metrics.jsonl` are identical line for line once the wall-clock fields are left out.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SEQBATCH = (sys.executable, "-c", "from shared.cli import main; raise SystemExit(main())")
TIMING_KEYS = frozenset({"train_seconds", "eval_seconds", "epoch_seconds", "words_per_second"})


@dataclass(frozen=True)
class ResumeCase:
    name: str
    flags: tuple[str, ...]


# Small but real: dropout 0.3 between two layers, a checkpoint every 7 steps (so most kills land
# between saves and the resumed run redoes steps), validation every 25.
CASES: dict[str, ResumeCase] = {
    "names-onehot": ResumeCase("names-onehot", ("--task", "names", "--layers", "2", "--hidden", "24", "--dropout",
                                                "0.3", "--steps", "150", "--batch-size", "32", "--eval-every", "25",
                                                "--checkpoint-every", "7", "--keep-best")),
    "names-embedding": ResumeCase("names-embedding", ("--task", "names", "--layers", "2", "--hidden", "24",
                                                      "--embed-dim", "12", "--dropout", "0.3", "--steps", "150",
                                                      "--batch-size", "32", "--eval-every", "25", "--optimizer",
                                                      "adam", "--lr", "0.01", "--clip-norm", "1",
                                                      "--checkpoint-every", "7")),
    "charlm": ResumeCase("charlm", ("--task", "charlm", "--layers", "2", "--hidden", "24", "--embed-dim", "12",
                                    "--dropout", "0.3", "--steps", "90", "--batch-size", "8", "--seq-length", "32",
                                    "--eval-every", "20", "--checkpoint-every", "7")),
    # Two epoch ends inside the run (the embedded text gives ~350 steps of 512 pairs an epoch), so
    # kills land before, between and after them; the rate decays with the corpus read.
    "skipgram": ResumeCase("skipgram", ("--task", "skipgram", "--embed-dim", "16", "--steps", "900",
                                        "--batch-size", "512", "--checkpoint-every", "7")),
}


def _command(flags: tuple[str, ...], backend: str, out: Path) -> list[str]:
    return [*SEQBATCH, "train", "--backend", backend, *flags, "--out", str(out), "--no-progress"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "SEQBATCH_TORCH_DEVICE": "cpu",
            "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return done


def _last_step(metrics: Path) -> int:
    """The last training step recorded in a metrics.jsonl being written (0 if none yet)."""
    try:
        lines = metrics.read_text().splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            rec = json.loads(line)
        except ValueError:  # a line being written
            continue
        if "split" not in rec:
            return int(rec["step"])
    return 0


def _kill_after(cmd: list[str], folder: Path, target: int, delay: float, timeout: float) -> int | None:
    """Start `cmd`, wait until its metrics record step `target` (they are written at each save),
    wait `delay` seconds more, SIGKILL it. Returns the state's step then, None if the run ended first."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and _last_step(folder / "metrics.jsonl") < target:
        time.sleep(0.005)
    time.sleep(delay)
    if proc.poll() is not None:
        return None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return _saved_step(folder / "state" / "run.safetensors")


def _saved_step(state: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(state), framework="numpy") as f:
        return int(json.loads((f.metadata() or {})["seqbatch.state"])["step"])


def _metrics(path: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING_KEYS}
            for line in path.read_text().splitlines()]


def compare(ref: Path, run: Path) -> dict[str, Any]:
    """Max |diff| over the two model files' tensors, and whether the metrics agree line for line."""
    from safetensors.numpy import load_file

    a, b = load_file(str(ref / "model.safetensors")), load_file(str(run / "model.safetensors"))
    diff = max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in a) if a.keys() == b.keys() else float("inf")
    ma, mb = _metrics(ref / "metrics.jsonl"), _metrics(run / "metrics.jsonl")
    first = next((i for i, (x, y) in enumerate(zip(ma, mb, strict=False)) if x != y), None)
    return {"max_abs_diff": diff, "metrics_lines": [len(ma), len(mb)], "metrics_identical": ma == mb,
            "first_differing_line": first}


def resume_check(case: ResumeCase, backend: str, work: Path, *, kills: int = 3, seed: int = 0,
                 timeout: float = 600.0) -> dict[str, Any]:
    """Run `case` uninterrupted, then again killed after `kills` random steps (sorted, each resumed)."""
    rng = random.Random(seed)
    ref, run = work / f"{case.name}-{backend}-ref", work / f"{case.name}-{backend}-killed"
    t0 = time.monotonic()
    _run(_command(case.flags, backend, ref), timeout)
    total = time.monotonic() - t0
    steps = int(case.flags[case.flags.index("--steps") + 1])
    targets = sorted(rng.sample(range(2, int(steps * 0.7)), kills))  # headroom: each kill lands past the last
    killed_at: list[int | None] = []
    cmd = _command(case.flags, backend, run)
    for i, planned in enumerate(targets):
        # Past the state the last kill left, so that every kill lands in training, not in start-up.
        target = max(planned, (killed_at[-1] or 0) + 2 if killed_at else planned)
        targets[i] = target
        saved = _kill_after(cmd, run, target, rng.uniform(0.0, 0.05), timeout)
        killed_at.append(saved)
        cmd = [*SEQBATCH, "train", "--resume", str(run), "--no-progress"]
        if saved is None:
            break
    if killed_at[-1] is not None:
        _run(cmd, timeout)
    result = compare(ref, run)
    return {"case": case.name, "backend": backend, "flags": list(case.flags), "kill_after_step": targets,
            "saved_step_at_each_kill": killed_at, "reference_seconds": round(total, 1), **result,
            "ok": result["max_abs_diff"] == 0.0 and result["metrics_identical"]}


def add_args(p: Any) -> None:
    """`seqbatch parity --resume-check [--cases ...] [--backends ...] [--kills N]` (flags on parity's parser)."""
    g = p.add_argument_group("--resume-check: kill training runs and resume them")
    g.add_argument("--resume-check", action="store_true",
                   help="instead of comparing backends: run `seqbatch train` per case and backend, SIGKILL it at "
                        "--kills random moments, resume each time, and check the final weights are bit-identical "
                        "and the metrics identical (timings aside) to the same run uninterrupted; exit 1 if not")
    g.add_argument("--cases", default=",".join(CASES), help=f"comma list among {', '.join(CASES)} (default all)")
    g.add_argument("--backends", default="torch,jax", help="comma list of backends (default torch,jax)")
    g.add_argument("--kills", type=int, default=3, help="SIGKILLs per run (default 3)")
    g.add_argument("--work", type=Path, default=None, help="folder for the runs (default: a temporary folder)")


def cmd_resume_check(a: Any, results: Path) -> int:
    import tempfile

    from shared.backend import BACKENDS
    from shared.errors import SeqbatchError
    from shared.paths import writable_dir, writable_file

    cases = [c for c in a.cases.split(",") if c]
    backends = [b for b in a.backends.split(",") if b]
    unknown = [c for c in cases if c not in CASES] + [b for b in backends if b not in BACKENDS]
    if unknown or not cases or not backends:
        raise SeqbatchError(f"--cases/--backends: unknown or none given ({', '.join(unknown) or 'empty'}); "
                            f"cases: {', '.join(CASES)}; backends: {', '.join(BACKENDS)}")
    if a.kills < 1:
        raise SeqbatchError(f"--kills must be >= 1, got {a.kills}")
    report_path = writable_file(a.json or results / "resume-check-cpu.json", "--json")
    work = writable_dir(a.work, "--work") if a.work is not None else Path(tempfile.mkdtemp(prefix="seqbatch-resume-"))
    reports = []
    for name in cases:
        for backend in backends:
            r = resume_check(CASES[name], backend, work, kills=a.kills, seed=a.seed)
            reports.append(r)
            print(f"{'ok  ' if r['ok'] else 'FAIL'} {name:16s} {backend:5s} killed past steps "
                  f"{r['kill_after_step']} (saved: {r['saved_step_at_each_kill']}): "
                  f"max |diff| {r['max_abs_diff']:.1e}, metrics "
                  f"{'identical' if r['metrics_identical'] else 'differ at line ' + str(r['first_differing_line'])}")
    report_path.write_text(json.dumps({"runs": reports, "work": str(work)}, indent=2) + "\n")
    print(f"wrote {report_path}")
    return 0 if all(r["ok"] for r in reports) else 1
