"""Flags and helpers every sub-command shares."""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from shared import checkpoint
from shared.backend import BACKENDS, Backend, torch_kernel
from shared.errors import SeqbatchError


def _backend_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=sorted(BACKENDS), default="torch",
                   help="which implementation runs the model: torch (reference) or jax (port); default torch")


def _torch_kernel_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--torch-kernel", choices=("packed", "padded"), default=None,
                   help="torch backend only. packed: pack_padded_sequence into nn.RNN/LSTM/GRU (the reference); "
                        "padded: the same function from padded per-layer, per-direction calls, many times "
                        "faster to train on a CPU for long sequences. Default: $SEQBATCH_TORCH_KERNEL, else packed")


def _check_torch_kernel(a: argparse.Namespace) -> None:
    if a.torch_kernel is not None and a.backend != "torch":
        raise SeqbatchError(f"--torch-kernel {a.torch_kernel} applies to --backend torch, not {a.backend}")


def _torch_kernel(a: argparse.Namespace) -> contextlib.AbstractContextManager[None]:
    """Apply --torch-kernel for the duration of one command (models read it when they are built)."""
    _check_torch_kernel(a)
    return torch_kernel(a.torch_kernel)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def _run_config(ckpt_path: Path) -> dict[str, Any]:
    """The config.json beside a checkpoint ({} if none); a damaged one is a one-line error."""
    from shared.runs import read_config

    cfg = ckpt_path.parent / "config.json"
    return read_config(cfg) if cfg.is_file() else {}


def split_of(ckpt: checkpoint.Checkpoint, path: Path, run: dict[str, Any], seed: int | None) -> dict[str, Any]:
    """The split parameters to re-create: the checkpoint's own (`seqbatch.split`), else config.json's,
    else seed 0; `seed` (--seed) overrides. A config.json beside the checkpoint that describes
    another split is refused: it belongs to another run."""
    own = ckpt.split
    beside = run.get("split") if isinstance(run.get("split"), dict) else None
    if beside is None and run:
        beside = {"seed": run.get("train", {}).get("seed", 0), **run.get("subsample", {})}
    if own is not None and beside is not None:
        differ = [k for k in ("seed", "max_train", "max_test") if k in own and k in beside and own[k] != beside[k]]
        if differ:
            theirs = ", ".join(f"{k} {beside[k]}" for k in differ)
            mine = ", ".join(f"{k} {own[k]}" for k in differ)
            raise SeqbatchError(f"{path.parent / 'config.json'} describes another run ({theirs}) than {path} was "
                                f"trained in ({mine}); move the checkpoint out of that folder")
    split = dict(own if own is not None else beside or {"seed": 0})
    if seed is not None:
        split["seed"] = seed
    return split


def _eval_dtype_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dtype", choices=("float32", "float64"), default=None,
                   help="compute in this precision (weights are upcast exactly); default: the checkpoint's. "
                        "float64 takes float32 rounding out of cross-backend comparisons: the two backends' "
                        "float32 logits differ by ~1e-6 relative, their float64 logits by ~1e-13")


def _load_model(backend: Backend, ckpt: checkpoint.Checkpoint, dtype: str | None) -> Any:
    cfg = ckpt.config if dtype is None else replace(ckpt.config, dtype=dtype)
    return backend.from_params(cfg, ckpt.params)


