"""Sub-commands that live in `parity/`: `seqbatch parity`, `bench`, `bench-kernels`, `bench-lm`, `bench-skipgram`,
`bench-scaling`, `bench-dp`, `profile-step`.

`shared/cli` loads `register` through the "seqbatch.commands" entry point (pyproject.toml), so
shared/ never imports parity/; each sub-command's module imports torch and jax only when it runs.
"""

from __future__ import annotations

import importlib
from typing import Any

# module -> function that adds its sub-parser; a module not yet present is skipped.
SUBCOMMANDS: dict[str, str] = {"parity.harness_cli": "add_parity", "parity.bench_cli": "add_bench",
                               "parity.kernels": "add_bench_kernels", "parity.bench_lm": "add_bench_lm",
                               "parity.bench_skipgram": "add_bench_skipgram", "parity.scaling": "add_bench_scaling",
                               "parity.bench_dp": "add_bench_dp", "parity.profile_step": "add_profile_step"}


def register(sub: Any) -> None:
    for module_name, func in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
            continue
        getattr(module, func)(sub)
