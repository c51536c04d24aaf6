"""`seqbatch sweep` (issue 14, item 1) without the command line: parsing the seeds, backends and grid
specs, naming the cells' folders, reading a finished cell back, and the summary (`summary.md`) and
plots (`curves.png`, `final.png`) over the sweep's records. The command itself: shared/cli/sweep.py.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared.backend import BACKENDS
from shared.errors import SeqbatchError

MAX_SEED = 2**32
FINAL_SPLITS = ("test", "final")  # the last record of a finished run: classifiers, LMs, MLPs; skip-gram
NOT_METRICS = frozenset({"step", "split", "train_seconds", "epoch"})


def parse_seeds(spec: str) -> list[int]:
    """`0-4`, `0,3,7` or both (`0-2,5`) as a list of distinct seeds in the order given."""
    seeds: list[int] = []
    parts = [p.strip() for p in spec.split(",")]
    for part in parts:
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise SeqbatchError(f"--seeds {spec!r:.60}: give seeds as ranges (0-4) and/or numbers separated by "
                                "commas (0,3,7)")
        first, last = int(lo), int(hi) if dash else int(lo)
        if last < first:
            raise SeqbatchError(f"--seeds {spec!r:.60}: the range {part} runs backwards")
        if last >= MAX_SEED:
            raise SeqbatchError(f"--seeds {spec!r:.60}: seeds must be below 2**32")
        seeds.extend(s for s in range(first, last + 1) if s not in seeds)
    return seeds


def parse_backends(spec: str) -> list[str]:
    """`torch,jax` as ["torch", "jax"]; SeqbatchError for an empty list or an unknown backend."""
    names = [n.strip() for n in spec.split(",")]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown or not names:
        raise SeqbatchError(f"--backends {spec!r:.60}: give backends separated by commas, of "
                            f"{', '.join(sorted(BACKENDS))}")
    return list(dict.fromkeys(names))


def parse_grid_item(item: str) -> tuple[str, list[str]]:
    """`batch_size=1,32,full` as ("batch_size", ["1", "32", "full"]); the key with dashes as underscores.
    Values that themselves hold commas (`hidden_sizes=10,10;32`) are separated by semicolons instead."""
    key, eq, values = item.partition("=")
    key = key.strip().lstrip("-").replace("-", "_")
    if not eq or not key or not key.replace("_", "").isalnum():
        raise SeqbatchError(f"--grid {item!r:.60}: give KEY=V1,V2,... (a `seqbatch train` flag and its values)")
    parts = [v.strip() for v in values.split(";" if ";" in values else ",")]
    if not values.strip() or any(not v for v in parts):
        raise SeqbatchError(f"--grid {item!r:.60}: an empty value; give KEY=V1,V2,...")
    return key, list(dict.fromkeys(parts))


def parse_grid(items: Sequence[str]) -> list[dict[str, str]]:
    """The grid points (key -> value, in the order the keys were given); [{}] for no --grid."""
    axes: dict[str, list[str]] = {}
    for item in items:
        key, values = parse_grid_item(item)
        if key in axes:
            raise SeqbatchError(f"--grid: {key} is given twice")
        axes[key] = values
    return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]


def point_name(point: dict[str, str]) -> str:
    """The folder name of a grid point: `batch_size=32,lr=0.01`; `default` for the empty grid."""
    if not point:
        return "default"
    return ",".join(f"{k}={v.replace('/', '_').replace(',', '-')}" for k, v in point.items())


@dataclass(frozen=True)
class Cell:
    backend: str
    point: dict[str, str]
    seed: int
    folder: Path

    @property
    def name(self) -> str:
        return f"{self.backend}/{point_name(self.point)}/seed-{self.seed}"


def cells(out: Path, backends: Sequence[str], points: Sequence[dict[str, str]], seeds: Sequence[int]) -> list[Cell]:
    return [Cell(b, p, s, out / b / point_name(p) / f"seed-{s}") for p in points for b in backends for s in seeds]


def read_metrics(folder: Path) -> list[dict[str, Any]]:
    """metrics.jsonl's records ([] if there is none; a damaged last line, from a killed run, is left out)."""
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return [r for r in rows if isinstance(r, dict)]


def final_record(folder: Path) -> dict[str, Any] | None:
    """The run's test (or, skip-gram, final) record when it finished: model.safetensors is there too."""
    if not (folder / "model.safetensors").is_file():
        return None
    finals = [r for r in read_metrics(folder) if r.get("split") in FINAL_SPLITS]
    return finals[-1] if finals else None


def cell_record(cell: Cell, final: dict[str, Any], *, reused: bool) -> dict[str, Any]:
    """One sweep.jsonl record of a finished cell."""
    metrics = {k: v for k, v in final.items()
               if k not in NOT_METRICS and isinstance(v, int | float) and not isinstance(v, bool)}
    return {"backend": cell.backend, "grid": cell.point, "seed": cell.seed, "folder": str(cell.folder),
            "status": "ok", "reused": reused, "test": metrics, "train_seconds": final.get("train_seconds"),
            "steps": final.get("step")}


def failed_record(cell: Cell, code: int, error: str) -> dict[str, Any]:
    return {"backend": cell.backend, "grid": cell.point, "seed": cell.seed, "folder": str(cell.folder),
            "status": "failed", "exit_code": code, "error": error}


# --- summary -------------------------------------------------------------------------------------------------


def _stats(values: Sequence[float]) -> str:
    """`mean ± std [min, max]`, the std over seeds with ddof 1 (0 for one seed)."""
    a = np.asarray(values, np.float64)
    std = float(a.std(ddof=1)) if len(a) > 1 else 0.0
    return f"{a.mean():.4g} ± {std:.2g} [{a.min():.4g}, {a.max():.4g}]"


def _quantities(rows: Sequence[dict[str, Any]]) -> list[str]:
    keys: dict[str, None] = {}
    for r in rows:
        keys.update(dict.fromkeys(r["test"]))
    return [*keys, "train_seconds", "steps"]


def _value(row: dict[str, Any], key: str) -> float | None:
    v = row.get(key) if key in ("train_seconds", "steps") else row["test"].get(key)
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def _by_point(records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(point_name(r["grid"]), []).append(r)
    return groups


def summary_markdown(records: Sequence[dict[str, Any]], title: str) -> str:
    """Per grid point and backend: n, then mean ± std [min, max] over seeds of each test metric, the train
    seconds and steps; with both backends, the paired difference torch - jax over the seeds both finished."""
    ok = [r for r in records if r["status"] == "ok"]
    failed = [r for r in records if r["status"] != "ok"]
    lines = [f"# Sweep {title}", "",
             f"{len(records)} runs, {len(ok)} finished, {len(failed)} failed. Each entry: mean ± std [min, max] "
             "over seeds (std with ddof 1).", ""]
    for point, rows in _by_point(ok).items():
        keys = _quantities(rows)
        lines += [f"## {point}", "", "| backend | runs | " + " | ".join(keys) + " |",
                  "|---|---|" + "---|" * len(keys)]
        backends = list(dict.fromkeys(r["backend"] for r in rows))
        for b in backends:
            mine = [r for r in rows if r["backend"] == b]
            cells_ = []
            for k in keys:
                vals = [v for v in (_value(r, k) for r in mine) if v is not None]
                cells_.append(_stats(vals) if vals else "-")
            lines.append(f"| {b} | {len(mine)} | " + " | ".join(cells_) + " |")
        if "torch" in backends and "jax" in backends:
            torch_rows = {r["seed"]: r for r in rows if r["backend"] == "torch"}
            jax_rows = {r["seed"]: r for r in rows if r["backend"] == "jax"}
            paired = sorted(set(torch_rows) & set(jax_rows))
            cells_ = []
            for k in keys:
                diffs = [a - b for a, b in ((_value(torch_rows[s], k), _value(jax_rows[s], k)) for s in paired)
                         if a is not None and b is not None]
                if diffs:
                    d = np.asarray(diffs)
                    cells_.append(f"{d.mean():+.3g} ± {d.std(ddof=1) if len(d) > 1 else 0.0:.2g}")
                else:
                    cells_.append("-")
            lines.append(f"| torch - jax (paired) | {len(paired)} | " + " | ".join(cells_) + " |")
        lines.append("")
    if failed:
        lines += ["## Failed runs", ""]
        lines += [f"- {r['backend']}/{point_name(r['grid'])}/seed-{r['seed']}: exit {r['exit_code']}: {r['error']}"
                  for r in failed]
        lines.append("")
    return "\n".join(lines)


def primary_metric(records: Sequence[dict[str, Any]]) -> str | None:
    """The metric final.png shows: top1 where the runs have it, else their loss, else the first metric."""
    keys: dict[str, None] = {}
    for r in records:
        if r["status"] == "ok":
            keys.update(dict.fromkeys(r["test"]))
    for k in ("top1", "loss"):
        if k in keys:
            return k
    return next(iter(keys), None)


def plot_curves(records: Sequence[dict[str, Any]], path: Path) -> None:
    """Training loss per step, one panel per grid point, a line per backend: the mean over seeds with a
    ±1 std band (over the steps every seed reached)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _by_point([r for r in records if r["status"] == "ok"])
    fig, axes = plt.subplots(max(1, len(groups)), 1, figsize=(7, 3 * max(1, len(groups))), squeeze=False)
    for ax, (point, rows) in zip(axes[:, 0], groups.items(), strict=False):
        for i, b in enumerate(dict.fromkeys(r["backend"] for r in rows)):
            series = []
            for r in rows:
                if r["backend"] == b:
                    steps = [(rec["step"], rec["loss"]) for rec in read_metrics(Path(r["folder"]))
                             if "split" not in rec and isinstance(rec.get("loss"), int | float)]
                    if steps:
                        series.append(steps)
            if not series:
                continue
            n = min(len(s) for s in series)
            x = np.asarray([s for s, _ in series[0][:n]])
            y = np.asarray([[v for _, v in s[:n]] for s in series], np.float64)
            mean, std = y.mean(0), y.std(0, ddof=1) if len(y) > 1 else np.zeros(n)
            ax.plot(x, mean, color=f"C{i}", label=f"{b} (n={len(y)})")
            ax.fill_between(x, mean - std, mean + std, color=f"C{i}", alpha=0.25)
        ax.set_title(point)
        ax.set_xlabel("step")
        ax.set_ylabel("train loss")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_final(records: Sequence[dict[str, Any]], path: Path) -> None:
    """The primary test metric per grid point and backend: the mean over seeds with ±1 std error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = primary_metric(records)
    groups = _by_point([r for r in records if r["status"] == "ok"])
    backends = list(dict.fromkeys(r["backend"] for r in records))
    fig, ax = plt.subplots(figsize=(max(5, 1.5 * len(groups) * max(1, len(backends))), 4))
    width = 0.8 / max(1, len(backends))
    for i, b in enumerate(backends):
        means, stds = [], []
        for rows in groups.values():
            vals = [v for v in (_value(r, metric) for r in rows if r["backend"] == b) if v is not None] \
                if metric else []
            means.append(float(np.mean(vals)) if vals else np.nan)
            stds.append(float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0)
        x = np.arange(len(groups)) + (i - (len(backends) - 1) / 2) * width
        ax.bar(x, means, width, yerr=stds, capsize=4, color=f"C{i}", label=b)
    ax.set_xticks(np.arange(len(groups)), list(groups), rotation=20, ha="right")
    ax.set_ylabel(f"test {metric}" if metric else "no finished runs")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
