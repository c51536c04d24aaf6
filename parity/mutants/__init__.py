"""Semantic mutants: small, plausible bugs the test suite must notice (issue 12).

Each `Mutant` replaces one exact snippet of one file in a scratch copy of the repository; the
tests it names then run there, and the mutant is *killed* when they fail. The catalogs are split
by where the bug lives (`catalog_shared.py`: shared/, the CLI, parity/; `catalog_backends.py`: the
two backends); `python -m parity.mutants` runs them all and writes the table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    name: str  # short id, unique, e.g. "jax-dropout-off"
    what: str  # the plausible bug, one line
    path: str  # file, relative to the repository root
    old: str  # exact text; must occur exactly once in the file
    new: str  # what it becomes
    tests: tuple[str, ...]  # pytest arguments (files, node ids, "-k", expressions) that must kill it
