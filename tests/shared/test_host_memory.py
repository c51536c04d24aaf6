"""keep_freed_host_memory: a CPU step's big temporaries stay mapped instead of page-faulting in every step."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("jax")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")

PROGRAM = textwrap.dedent("""
    import json, resource, sys
    if sys.argv[1] == "kept":
        from shared.host_memory import keep_freed_host_memory
        keep_freed_host_memory()
    import jax, jax.numpy as jnp

    @jax.jit
    def step(x, w):  # four independent scans, ~26 MB of temporaries each, allocated by XLA's threads
        def body(h, _):
            return jnp.tanh(h @ w), h
        return sum(jax.lax.scan(body, x[k], None, length=100)[1].sum() for k in range(4))

    x = jnp.ones((4, 128, 512)) * jnp.arange(1, 5)[:, None, None]; w = jnp.eye(512) * 0.5
    for _ in range(3):
        step(x, w).block_until_ready()
    faults = []
    for _ in range(12):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        step(x, w).block_until_ready()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(json.dumps(faults))
""")


def faults_per_step(mode: str) -> list[int]:
    out = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, check=True,
                         env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin",
                              "PYTHONPATH": ":".join(p for p in sys.path if p)})
    return [int(f) for f in json.loads(out.stdout.strip().splitlines()[-1])]


def test_kept_memory_stops_the_page_faults_of_every_step() -> None:
    default, kept = faults_per_step("default"), faults_per_step("kept")
    # A step's ~100 MB is ~25,000 pages: the default malloc faults thousands of them in again every
    # step (how many varies with which thread allocated what). Kept, a step faults none, except
    # that the heap may still grow once by a step's worth (a fragmentation step, ~32,000 faults,
    # after which the resident size stays put): seen in 1 of 3 fresh processes, so the typical
    # (median) step is what is compared, and growth is allowed in at most a quarter of the steps.
    typical_default, typical_kept = statistics.median(default), statistics.median(kept)
    assert min(default) > 4000, f"the default already keeps the memory ({default} faults a step): test is moot"
    assert typical_kept < typical_default / 4, f"faults a step with the memory kept: {kept}, without: {default}"
    assert sum(f > typical_default / 4 for f in kept) <= len(kept) // 4, f"the kept heap kept faulting: {kept}"


def test_seqbatch_keeps_memory_before_it_parses_or_imports_a_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    import shared.cli as cli
    import shared.host_memory as host_memory

    calls: list[str] = []
    monkeypatch.setattr(host_memory, "keep_freed_host_memory", lambda: calls.append("keep"))
    real = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: (calls.append("parse"), real())[1])
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert calls[:2] == ["keep", "parse"]
