"""keep_freed_host_memory: a CPU step's big temporaries stay mapped instead of page-faulting in every step."""

from __future__ import annotations

import json
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
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        step(x, w).block_until_ready()
    print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10))
""")


def faults_per_step(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, check=True,
                         env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin",
                              "PYTHONPATH": ":".join(p for p in sys.path if p)})
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def test_kept_memory_stops_the_page_faults_of_every_step() -> None:
    default, kept = faults_per_step("default"), faults_per_step("kept")
    # A step's ~100 MB is ~25,000 pages: the default malloc faults thousands of them in again every
    # step (how many varies with which thread allocated what); kept, a few hundred at most.
    assert default > 4000, f"the default already keeps the memory ({default:.0f} faults a step): test is moot"
    assert kept < default / 4, f"{kept:.0f} faults a step with the memory kept, {default:.0f} without"


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
