"""`seqbatch neighbors` and `seqbatch export` for skip-gram checkpoints (issue 13, item 4)."""

from __future__ import annotations

from typing import Any


def add_neighbors(sub: Any) -> None:
    """TODO(helper): `seqbatch neighbors --checkpoint M WORD...`."""


def add_export(sub: Any) -> None:
    """TODO(helper): `seqbatch export --checkpoint M --format word2vec OUT`."""
