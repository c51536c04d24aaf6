"""`seqbatch`: the command line. Thin by design: it builds configs and calls library functions.

One module per model kind (`classify.py`: names and imdb; `lm.py`: charlm and `generate`), the
shared flags in `common.py`; `parity/` adds its sub-commands through `parity.cli.register`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from shared.cli import classify, lm
from shared.errors import SeqbatchError


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
    try:
        from parity.cli import register
    except ImportError:
        pass
    else:
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
