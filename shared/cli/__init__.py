"""`seqbatch`: the command line. Thin by design: it builds configs and calls library functions.

One module per model kind (`classify.py`: names and imdb; `lm.py`: charlm and `generate`;
`skipgram.py`: skipgram training and eval; `words.py`: `neighbors`, `export`; `tabular.py`: wine
and tabular, the MLP's train, eval and predict), the shared flags in `common.py`; `parity/` adds
its sub-commands through `parity.cli.register`.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any

from shared.cli import classify, lm, sweep, words
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
    words.add_neighbors(sub)
    sweep.add_sweep(sub)
    words.add_export(sub)
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


def _out_of_memory(e: BaseException) -> bool:
    """MemoryError, torch's OutOfMemoryError, XLA's RESOURCE_EXHAUSTED."""
    text = str(e)[:300]
    return (isinstance(e, MemoryError) or "OutOfMemory" in type(e).__name__ or "RESOURCE_EXHAUSTED" in text
            or "can't allocate memory" in text)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Exit status: 0 done; 2 a user error (one line `seqbatch: error: ...`, also
    for an unreadable or full disk and for memory exhaustion); 3 training diverged (the last good
    state kept); 128 + signal for SIGINT (130) and SIGTERM (143), after a training run saved its state."""
    from shared.guard import EXIT_DIVERGED, Diverged, Interrupted
    from shared.host_memory import keep_freed_host_memory

    keep_freed_host_memory()  # before any backend starts a thread (see its docstring)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # `train --procs` relaunches this command line
    previous = _sigterm_interrupts()
    try:
        return int(args.func(args))
    except SeqbatchError as e:
        return _fail(f"seqbatch: error: {e}", 2)
    except Diverged as e:
        return _fail(f"seqbatch: error: {e}", EXIT_DIVERGED)
    except Interrupted as e:
        return _fail(f"seqbatch: {e}", e.exit_code)
    except KeyboardInterrupt:
        return _fail("seqbatch: interrupted by SIGINT", 130)
    except OSError as e:  # a full disk, a vanished folder: what the user's machine got wrong
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        return _fail(f"seqbatch: error: {where}{e.strerror or e}", 2)
    except Exception as e:
        if _out_of_memory(e):
            return _fail(f"seqbatch: error: out of memory ({type(e).__name__}); use a smaller --batch-size, "
                         "--hidden or --max-len", 2)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def run_captured(*argv: str) -> tuple[int, str, str]:
    """Run one command in this process: (exit status, what it printed, what it printed to stderr)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _fail(line: str, code: int) -> int:
    print(line, file=sys.stderr)
    return code


def _sigterm_interrupts() -> Any:
    """SIGTERM becomes an `Interrupted` exception (exit 143) instead of an abrupt death; training
    loops install their own handler that saves the run state first. None outside the main thread."""
    from shared.guard import Interrupted

    def handler(signum: int, frame: Any) -> None:
        raise Interrupted(signum, None, None)

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
