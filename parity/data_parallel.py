"""Data-parallel equivalence (issue 15, item 4), for JAX on N devices of one program,
`python -m parity.data_parallel --devices 2 [--dtype float32|float64] [--json OUT]`, for JAX over N
processes (one device each, jax.distributed with gloo), `python -m parity.data_parallel --procs 2
[--dtype ...] [--json OUT]`, and for torch DistributedDataParallel over processes, `python -m
torch.distributed.run --standalone --nproc-per-node 2 -m parity.data_parallel --backend torch [...]`.

A data-parallel step over N shards must be the single-device step on the same global batch. For
each case (names-shaped one-hot batches, IMDB-shaped embedding batches, an odd-sized last batch
that does not shard evenly; also the language model: stream windows whose state carries over,
sharded by row, and ragged documents) this compares, single device against the mesh: the loss and every
gradient (fp32 within 1e-6 relative, fp64 within 1e-12), and every step's loss and the final weights
of 20 SGD and 20 Adam steps (within 1e-5 relative in fp32). On a CPU the devices are host devices:
the command sets `--xla_force_host_platform_device_count` before JAX starts, so run it as its own
process (tests/parity/test_data_parallel.py does). Exit 0 when every comparison passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from shared.batching import Batch
from shared.config import ModelConfig, TrainConfig
from shared.distributed import request_host_devices, world_size_from_env

STEPS = 20
GRAD_REL_TOL = {"float32": 1e-6, "float64": 1e-12}
WEIGHT_REL_TOL = {"float32": 1e-5, "float64": 1e-10}
VARIANTS = {"sgd": TrainConfig(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=8, steps=STEPS),
            "adam": TrainConfig(optimizer="adam", lr=0.01, batch_size=8, steps=STEPS)}


def cases(dtype: str, steps: int = STEPS) -> dict[str, tuple[ModelConfig, list[Batch]]]:
    """Configs and the batches each trains on: names-like (one-hot, ragged, T 16), IMDB-like
    (embedding, bidirectional, reviews cut to 400), and 7-example batches (no even split on 2)."""
    from parity import harness as H

    names = ModelConfig(20, 5, cell="lstm", hidden_size=12, dtype=dtype)  # type: ignore[arg-type]
    imdb = ModelConfig(50, 2, cell="gru", bidirectional=True, hidden_size=8, embed_dim=6,
                       dtype=dtype)  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    odd = [H.pattern_batch(names, "ragged", rng) for _ in range(steps)]
    odd = [dataclasses.replace(b, tokens=b.tokens[:7], lengths=b.lengths[:7], labels=b.labels[:7]) for b in odd]
    return {"names": (names, [H.pattern_batch(names, "ragged", rng) for _ in range(steps)]),
            "imdb": (imdb, [H.pattern_batch(imdb, "imdb_front", rng) for _ in range(steps)]),
            "uneven": (names, odd)}


KINDS = ("classifier", "lm")


def check(devices: int, dtype: str, steps: int = STEPS, kinds: tuple[str, ...] = KINDS) -> list[Any]:
    """Every comparison, single device (first) against `devices` devices (second). Over processes,
    every process runs both sides (the single-device side on its own device) and rank 0 reports."""
    import jax

    from jax_impl import parallel
    from jax_impl.models.classifier import _gradients
    from jax_impl.train import train_state, train_step
    from parity import harness as H
    from parity.harness_cli import jax_settings
    from shared.backend import get_backend

    jb = get_backend("jax")
    found = []
    with jax_settings("cpu", dtype):
        mesh = parallel.data_mesh(devices)
        for case, (cfg, batches) in (cases(dtype, steps) if "classifier" in kinds else {}).items():
            model = jb.init(cfg, 0)
            b = batches[0]
            one = _gradients(cfg, model.params, b.tokens, b.lengths, b.labels)
            many = _gradients(cfg, parallel.replicate(mesh, model.params),
                              *parallel.shard_batch(mesh, b.tokens, b.lengths, b.labels))
            flat_one, flat_many = jax.tree_util.tree_leaves_with_path(one), jax.tree.leaves(many)
            found += [H.compare("dp.grad", case, jax.tree_util.keystr(path), np.asarray(g1), np.asarray(g2),
                                GRAD_REL_TOL[dtype], "rel") for (path, g1), g2 in zip(flat_one, flat_many, strict=True)]
            for name, tc in VARIANTS.items():
                states = [train_state(model, tc), train_state(model, dataclasses.replace(tc, devices=devices))]
                losses: list[list[float]] = [[], []]
                for batch in batches:
                    for i, s in enumerate(states):
                        states[i], metrics = train_step(s, batch)
                        losses[i].append(float(metrics["loss"]))
                found.append(H.compare("dp.loss", f"{case} {name}", "", losses[0], losses[1], GRAD_REL_TOL[dtype],
                                       "rel", elementwise=True))
                final = [jb.to_params(s.model) for s in states]
                found += [H.compare("dp.weights", f"{case} {name}", k, v, final[1][k], WEIGHT_REL_TOL[dtype], "rel")
                          for k, v in final[0].items()]
        if "lm" in kinds:
            found += check_lm(devices, dtype, steps)
    return found


def lm_cases(dtype: str, steps: int = STEPS) -> dict[str, tuple[Any, list[Any]]]:
    """The language model (2-layer LSTM, embedding): consecutive stream windows whose state carries
    over (4 rows: 2 per device), and ragged documents (6 per batch, uneven real tokens per shard)."""
    from parity import lm as P
    from shared.kinds.lm import LMConfig

    cfg = LMConfig(P.VOCAB, cell="lstm", num_layers=2, hidden_size=P.HIDDEN, embed_dim=P.EMBED, dtype=dtype)  # type: ignore[arg-type]
    rng = np.random.default_rng(1)
    return {"lm stream": (cfg, P.stream_batches(rng, steps)), "lm documents": (cfg, P.doc_batches(rng, steps))}


def check_lm(devices: int, dtype: str, steps: int = STEPS) -> list[Any]:
    """The LM's step on the mesh against one device: the gradient of the first batch, then every
    step's loss and the final weights of SGD and Adam runs, the state carried window to window."""
    import jax

    from jax_impl import parallel
    from jax_impl.models import lm
    from parity import harness as H
    from shared.backend import get_backend

    jb = get_backend("jax")
    mesh = parallel.data_mesh(devices)
    found = []
    for case, (cfg, batches) in lm_cases(dtype, steps).items():
        model = lm.init(cfg, 0)
        b = batches[0]
        carry = lm._carry_in(cfg, b, None)
        one = lm._gradients(cfg, model.params, b.inputs, b.targets, b.lengths, carry)
        many = lm._gradients(cfg, parallel.replicate(mesh, model.params),
                             *parallel.shard_batch(mesh, b.inputs, b.targets, b.lengths),
                             parallel.shard_batch(mesh, *carry, axis=1))
        found += [H.compare("dp.grad", case, jax.tree_util.keystr(path), np.asarray(g1),
                            np.asarray(parallel.local_copy(g2)), GRAD_REL_TOL[dtype], "rel")
                  for (path, g1), g2 in zip(jax.tree_util.tree_leaves_with_path(one), jax.tree.leaves(many),
                                            strict=True)]
        for name, tc in VARIANTS.items():
            states = [lm.train_state(model, tc), lm.train_state(model, dataclasses.replace(tc, devices=devices))]
            losses: list[list[float]] = [[], []]
            for batch in batches:
                for i, s in enumerate(states):
                    states[i], metrics = lm.train_step(s, batch)
                    losses[i].append(float(np.asarray(parallel.local_copy(metrics["loss"]))))
            found.append(H.compare("dp.loss", f"{case} {name}", "", losses[0], losses[1], GRAD_REL_TOL[dtype],
                                   "rel", elementwise=True))
            final = [jb.to_params(lm.model_of(s)) for s in states]
            found += [H.compare("dp.weights", f"{case} {name}", k, v, final[1][k], WEIGHT_REL_TOL[dtype], "rel")
                      for k, v in final[0].items()]
            # A yardstick, not a check: one device, each batch's rows reversed (the same sums in another
            # order; each row keeps its own carried state): how far rounding alone moves these weights.
            state = lm.train_state(model, tc)
            for batch in batches:
                state, _ = lm.train_step(state, dataclasses.replace(
                    batch, inputs=batch.inputs[::-1], targets=batch.targets[::-1], lengths=batch.lengths[::-1]))
            reordered = jb.to_params(lm.model_of(state))
            found += [H.compare("ref.reordered", f"{case} {name}", k, v, reordered[k], float("inf"), "rel")
                      for k, v in final[0].items()]
    return found


def shard(batch: Batch, rank: int, world: int) -> Batch:
    """Rank `rank`'s share of a global batch (shared/distributed.py `deal`), marked with the global size."""
    from shared.distributed import deal

    idx = deal(np.arange(len(batch)), batch.labels, world)[rank]
    return Batch(batch.tokens[idx], batch.lengths[idx], batch.labels[idx], global_size=len(batch))


def check_torch(dtype: str) -> list[Any]:
    """Under a launcher (WORLD_SIZE ranks): DistributedDataParallel on each rank's shard against one
    model on the whole batch, computed on rank 0 beside it. Every rank runs the DDP side; rank 0
    returns the comparisons, the others []."""
    import torch
    import torch.nn.functional as F

    from parity import harness as H
    from reference_torch import parallel
    from reference_torch.train import train_state, train_step
    from shared.backend import get_backend

    world = parallel.init_world()
    if world is None:
        raise SystemExit("run under torchrun: python -m torch.distributed.run --nproc-per-node 2 "
                         "-m parity.data_parallel --backend torch")
    tb = get_backend("torch")
    found = []
    torch.set_num_threads(1)
    for case, (cfg, batches) in cases(dtype).items():
        model = tb.init(cfg, 0)
        b = batches[0]
        ddp = parallel.wrap(model)
        part = shard(b, world.rank, world.size)
        out = ddp(torch.as_tensor(part.tokens), torch.as_tensor(part.lengths))
        loss = F.cross_entropy(out, torch.as_tensor(part.labels).long()) * (len(part) / len(b)) * world.size
        loss.backward()
        many = {n: p.grad.detach().numpy().copy() for n, p in model.named_parameters()}
        if world.main:
            single = tb.from_params(cfg, tb.to_params(model))
            one = tb.gradients(single, b)
            found += [H.compare("dp.grad", case, n, g, many[n], GRAD_REL_TOL[dtype], "rel") for n, g in one.items()]
        found += _ddp_trajectories(case, cfg, batches, world, dtype, tb.init, train_state, train_step, shard)
    return found + check_torch_lm(dtype, world)


def _ddp_trajectories(case: str, cfg: Any, batches: list[Any], world: Any, dtype: str, init: Any, train_state: Any,
                      train_step: Any, shard_fn: Any) -> list[Any]:
    """SGD and Adam runs from the same start: DDP on each rank's shard against one model on the
    whole batches (rank 0): every step's loss and the final weights (rank 0 returns them)."""
    from parity import harness as H
    from shared.backend import get_backend

    tb = get_backend("torch")
    found = []
    for name, tc in VARIANTS.items():
        start = tb.to_params(init(cfg, 1))
        state = train_state(tb.from_params(cfg, start), tc)  # DDP: a process group runs
        reference = train_state(tb.from_params(cfg, start), tc, ddp=False) if world.main else None
        losses: list[list[float]] = [[], []]
        for batch in batches:
            state, metrics = train_step(state, shard_fn(batch, world.rank, world.size))
            losses[1].append(float(metrics["loss"]))
            if reference is not None:
                reference, ref_metrics = train_step(reference, batch)
                losses[0].append(float(ref_metrics["loss"]))
        if world.main:
            found.append(H.compare("dp.loss", f"{case} {name}", "", losses[0], losses[1], GRAD_REL_TOL[dtype],
                                   "rel", elementwise=True))
            final = tb.to_params(state.model)
            found += [H.compare("dp.weights", f"{case} {name}", k, v, final[k], WEIGHT_REL_TOL[dtype], "rel")
                      for k, v in tb.to_params(reference.model).items()]
    return found


def check_torch_lm(dtype: str, world: Any) -> list[Any]:
    """The language model under DDP: each rank its rows of every batch (their state carried), against
    one model on the whole batch on rank 0: the first batch's gradients, then every step's loss and
    the final weights of SGD and Adam runs."""
    from parity import harness as H
    from reference_torch import parallel
    from reference_torch.models import lm
    from shared.backend import get_backend
    from shared.kinds.lm import shard_rows

    tb = get_backend("torch")
    found = []
    for case, (cfg, batches) in lm_cases(dtype).items():
        model = lm.init(cfg, 0)
        b, part = batches[0], shard_rows(batches[0], world.rank, world.size)
        ddp = parallel.wrap(model)  # kept alive through backward: its hooks do the all-reduce
        out, _ = lm._forward(model, part, None, ddp)
        (lm.token_losses(out, part).sum() / part.global_tokens * world.size).backward()
        many = {n: p.grad.detach().numpy().copy() for n, p in model.named_parameters()}
        if world.main:
            one = lm.gradients(tb.from_params(cfg, tb.to_params(model)), b)
            found += [H.compare("dp.grad", case, n, g, many[n], GRAD_REL_TOL[dtype], "rel") for n, g in one.items()]
        found += _ddp_trajectories(case, cfg, batches, world, dtype, lm.init, lm.train_state, lm.train_step,
                                   shard_rows)
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m parity.data_parallel", description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", type=int, default=2, help="devices of the data-parallel mesh (default 2)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="parameter dtype")
    p.add_argument("--json", type=Path, default=None, help="also write every comparison here")
    p.add_argument("--backend", choices=("jax", "torch"), default="jax",
                   help="jax: one program over --devices host devices (or over --procs processes); torch: "
                        "DistributedDataParallel, run under torchrun with one process per rank (default jax)")
    p.add_argument("--steps", type=int, default=STEPS,
                   help=f"training steps per optimizer and case (default {STEPS}, the issue's check; fewer for a "
                        "quick run, e.g. JAX over processes in the tests, where every step waits on gloo)")
    p.add_argument("--kinds", default=",".join(KINDS),
                   help="jax: comma list of the model kinds to check, classifier and/or lm (default both)")
    p.add_argument("--procs", type=int, default=1,
                   help="jax: one program over this many processes of one device each, started here and joined "
                        "through jax.distributed (default 1: one process, --devices devices)")
    a = p.parse_args(argv)
    if a.backend == "jax" and a.procs > 1:
        if world_size_from_env() == 1:  # the launcher: start the workers, which report
            from shared.cli.procs import launch_jax

            return launch_jax([x for x in sys.argv[1:]], a.procs, module="parity.data_parallel")
        return _jax_worker(a)
    if a.backend == "torch":
        os.environ["SEQBATCH_TORCH_DEVICE"] = "cpu"
        if a.dtype == "float64":
            import torch

            torch.set_default_dtype(torch.float64)
        from reference_torch.parallel import close_world

        found = check_torch(a.dtype)
        close_world()
        if not found:  # a rank other than 0: it took part, rank 0 reports
            return 0
        a.devices = world_size_from_env()
    else:
        request_host_devices(a.devices)  # before JAX starts
        found = check(a.devices, a.dtype, a.steps, _kinds(a.kinds))
    return _report(found, a)


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    if not kinds or any(k not in KINDS for k in kinds):
        raise SystemExit(f"--kinds: a comma list of {', '.join(KINDS)}, got {text!r}")
    return kinds


def _jax_worker(a: argparse.Namespace) -> int:
    """A process of a JAX run over processes: join, compare on the mesh of every process's device."""
    from jax_impl import parallel

    world = parallel.init_world()
    assert world is not None
    found = check(world.devices, a.dtype, a.steps, _kinds(a.kinds))
    parallel.close_world()
    if not world.main:
        return 0
    a.devices = world.devices
    return _report(found, a, unit=f"devices over {world.size} processes (jax.distributed)")


def _report(found: list[Any], a: argparse.Namespace, unit: str | None = None) -> int:
    failed = [c for c in found if not c.passed]
    worst: dict[str, Any] = {}
    for c in found:
        if c.quantity not in worst or c.value > worst[c.quantity].value:
            worst[c.quantity] = c
    for q, c in sorted(worst.items()):
        print(f"{q:11s} worst {c.on} {c.value:.3g} (tolerance {c.tol:g}) at {c.where}")
    unit = unit or ("processes (torch DDP)" if a.backend == "torch" else "devices (jax)")
    checks = [c for c in found if not c.quantity.startswith("ref.")]  # yardsticks (tolerance inf) are not checks
    print(f"{len(checks) - len(failed)} of {len(checks)} comparisons pass ({a.devices} {unit}, {a.dtype})")
    if a.json is not None:
        a.json.write_text(json.dumps([dataclasses.asdict(c) for c in found], indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    code = main()
    if world_size_from_env() > 1:  # a torchrun worker: leave before a runtime thread can abort the exit
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
