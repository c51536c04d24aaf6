"""The benchmark: how much batching buys, on both backends, against per-example training and anchors.

For each backend x cell x hidden size x batch size, on names-shaped data, one optimizer step
(forward, backward, update) is timed after warm-up with a device sync, over a small pool of real
batches, with and without length bucketing; the per-example baseline (the seed tutorial's one
sequence at a time) and the anchors (parity/anchors.py) run on the same data. Every result is a
flat record; `parity/bench_cli.py` writes them out. Nothing here asserts a speed.

What a record's figures mean:
- `examples_per_s` = batch size / `step_ms`; `step_ms` = median over timed passes over the pool,
  divided by the pool size (at least `repeats` steps, more passes until ~`min_seconds`);
- `compile_s`, `compilations` (JAX): backend compilations during warm-up and timing, not in step_ms;
- `warmup_s`: the untimed first pass over the pool (compilation included: JAX's, torch.compile's);
- `padding_waste`: padded positions / all positions over one whole epoch of that sampler;
- `peak_mem_mb`: peak RSS of the process during the measurement (CPU), peak device memory (GPU).
  On a CPU the process keeps what earlier measurements left (freed heap stays mapped, caches), so
  without `isolate` a later path's figure includes earlier ones'; `rss_start_mb` is the RSS it
  started from. With `isolate` (`seqbatch bench --isolate`) each measurement runs in a fresh
  process and the figure is that path's alone (the libraries, the data and the step);
- `flops_fraction`: recurrent-matmul FLOPs on real tokens (input and hidden projections, fwd+bwd =
  3 x fwd; a one-hot input is a row lookup and counts zero) per second, over the matmul peak that
  the harness measured on the same device; padded steps and one-hot products are overhead.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from parity.anchors import ANCHORS, Step
from shared.backend import get_backend, torch_kernel
from shared.batching import Batch, Sampler, waste_of
from shared.config import ModelConfig, TrainConfig
from shared.dataset import Dataset, names_dataset
from shared.errors import SeqbatchError

CELL_NAMES = {"rnn": "rnn_tanh", "lstm": "lstm", "gru": "gru"}
BUCKET_CHUNK = 16  # batches per length-sorted chunk when bucketing (shared.batching.Sampler)


@dataclass(frozen=True)
class BenchConfig:
    backends: tuple[str, ...] = ("torch", "jax")
    cells: tuple[str, ...] = ("rnn_tanh", "lstm", "gru")
    hiddens: tuple[int, ...] = (128, 512)
    batch_sizes: tuple[int, ...] = (1, 32, 128, 512, 2048)
    data: Path | None = None
    device: str = "cpu"
    jax_kernel: str = "scan"
    repeats: int = 3  # minimum timed steps (whole passes over the pool, so rounded up)
    min_seconds: float = 0.5  # more passes until a measurement has run this long
    pool: int = 2  # distinct real batches per measurement (shapes drawn across the epoch)
    per_example_n: int = 64  # examples per per-example measurement (it does not depend on B)
    anchors: bool = True
    bucketed: bool = True
    multiple: int = 8  # batches are padded to a multiple of this (`seqbatch train --bucket`)
    torch_compile: bool = False  # also time torch's padded kernel under torch.compile (`seqbatch_compiled`)
    isolate: bool = False  # each measurement in a fresh process: peak_mem_mb is then that path's alone
    threads: int | None = None  # intra-op threads for both libraries; None = each library's default
    seed: int = 0


QUICK = BenchConfig(cells=("lstm",), hiddens=(128,), batch_sizes=(32, 512), per_example_n=16, min_seconds=0.3)


# ---- devices: placement, sync, memory, compile events, matmul peak ---------------------------


def use_device(device: str, backends: tuple[str, ...], threads: int | None = None) -> None:
    """Put torch (SEQBATCH_TORCH_DEVICE) and JAX (default device) on `device` for this process.

    `threads` pins the process to that many CPUs and sets torch's thread count to match: on a
    machine shared with other jobs, torch's OpenMP barriers wait on descheduled threads (a tiny step
    took 30x longer with 2 threads than with 1 here), and XLA:CPU sizes its own pools, ignoring its
    thread flags, so the CPU mask is the one cap both libraries obey.
    """
    if device not in ("cpu", "cuda"):
        raise SeqbatchError(f"unknown device {device!r}; choose cpu or cuda")
    if threads is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])
    if "torch" in backends:
        import torch

        if threads is not None:
            torch.set_num_threads(threads)
        if device == "cuda" and not torch.cuda.is_available():
            raise SeqbatchError("--device cuda: torch sees no CUDA device")
        os.environ["SEQBATCH_TORCH_DEVICE"] = device
    if "jax" in backends:
        import jax

        try:
            jax.config.update("jax_default_device", jax.devices("gpu" if device == "cuda" else "cpu")[0])
        except RuntimeError as e:
            raise SeqbatchError(f"--device {device}: JAX has no such device ({e})") from e


def _status_mb(field: str) -> float | None:
    """A kB field of /proc/self/status (`VmRSS`, `VmHWM`) in MB; None where there is none."""
    try:
        with open("/proc/self/status") as f:
            return next((int(line.split()[1]) / 1024 for line in f if line.startswith(f"{field}:")), None)
    except OSError:
        return None


def _rss_mb() -> float:
    """The process's resident memory now (0 where /proc is not there)."""
    return _status_mb("VmRSS") or 0.0


def _rss_peak_mb() -> float:
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class MemoryProbe:
    """Peak memory over a measurement: RSS high-water mark on CPU (reset through clear_refs to the RSS
    of the moment, which holds what earlier measurements of the process left), device allocator peaks
    on GPU."""

    def __init__(self, device: str, backend: str) -> None:
        self.device, self.backend = device, backend

    def reset(self) -> None:
        if self.device == "cpu":
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
            except OSError:
                pass  # then the peak is the process's
        elif self.backend == "torch":
            import torch

            torch.cuda.reset_peak_memory_stats()

    def peak_mb(self) -> float:
        if self.device == "cpu":
            return _rss_peak_mb()
        if self.backend == "torch":
            import torch

            return torch.cuda.max_memory_allocated() / 2**20
        import jax

        stats = jax.devices("gpu")[0].memory_stats() or {}
        return stats.get("peak_bytes_in_use", 0) / 2**20  # JAX cannot reset it: the process's peak


class CompileWatch:
    """Counts JAX backend compilations and sums tracing + lowering + compile seconds while active.

    One per process (`CompileWatch.get()`): JAX keeps every listener it is given."""

    _instance: CompileWatch | None = None

    EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
              "/jax/core/compile/backend_compile_duration")

    def __init__(self) -> None:
        self.seconds, self.count, self.active = 0.0, 0, False
        import jax.monitoring

        jax.monitoring.register_event_duration_secs_listener(self._on_event)

    @classmethod
    def get(cls) -> CompileWatch:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _on_event(self, event: str, duration: float, **_: Any) -> None:
        if self.active and event in self.EVENTS:
            self.seconds += duration
            self.count += event == self.EVENTS[-1]

    @contextmanager
    def watching(self) -> Iterator[None]:
        self.seconds, self.count, self.active = 0.0, 0, True
        try:
            yield
        finally:
            self.active = False


def matmul_peak(device: str, backends: tuple[str, ...]) -> dict[str, float]:
    """FLOP/s of one large float32 matmul in each library on `device` (best of 3 after a warm-up)."""
    n = 8192 if device == "cuda" else 2048
    out: dict[str, float] = {}
    if "jax" in backends:
        import jax
        import jax.numpy as jnp

        a = jnp.ones((n, n), jnp.float32)
        f = jax.jit(lambda x: x @ x)
        out["jax"] = 2 * n**3 / _best_time(lambda: f(a).block_until_ready())
    if "torch" in backends:
        import torch

        t = torch.ones((n, n), dtype=torch.float32, device=device)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        out["torch"] = 2 * n**3 / _best_time(lambda: (t @ t, sync()))
    return out


def _best_time(fn: Callable[[], Any], n: int = 3) -> float:
    fn()
    return min(_timed(fn) for _ in range(n))


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def machine_info(device: str, backends: tuple[str, ...]) -> dict[str, Any]:
    import importlib.metadata as md

    cpu = platform.processor()
    if Path("/proc/cpuinfo").is_file():
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), cpu)
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(), "cpu": cpu,
                            "cpu_count": os.cpu_count()}
    info["versions"] = {}
    for package in ("numpy", "torch", "jax", "jaxlib", "flax", "optax"):
        with suppress(md.PackageNotFoundError):
            info["versions"][package] = md.version(package)
    if device == "cuda" and "torch" in backends:
        import torch

        info["gpu"] = torch.cuda.get_device_name()
    elif device == "cuda":
        import jax

        info["gpu"] = jax.devices("gpu")[0].device_kind
    return info



# ---- data: pools of real batches, padding waste, FLOPs ------------------------------------------


def batch_pool(data: Dataset, batch_size: int, *, bucketed: bool, k: int, seed: int, multiple: int = 8
               ) -> tuple[list[Batch], float]:
    """`k` full batches of one epoch, padded to a multiple of `multiple`, picked at evenly spaced
    quantiles of their padded length so that the pool's shapes look like the epoch's; and the
    epoch's padding waste."""
    split = data.train
    chunk = BUCKET_CHUNK if bucketed else 0
    sampler = Sampler(split.labels, batch_size, kind="epoch", seed=seed, lengths=split.lengths, bucket_chunk=chunk)
    batches = [split.batch(idx, multiple=multiple) for idx in sampler.epoch()]
    full = sorted((b for b in batches if len(b) == batch_size), key=lambda b: (b.tokens.shape[1], b.lengths.sum()))
    full = full or batches
    picks = sorted({min(len(full) - 1, int((i + 0.5) * len(full) / k)) for i in range(k)})
    return [full[i] for i in picks], waste_of(batches)


def recurrent_flops(cfg: ModelConfig, batch: Batch) -> float:
    """FLOPs of the input and hidden projections on the batch's real tokens, forward + backward."""
    per_token = 0
    for k in range(cfg.num_layers):
        width = (0 if cfg.embed_dim is None else cfg.embed_dim) if k == 0 else cfg.feature_size
        per_token += cfg.directions * 2 * cfg.gates * cfg.hidden_size * (width + cfg.hidden_size)
    return 3.0 * per_token * float(batch.lengths.sum())


# ---- measuring one implementation ----------------------------------------------------------------


def measure(step: Step, pool: list[Batch], *, repeats: int, min_seconds: float) -> dict[str, float]:
    """Warm up on every batch of the pool (compiles each shape), then time passes over the pool:
    at least `repeats` steps, more passes until `min_seconds` (50 at most); the median pass."""
    warmup = _timed(lambda: [step(batch) for batch in pool])
    passes: list[float] = []
    while len(passes) * len(pool) < repeats or (sum(passes) < min_seconds and len(passes) < 50):
        passes.append(_timed(lambda: [step(batch) for batch in pool]))
    step_s = statistics.median(passes) / len(pool)
    return {"step_ms": 1e3 * step_s, "examples_per_s": len(pool[0]) / step_s, "timed_passes": len(passes),
            "warmup_s": warmup}


def compile_torch_model(model: Any) -> Any:
    """`model` with its forward under `torch.compile` (inductor, dynamic shapes: one graph for every
    padded length), for the padded kernel (dynamo cannot trace a PackedSequence through nn.LSTM).
    The backward and the optimizer stay eager; the model computes the same function (tested)."""
    import torch

    model.forward = torch.compile(model.forward, dynamic=True)
    return model


def _backend_step(name: str, model_cfg: ModelConfig, train_cfg: TrainConfig, *, per_example: bool,
                  kernel: str = "scan", compiled: bool = False) -> Step:
    backend = get_backend(name)
    model = backend.init(model_cfg, train_cfg.seed)
    if compiled:
        compile_torch_model(model)
    if name == "jax":
        import jax

        import jax_impl

        holder = [jax_impl.train_state(model, train_cfg, kernel=kernel)]
        fn = jax_impl.per_example_step if per_example else jax_impl.train_step

        def jax_step(batch: Batch) -> None:
            holder[0], metrics = fn(holder[0], batch)
            jax.block_until_ready((holder[0].model.params, metrics))

        return jax_step
    import torch

    state = [backend.train_state(model, train_cfg)]
    torch_fn = backend.per_example_step if per_example else backend.train_step  # type: ignore[attr-defined]
    cuda = torch.device(str(os.environ.get("SEQBATCH_TORCH_DEVICE", "cpu"))).type == "cuda"

    def torch_step(batch: Batch) -> None:
        state[0], _ = torch_fn(state[0], batch)
        if cuda:
            torch.cuda.synchronize()

    return torch_step


@dataclass(frozen=True)
class Job:
    backend: str
    # seqbatch | seqbatch_padded | seqbatch_compiled (torch) | per_example | flax_nn_rnn | torch_padded | jax_cudnn
    impl: str
    cell: str
    hidden: int
    batch_size: int
    bucketed: bool = False


def plan(cfg: BenchConfig) -> list[Job]:
    jobs: list[Job] = []
    for cell in cfg.cells:
        for hidden in cfg.hiddens:
            jobs += [Job(b, "per_example", cell, hidden, cfg.per_example_n) for b in cfg.backends]
            for bs in cfg.batch_sizes:
                for b in cfg.backends:
                    # torch's correct kernels: packed (the reference), padded (reference_torch) and, on
                    # request, padded under torch.compile
                    for impl in torch_impls(cfg) if b == "torch" else ("seqbatch",):
                        jobs.append(Job(b, impl, cell, hidden, bs))
                        if cfg.bucketed and bs > 1:
                            jobs.append(Job(b, impl, cell, hidden, bs, bucketed=True))
                if cfg.anchors and cell == "lstm":
                    jobs += [Job(b, impl, cell, hidden, bs) for impl, (b, _, gpu) in ANCHORS.items()
                             if b in cfg.backends and (cfg.device == "cuda" or not gpu)]
    return jobs


TORCH_PATHS = ("seqbatch", "seqbatch_padded", "seqbatch_compiled")  # torch's correct kernels: packed, padded, compiled


def torch_impls(cfg: BenchConfig) -> tuple[str, ...]:
    return TORCH_PATHS if cfg.torch_compile else TORCH_PATHS[:2]


def run_job(job: Job, cfg: BenchConfig, data: Dataset, peak: float, watch: CompileWatch | None) -> dict[str, Any]:
    model_cfg = ModelConfig(len(data.vocab), data.num_classes, cell=job.cell, hidden_size=job.hidden)  # type: ignore[arg-type]
    train_cfg = TrainConfig(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=job.batch_size, seed=cfg.seed)
    kernel = cfg.jax_kernel if job.backend == "jax" and job.cell == "lstm" else "scan"
    if job.impl in ANCHORS:
        step = ANCHORS[job.impl][1](model_cfg, train_cfg)
    else:
        per_example = job.impl == "per_example"
        with torch_kernel("padded" if job.impl in ("seqbatch_padded", "seqbatch_compiled") else None):
            step = _backend_step(job.backend, model_cfg, train_cfg, per_example=per_example,
                                 kernel="scan" if per_example else kernel, compiled=job.impl == "seqbatch_compiled")
    k = 1 if job.impl == "per_example" else cfg.pool
    pool, waste = batch_pool(data, job.batch_size, bucketed=job.bucketed, k=k, seed=cfg.seed, multiple=cfg.multiple)
    memory = MemoryProbe(cfg.device, job.backend)
    memory.reset()
    start = _rss_mb() if cfg.device == "cpu" else None
    with watch.watching() if watch is not None and job.backend == "jax" else nullcontext():
        timing = measure(step, pool, repeats=cfg.repeats, min_seconds=cfg.min_seconds)
    record: dict[str, Any] = {"backend": job.backend, "impl": job.impl, "cell": job.cell, "hidden": job.hidden,
                              "batch_size": job.batch_size, "device": cfg.device, "bucketed": job.bucketed,
                              "pad_multiple": cfg.multiple, **timing}
    if job.impl != "per_example":
        flops = statistics.mean(recurrent_flops(model_cfg, b) for b in pool)
        record.update(padding_waste=waste, time_steps=statistics.mean(b.tokens.shape[1] for b in pool),
                      flops_fraction=flops / (timing["step_ms"] / 1e3) / peak)
    record["peak_mem_mb"] = memory.peak_mb()
    if start is not None:
        record["rss_start_mb"] = start
    if watch is not None and job.backend == "jax":
        record.update(compile_s=watch.seconds, compilations=watch.count)
        if job.impl == "seqbatch":
            record["kernel"] = kernel
    return record


def with_speedups(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add `speedup_vs_per_example` = examples/s over the same backend's per-example examples/s."""
    base = {(r["backend"], r["cell"], r["hidden"]): r["examples_per_s"] for r in results if r["impl"] == "per_example"}
    out = []
    for r in results:
        ref = base.get((r["backend"], r["cell"], r["hidden"]))
        out.append({**r, "speedup_vs_per_example": r["examples_per_s"] / ref} if ref and r["impl"] != "per_example"
                   else r)
    return out


def run(cfg: BenchConfig, *, progress: bool = True, log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Run the whole grid; returns {"machine", "device", "config", "matmul_peak_flops", "results"}."""
    for b in cfg.backends:
        get_backend(b)  # a clear error now rather than halfway through
    if cfg.jax_kernel not in ("scan", "cudnn"):
        raise SeqbatchError(f"unknown --jax-kernel {cfg.jax_kernel!r}; choose scan or cudnn")
    use_device(cfg.device, cfg.backends, cfg.threads)
    data = names_dataset(cfg.data, seed=cfg.seed)
    peaks = matmul_peak(cfg.device, cfg.backends)
    peak = max(peaks.values())
    watch = CompileWatch.get() if "jax" in cfg.backends else None
    jobs = plan(cfg)
    log(f"bench: {len(jobs)} measurements on {cfg.device}, data {data.source} ({len(data.train)} train names); "
        f"matmul peak {peak / 1e9:.0f} GFLOP/s")
    results = []
    for job in tqdm(jobs, desc="bench", unit="run", disable=not progress):
        results.append(_in_fresh_process(job, cfg, peak) if cfg.isolate else run_job(job, cfg, data, peak, watch))
    return {"machine": machine_info(cfg.device, cfg.backends), "device": cfg.device,
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in cfg.__dict__.items()},
            "data": data.source, "matmul_peak_flops": peaks, "results": with_speedups(results)}


def _in_fresh_process(job: Job, cfg: BenchConfig, peak: float) -> dict[str, Any]:
    """`run_job` in a new (spawned) process that starts as `seqbatch` does, so that its memory is its own."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_isolated_job, job, cfg, peak).result()


def _isolated_job(job: Job, cfg: BenchConfig, peak: float) -> dict[str, Any]:
    from shared.host_memory import keep_freed_host_memory

    keep_freed_host_memory()  # first thing, as `seqbatch` does, before a backend starts its threads
    use_device(cfg.device, cfg.backends, cfg.threads)
    data = names_dataset(cfg.data, seed=cfg.seed)
    watch = CompileWatch.get() if job.backend == "jax" else None
    return {**run_job(job, cfg, data, peak, watch), "isolated": True}


def quick(cfg: BenchConfig) -> BenchConfig:
    """The small grid of `--quick`, keeping the run's device, data, backends and kernel."""
    return replace(QUICK, backends=cfg.backends, data=cfg.data, device=cfg.device, jax_kernel=cfg.jax_kernel,
                   repeats=cfg.repeats, threads=cfg.threads, seed=cfg.seed, multiple=cfg.multiple,
                   torch_compile=cfg.torch_compile, isolate=cfg.isolate)

