"""`seqbatch`: the command line. Thin by design: it builds configs and calls library functions.

One module per model kind (`classify.py`: names and imdb; `lm.py`: charlm and `generate`), the
shared flags in `common.py`; `parity/` adds its sub-commands through `parity.cli.register`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from shared.cli import classify, lm
from shared.errors import SeqbatchError

COMMANDS_GROUP = "seqbatch.commands"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqbatch",
        description="Batched training of variable-length sequence models on two backends (PyTorch, JAX).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    classify.add_train(sub)
    classify.add_eval(sub)
    classify.add_predict(sub)
    lm.add_generate(sub)
    # Other packages add sub-commands through the "seqbatch.commands" entry point group
    # (parity/ adds parity, bench, bench-lm, bench-kernels; see pyproject.toml): shared/ never
    # imports them, and a command whose package is missing is simply not offered.
    for entry in entry_points(group=COMMANDS_GROUP):
        try:
            register = entry.load()
        except ImportError:
            continue
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except SeqbatchError as e:
        print(f"seqbatch: error: {e}", file=sys.stderr)
        return 2




if __name__ == "__main__":
    raise SystemExit(main())
