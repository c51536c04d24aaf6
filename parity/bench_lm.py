"""`seqbatch bench-lm`: characters per second of one language-model training step, both backends and anchors.

One step = forward over a [B, T] window from the carried state, loss at every position, backward,
global-norm clipping (5) and an Adam update, after warm-up, with a device sync, median of passes.

- `torch` / `seqbatch`: the reference (`reference_torch.models.lm`): equal-length windows go
  straight into nn.LSTM/GRU (oneDNN on a CPU, cuDNN on a GPU), state carried;
- `jax` / `seqbatch`: the port (`jax_impl.models.lm`): masked scan per row, vmap over rows;
- `torch` / `nn.LSTM`: the anchor a reader would write: nn.Embedding -> nn.LSTM -> nn.Linear, no
  wrapper of ours, state carried and detached;
- `jax` / `flax nn.RNN`: the flax anchor: nn.Embed -> nn.RNN(OptimizedLSTMCell) per layer -> nn.Dense,
  carry passed in and returned, jitted with donated buffers.

Sizes: the lesson's (2 layers, hidden 512, batch 128 x 100, vocabulary 83) and a small one (hidden
128); cells: LSTM (anchors and ours) and GRU (ours).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from parity import flags
from shared.backend import get_backend
from shared.config import CELLS, TrainConfig
from shared.kinds.lm import LMBatch, LMConfig
from shared.paths import writable_dir

VOCAB, SEQ, EMBED = 83, 100, 64
# name -> (hidden, batch); "tiny" is for smoke tests only
SIZES: dict[str, tuple[int, int]] = {"lesson": (512, 128), "small": (128, 128), "tiny": (8, 4)}
TRAIN = TrainConfig(optimizer="adam", lr=1e-3, batch_size=128, steps=1, clip_norm=5.0)
Step = Callable[[LMBatch], None]


@dataclass(frozen=True)
class Job:
    backend: str
    impl: str
    cell: str
    size: str


def plan(sizes: tuple[str, ...], cells: tuple[str, ...]) -> list[Job]:
    jobs = []
    for size in sizes:
        for cell in cells:
            jobs += [Job("torch", "seqbatch", cell, size), Job("jax", "seqbatch", cell, size)]
            if cell == "lstm":
                jobs += [Job("torch", "nn.LSTM", cell, size), Job("jax", "flax nn.RNN", cell, size)]
    return jobs


def windows(batch: int, n: int, seed: int = 0, seq: int = SEQ) -> list[LMBatch]:
    """`n` consecutive windows of `seq` characters of a random text, the state carried between them."""
    from shared.lm_data import stream_windows

    text = np.random.default_rng(seed).integers(2, VOCAB, batch * seq * n + 1).astype(np.int32)
    return list(stream_windows(text, batch, seq))


def step_flops(cfg: LMConfig, batch: int, seq: int) -> float:
    """Matrix-product FLOPs of one training step: every layer's input and hidden projections and the
    head, forward + backward (= 3 x forward); an embedding or a one-hot input is a row lookup and
    counts zero (as in parity/bench.py's `recurrent_flops`)."""
    gates = {"lstm": 4, "gru": 3}.get(cfg.cell, 1)
    h = cfg.hidden_size
    per_char = sum(2 * gates * h * ((cfg.embed_dim or 0) if k == 0 else h) + 2 * gates * h * h
                   for k in range(cfg.num_layers)) + 2 * h * cfg.vocab_size
    return 3.0 * per_char * batch * seq


def seqbatch_step(backend: str, cfg: LMConfig) -> Step:
    b = get_backend(backend)
    state = [b.train_state(b.init(cfg, 0), TRAIN)]

    def step(batch: LMBatch) -> None:
        state[0], metrics = b.train_step(state[0], batch)
        float(metrics["loss"])  # waits for the device

    return step


def torch_anchor(cfg: LMConfig) -> Step:
    import torch
    import torch.nn.functional as F
    from torch import nn

    from reference_torch.models.common import default_device

    device = default_device()
    torch.manual_seed(0)
    embed, head = nn.Embedding(VOCAB, EMBED).to(device), nn.Linear(cfg.hidden_size, VOCAB).to(device)
    rnn = nn.LSTM(EMBED, cfg.hidden_size, cfg.num_layers, batch_first=True).to(device)
    params = [*embed.parameters(), *rnn.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=TRAIN.lr)
    hx: list[Any] = [None]

    def step(batch: LMBatch) -> None:
        x = torch.as_tensor(batch.inputs, device=device)
        y = torch.as_tensor(batch.targets, device=device).long()
        out, h = rnn(embed(x), None if batch.reset else hx[0])
        loss = F.cross_entropy(head(out).reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        hx[0] = tuple(t.detach() for t in h)
        float(loss.detach())

    return step


def flax_anchor(cfg: LMConfig) -> Step:
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import optax

    from jax_impl.train import make_optimizer

    class FlaxCharLM(nn.Module):
        @nn.compact
        def __call__(self, tokens: jax.Array, carry: Any) -> Any:
            x = nn.Embed(VOCAB, EMBED)(tokens)
            new = []
            for k in range(cfg.num_layers):
                c, x = nn.RNN(nn.OptimizedLSTMCell(cfg.hidden_size), return_carry=True)(x, initial_carry=carry[k])
                new.append(c)
            return nn.Dense(VOCAB)(x), tuple(new)

    model, tx = FlaxCharLM(), make_optimizer(TRAIN)

    def zeros(batch: int) -> Any:
        def z() -> jax.Array:  # a fresh buffer each: the step donates the carry
            return jnp.zeros((batch, cfg.hidden_size))

        return tuple((z(), z()) for _ in range(cfg.num_layers))

    def update(params: Any, opt_state: Any, carry: Any, tokens: jax.Array, targets: jax.Array) -> Any:
        def loss(p: Any) -> Any:
            out, new = model.apply(p, tokens, carry)
            return optax.softmax_cross_entropy_with_integer_labels(out, targets).mean(), new

        (value, new), grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, new, value

    jitted = jax.jit(update, donate_argnums=(0, 1, 2))
    params = model.init(jax.random.key(0), jnp.zeros((1, 1), jnp.int32), zeros(1))
    state: list[Any] = [params, tx.init(params), None]

    def step(batch: LMBatch) -> None:
        carry = zeros(len(batch)) if batch.reset or state[2] is None else state[2]
        state[0], state[1], state[2], value = jitted(state[0], state[1], carry, batch.inputs, batch.targets)
        float(value)

    return step


def build(job: Job, cfg: LMConfig) -> Step:
    if job.impl == "seqbatch":
        return seqbatch_step(job.backend, cfg)
    return torch_anchor(cfg) if job.backend == "torch" else flax_anchor(cfg)


def measure(step: Step, pool: list[LMBatch], *, min_seconds: float) -> dict[str, float]:
    """Warm up over the pool (compiles), then passes over it until `min_seconds`; the median pass."""
    for batch in pool:
        step(batch)
    passes: list[float] = []
    while len(passes) < 3 or (sum(passes) < min_seconds and len(passes) < 30):
        start = time.perf_counter()
        for batch in pool:
            step(batch)
        passes.append(time.perf_counter() - start)
    step_s = statistics.median(passes) / len(pool)
    return {"step_ms": round(1e3 * step_s, 3), "chars_per_s": round(pool[0].inputs.size / step_s, 1),
            "timed_passes": len(passes)}


def measure_job(job: Job, cfg: LMConfig, batch: int, seq: int, device: str, peak: float, *,
                min_seconds: float) -> dict[str, Any]:
    """One record's figures: time, characters/s, matmul FLOP rate and its fraction of `peak`, peak memory."""
    from parity.bench import MemoryProbe

    memory = MemoryProbe(device, job.backend)
    memory.reset()
    result = measure(build(job, cfg), windows(batch, 3, seq=seq), min_seconds=min_seconds)
    flops = step_flops(cfg, batch, seq)
    rate = flops / (result["step_ms"] / 1e3)
    return {**result, "gflop_per_s": rate / 1e9, "flops_fraction": rate / peak,
            "peak_mem_mb": round(memory.peak_mb(), 1)}


def run(sizes: tuple[str, ...], cells: tuple[str, ...], device: str, *, min_seconds: float, progress: bool = True,
        threads: int | None = None) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from parity.bench import machine_info, matmul_peak, use_device

    use_device(device, ("torch", "jax"), threads)
    peaks = matmul_peak(device, ("torch", "jax"))
    records = []
    for job in tqdm(plan(sizes, cells), desc=f"bench-lm {device}", disable=not progress, unit="impl"):
        hidden, batch = SIZES[job.size]
        cfg = LMConfig(VOCAB, cell=job.cell, num_layers=2, hidden_size=hidden, embed_dim=EMBED)  # type: ignore[arg-type]
        result = measure_job(job, cfg, batch, SEQ, device, max(peaks.values()), min_seconds=min_seconds)
        records.append({"task": "charlm", "backend": job.backend, "impl": job.impl, "cell": job.cell,
                        "size": job.size, "layers": 2, "hidden": hidden, "batch_size": batch, "seq_length": SEQ,
                        "vocab": VOCAB, "embed_dim": EMBED, "device": device, **result})
    return {"machine": machine_info(device, ("torch", "jax")), "threads": threads, "matmul_peak_flops": peaks,
            "records": records}


def markdown(result: dict[str, Any]) -> str:
    rows = ["| size | cell | backend | impl | step ms | chars/s | GFLOP/s | of matmul peak | peak MB |",
            "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    rows += [f"| {r['size']} (h{r['hidden']}, b{r['batch_size']}x{r['seq_length']}) | {r['cell']} | {r['backend']} "
             f"| {r['impl']} | {r['step_ms']:.1f} | {r['chars_per_s']:,.0f} | {r['gflop_per_s']:,.0f} "
             f"| {r['flops_fraction']:.0%} | {r['peak_mem_mb']:,.0f} |" for r in result["records"]]
    m = result["machine"]
    device = result["records"][0]["device"] if result["records"] else "?"
    peaks = ", ".join(f"{k} {v / 1e9:,.0f}" for k, v in result["matmul_peak_flops"].items())
    return (f"# bench-lm on {device}\n\n{m.get('gpu', m['cpu'])}, "
            f"versions {json.dumps(m['versions'])}\n\nmatmul peak measured here (GFLOP/s, float32): {peaks}. "
            "GFLOP/s counts the step's matrix products (projections and head, forward + backward); "
            "peak MB: the process's peak resident memory during the measurement (CPU), the allocator's peak "
            "(GPU).\n\n" + "\n".join(rows) + "\n")


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = result["records"]
    labels = [f"{r['size']} {r['cell']}\n{r['backend']} {r['impl']}" for r in recs]
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(recs)), 4))
    colors = ["C0" if r["backend"] == "torch" else "C1" for r in recs]
    bars = ax.bar(range(len(recs)), [r["chars_per_s"] for r in recs], color=colors)
    for bar, r in zip(bars, recs, strict=True):
        if r["impl"] != "seqbatch":
            bar.set_hatch("//")  # anchors: the libraries' own way, not seqbatch's model
    ax.set_xticks(range(len(recs)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("characters / s (one training step)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("char LM training throughput (torch blue, jax orange; hatched: anchors)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_bench_lm(sub: Any) -> None:
    p = sub.add_parser("bench-lm", help="characters/s of a language-model training step, both backends and anchors",
                       description="Time one LM training step (Adam, clip 5, carried state) for the torch reference, "
                                   "the JAX port, plain torch nn.LSTM and flax nn.RNN, at the char-RNN lesson's size "
                                   "and a small one. Writes bench.json, bench.md and throughput.png to --out.")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where both backends run (default cpu)")
    p.add_argument("--sizes", default="small,lesson",
                   help="comma list of small (h128, b128x100) and lesson (h512, b128x100); default both")
    p.add_argument("--cells", default="lstm,gru", help="comma list of cells for the seqbatch rows (default lstm,gru)")
    p.add_argument("--min-seconds", type=float, default=3.0,
                   help="time each implementation at least this long (seconds > 0; default 3)")
    p.add_argument("--threads", type=int, default=None, help="pin to this many CPUs (default: all)")
    p.add_argument("--out", type=Path, required=True, help="folder for bench.json, bench.md, throughput.png")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_bench_lm)


def cmd_bench_lm(a: argparse.Namespace) -> int:
    sizes = flags.names(flags.split(a.sizes), SIZES, "--sizes")
    cells = flags.names(flags.split(a.cells), CELLS, "--cells")
    flags.threads(a.threads)
    flags.positive_seconds(a.min_seconds, "--min-seconds")
    out = writable_dir(a.out)  # last, and before minutes of work: an unwritable --out fails now
    result = run(sizes, cells, a.device, min_seconds=a.min_seconds, progress=not a.no_progress, threads=a.threads)
    (out / "bench.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "bench.md").write_text(markdown(result))
    plot(result, out / "throughput.png")
    print(markdown(result))
    print(f"wrote {out}/bench.json, bench.md, throughput.png")
    return 0
