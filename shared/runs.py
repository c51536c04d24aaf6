"""Run folders that survive crashes: a lock, atomic files, streamed metrics, and the saved run state.

A run folder holds `config.json`, `metrics.jsonl` (one strict-JSON record per line, streamed as
training goes), `state/` (what `--resume` needs), and at the end `model.safetensors` and the plots.

`state/run.safetensors` is ONE file, so one rename makes a save atomic (a kill at any instant
leaves the old state or the new one, never a mix):

- tensors `model/<name>` (the weights, shared/layout.py names), `best/<name>` (the best
  validation's weights, with --keep-best), and what the backend's `state_arrays` returns:
  `optim/...` (optimizer state), `rng/...` (dropout generator), `carry/<i>` (a language model's
  carried state, `[layers, B, H]`);
- metadata `seqbatch.state`: JSON with the step, the metrics so far (`history`), the best
  validation's step and figures, and the loop's own counters; `seqbatch.kind`, `seqbatch.model`.

`state/model.safetensors` is the same weights as a plain checkpoint (`seqbatch eval` reads it).
The data stream needs no saved state: batches are a pure function of the seed, so a resumed run
replays the sampler to its step (index arithmetic only) and draws the same batches after it.

Every write goes to a temporary file in the same folder, is flushed and fsync'ed, and is renamed
over the target; `FAULT_BEFORE_REPLACE` lets tests simulate a kill in the middle of a save.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from shared.errors import SeqbatchError

RUN_FILES: tuple[str, ...] = ("config.json", "metrics.jsonl", "model.safetensors", "loss.png", "curves.png", "state")
LOCK = ".lock"
STATE_FORMAT = "1"
DEFAULT_SAVE_SECONDS = 600.0  # without --checkpoint-every: at each validation, and at least every 10 minutes
# Tests set this to a function of the temporary path, called just before the rename that commits a
# write: raising there is a process dying mid-save.
FAULT_BEFORE_REPLACE: Callable[[Path], None] | None = None


# ---- strict JSON and atomic files


def finite_json(value: Any) -> Any:
    """`value` with NaN and infinities as None and NumPy scalars as Python ones (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(value: Any, **kw: Any) -> str:
    return json.dumps(finite_json(value), allow_nan=False, ensure_ascii=False, **kw)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` for a temporary file beside `path`, fsync it, rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if FAULT_BEFORE_REPLACE is not None:
            FAULT_BEFORE_REPLACE(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---- the lock


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _take_lock(folder: Path) -> Path:
    """Create `folder/.lock` (owner's PID, host, start time) or refuse; take over a dead owner's."""
    lock = folder / LOCK
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner = json.loads(lock.read_text())
                pid, host = int(owner["pid"]), str(owner["host"])
            except (OSError, ValueError, KeyError, TypeError):
                owner, pid, host = {}, -1, "?"
            if host == me["host"] and pid > 0 and _alive(pid):
                raise SeqbatchError(f"{folder} is in use by process {pid} on {host} (since "
                                    f"{owner.get('started', '?')}); wait for it or train into another --out") from None
            if host not in (me["host"], "?"):
                raise SeqbatchError(f"{folder} is locked by process {pid} on host {host}, which this machine cannot "
                                    f"check; if that run is dead, delete {lock}") from None
            warnings.warn(f"{lock}: taking over the lock of process {pid}, which is no longer running", stacklevel=3)
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(me))
        return lock
    raise SeqbatchError(f"{lock}: could not take the lock")


# ---- the run folder


class RunFolder:
    """One run's folder, locked while it is open. `mode`: "new" (refuses a folder that holds a run),
    "overwrite" (removes the run files first), "resume" (needs a saved state), "read" (needs a saved
    state; neither locked nor written: the other ranks of a data-parallel run that rank 0 resumes)."""

    def __init__(self, path: str | Path, mode: str = "new", *, log: Callable[[str], Any] = print) -> None:
        from shared.paths import writable_dir

        if mode not in ("new", "overwrite", "resume", "read"):
            raise SeqbatchError(f"unknown run folder mode {mode!r}")
        self.path = Path(path)
        self.mode = mode
        self.signum: int | None = None
        self.lock: Path | None = None
        if mode in ("resume", "read") and not self.path.is_dir():
            raise SeqbatchError(f"--resume {self.path}: no such run folder")
        if mode == "read":
            if not self.state_file.is_file():
                raise SeqbatchError(f"--resume {self.path}: no saved state ({self.state_file} is missing)")
            return
        writable_dir(self.path, "--resume" if mode == "resume" else "--out")
        self.lock = _take_lock(self.path)
        try:
            found = [n for n in RUN_FILES if (self.path / n).exists()]
            if mode == "new" and found:
                raise SeqbatchError(f"--out {self.path} already holds a run ({', '.join(found)}); continue it with "
                                    f"--resume {self.path}, or give --overwrite to remove {', '.join(found)}")
            if mode == "overwrite" and found:
                for n in found:
                    p = self.path / n
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
                log(f"--overwrite: removed {', '.join(found)} from {self.path}")
            if mode == "resume" and not self.state_file.is_file():
                raise SeqbatchError(f"--resume {self.path}: no saved state ({self.state_file} is missing)")
            for stale in self.path.glob("**/.*.tmp"):  # a save a kill interrupted
                stale.unlink(missing_ok=True)
        except BaseException:
            self.close()
            raise

    @property
    def state_file(self) -> Path:
        return self.path / "state" / "run.safetensors"

    @property
    def resumes(self) -> bool:
        """Whether the run continues from the folder's saved state."""
        return self.mode in ("resume", "read")

    def close(self) -> None:
        if self.lock is not None:
            with contextlib.suppress(OSError):
                self.lock.unlink()

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- files

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_text(self.path / "config.json", dumps(config, indent=2) + "\n")

    def read_config(self) -> dict[str, Any]:
        return read_config(self.path / "config.json")

    def rewrite_metrics(self, history: list[dict[str, Any]]) -> None:
        atomic_text(self.path / "metrics.jsonl", "".join(dumps(r) + "\n" for r in history))

    def append_metrics(self, records: list[dict[str, Any]]) -> None:
        if records:
            with (self.path / "metrics.jsonl").open("a", encoding="utf-8") as f:
                f.write("".join(dumps(r) + "\n" for r in records))

    # -- signals

    @contextlib.contextmanager
    def catch_signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM set `self.signum` (the loop saves and stops at the next step); a second one
        interrupts at once. Outside the main thread nothing is installed."""
        try:
            saved = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        except ValueError:  # not the main thread
            yield
            return
        try:
            yield
        finally:
            for s, h in saved.items():
                signal.signal(s, h)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            from shared.guard import Interrupted

            raise Interrupted(signum, None, None)
        self.signum = signum


def read_config(path: Path) -> dict[str, Any]:
    """A run's config.json as a dict; SeqbatchError naming the file if it is unreadable or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SeqbatchError(f"{path}: not a readable run config ({e})") from e
    if not isinstance(value, dict):
        raise SeqbatchError(f"{path}: not a run config (a JSON object is needed)")
    return value


# ---- the saved state


def save_state(folder: RunFolder, *, model_cfg: Any, params: dict[str, np.ndarray], arrays: dict[str, np.ndarray],
               info: dict[str, Any], best: dict[str, np.ndarray] | None, checkpoint: Any) -> None:
    """Write `state/run.safetensors` atomically, then `state/model.safetensors` (a plain checkpoint)."""
    from safetensors.numpy import save_file

    from shared import checkpoint as ckpt_io
    from shared.kinds import kind_of

    tensors = {f"model/{k}": v for k, v in params.items()} | dict(arrays)
    if best is not None:
        tensors |= {f"best/{k}": v for k, v in best.items()}
    meta = {"seqbatch.state": dumps({"format": STATE_FORMAT, **info}), "seqbatch.kind": kind_of(model_cfg).name,
            "seqbatch.model": model_cfg.to_json()}
    tensors = {k: np.array(v, order="C") for k, v in tensors.items()}  # ascontiguousarray makes 0-d 1-d
    atomic_write(folder.state_file, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
    ckpt_io.save(folder.path / "state" / "model.safetensors", checkpoint)


def load_state(folder: RunFolder, model_cfg: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                                                           dict[str, np.ndarray] | None, dict[str, Any]]:
    """(weights, backend arrays, best weights or None, info) from `state/run.safetensors`, checked
    against `model_cfg` (names, shapes, finiteness); SeqbatchError naming the file otherwise."""
    from safetensors import safe_open

    from shared.checkpoint import check_params

    path = folder.state_file
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
        info = json.loads(meta["seqbatch.state"])
        saved_model = json.loads(meta["seqbatch.model"])
    except Exception as e:
        raise SeqbatchError(f"{path}: not a readable run state ({type(e).__name__}: {e})") from e
    if not isinstance(info, dict) or info.get("format") != STATE_FORMAT:
        raise SeqbatchError(f"{path}: unknown run state format")
    if saved_model != json.loads(model_cfg.to_json()):
        raise SeqbatchError(f"{path}: the saved model ({meta['seqbatch.model']}) is not the one config.json "
                            f"describes ({model_cfg.to_json()})")
    params = {k[6:]: v for k, v in tensors.items() if k.startswith("model/")}
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best/")} or None
    for what, p in (("model", params), ("best", best)):
        if p is not None:
            check_params(model_cfg, p, f"{path} ({what}/)")
            bad = [k for k, v in p.items() if not np.isfinite(v).all()]
            if bad:
                raise SeqbatchError(f"{path}: non-finite values in {what}/{bad[0]}")
    arrays = {k: v for k, v in tensors.items() if not k.startswith(("model/", "best/"))}
    return params, arrays, best, info


@contextlib.contextmanager
def opened(folder: RunFolder | None, out_dir: str | Path | None, mode: str, log: Callable[[str], Any]
           ) -> Iterator[RunFolder | None]:
    """The training loops' folder: `folder` as given (the caller closes it), else `out_dir` opened in
    `mode` and closed (its lock released) on the way out, else None (no folder: nothing written)."""
    if folder is not None or out_dir is None:
        yield folder
        return
    own = RunFolder(out_dir, mode, log=log)
    try:
        yield own
    finally:
        own.close()
