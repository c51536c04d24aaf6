"""What a run's result depends on, for its config.json: the software, the machine, the code, the data.

    record = {"environment": environment(), "data_sha256": data_hash(args.data)}

`environment()` returns a JSON-serialisable dict with exactly the keys of `ENVIRONMENT_KEYS`:

- `python`: the interpreter's version ("3.11.7"); `implementation`: "CPython", ...;
- `platform`: `platform.platform()` (OS, kernel, libc);
- `packages`: {name: version or null} for numpy, torch, jax, jaxlib, flax, optax, safetensors, read
  from the installed metadata (importlib.metadata): nothing is imported to learn a version, and a
  package that is not installed is null;
- `devices`: {"torch": ..., "jax": ...}. Heavy frameworks are never imported just for this, so it
  says what the run itself used: `torch` is the CUDA device's name when torch is already imported
  and sees a GPU, else "cpu" (a run that never imported torch ran nothing on a GPU through it);
  `jax` is `[str(d) for d in jax.devices()]` when jax is already imported, else null. Call
  `environment()` after the backend is set up, e.g. when the run writes its config;
- `hostname`: `socket.gethostname()`;
- `argv`: the command line, `sys.argv`;
- `git`: {"commit": `git rev-parse HEAD`, "dirty": whether `git status --porcelain` lists anything
  (untracked files included)} for the repository the `shared` package was loaded from, or null
  when that is not a git checkout (an installed wheel, or a site-packages folder inside some
  other project's checkout), when git is missing, or when it fails or takes longer than
  `GIT_TIMEOUT_S`. It never raises.

`data_hash(paths)` is a SHA-256 (64 hex digits) over the training data files, streamed in 1 MiB
chunks. A folder counts every regular file under it (hidden ones too, symbolic links to files
followed, links to folders not), in sorted order of their paths relative to the folder; each file
adds its relative path (POSIX form) and the SHA-256 of its bytes, so renaming, moving, editing or adding
a file changes the hash, and moving the whole folder elsewhere does not. A single file is hashed as
a folder holding only it (its name counts). Several paths are hashed in the order given. `None`,
the embedded default data set, hashes nothing and gives "embedded"; an empty sequence gives None.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from shared.errors import SeqbatchError

__all__ = ["ENVIRONMENT_KEYS", "PACKAGES", "data_hash", "environment", "git_state"]

PACKAGES: tuple[str, ...] = ("numpy", "torch", "jax", "jaxlib", "flax", "optax", "safetensors")
ENVIRONMENT_KEYS: tuple[str, ...] = ("python", "implementation", "platform", "packages", "devices", "hostname",
                                     "argv", "git")
GIT_TIMEOUT_S = 2.0  # per git call; a network file system or a huge tree must not hold a run up
CHUNK = 1 << 20
EMBEDDED = "embedded"
REPO_ROOT = Path(__file__).resolve().parents[1]  # <checkout>/shared/provenance.py -> <checkout>


def environment() -> dict[str, Any]:
    """The software, machine, command line and code a run used (keys: `ENVIRONMENT_KEYS`, see the module doc)."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "devices": {"torch": _torch_device(), "jax": _jax_devices()},
        "hostname": socket.gethostname(),
        "argv": [str(a) for a in sys.argv],
        "git": git_state(),
    }


def _version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def _torch_device() -> str:
    torch = sys.modules.get("torch")
    if torch is None:
        return "cpu"
    try:
        if torch.cuda.is_available():
            return str(torch.cuda.get_device_name(torch.cuda.current_device()))
    except Exception:  # a broken driver must not cost the run its record
        pass
    return "cpu"


def _jax_devices() -> list[str] | None:
    jax = sys.modules.get("jax")
    if jax is None:
        return None
    try:
        return [str(d) for d in jax.devices()]
    except Exception:  # no backend could start; the run did not use one either
        return None


def git_state(root: Path = REPO_ROOT, timeout: float = GIT_TIMEOUT_S) -> dict[str, Any] | None:
    """{"commit": sha, "dirty": bool} when `root` is the top of a git checkout, else None; never raises."""
    top = _git(root, timeout, "rev-parse", "--show-toplevel", "HEAD")
    if top is None:
        return None
    lines = top.splitlines()
    try:
        if len(lines) != 2 or Path(lines[0]).resolve() != root.resolve():
            return None  # not a checkout of this project: e.g. a venv inside another repository
    except OSError:
        return None
    status = _git(root, timeout, "status", "--porcelain")
    return {"commit": lines[1].strip(), "dirty": None if status is None else bool(status.strip())}


def _git(root: Path, timeout: float, *args: str) -> str | None:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=env, check=False)
    except (OSError, ValueError, subprocess.SubprocessError):  # no git, no such folder, a timeout
        return None
    return done.stdout if done.returncode == 0 else None


def data_hash(paths: Path | Sequence[Path] | None) -> str | None:
    """SHA-256 hex digest of the data files (see the module doc); "embedded" for None, None for []."""
    if paths is None:
        return EMBEDDED
    roots = [Path(paths)] if isinstance(paths, str | os.PathLike) else [Path(p) for p in paths]
    if not roots:
        return None
    digest = hashlib.sha256()
    for index, root in enumerate(roots):
        digest.update(f"root {index}\0".encode())
        for rel, file in _files(root):
            _add_file(digest, rel, file)
    return digest.hexdigest()


def _files(root: Path) -> list[tuple[str, Path]]:
    """(relative POSIX path, path) of every regular file under `root`, sorted by the relative path."""
    if root.is_file():
        return [(root.name, root)]
    if not root.is_dir():
        raise SeqbatchError(f"data {root}: no such file or folder")
    found = []
    for folder, _dirs, names in os.walk(root, onerror=_raise):
        for name in names:
            path = Path(folder, name)
            if path.is_file():
                found.append((path.relative_to(root).as_posix(), path))
    return sorted(found)


def _raise(e: OSError) -> None:
    raise SeqbatchError(f"data {e.filename}: cannot list the folder ({e.strerror})") from e


def _add_file(digest: Any, rel: str, path: Path) -> None:
    """The file's relative path (length-prefixed) and the SHA-256 of its bytes: unambiguous framing."""
    content = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for chunk in _chunks(f):
                content.update(chunk)
    except OSError as e:
        raise SeqbatchError(f"data {path}: cannot read it ({e.strerror or e})") from e
    name = rel.encode("utf-8", "surrogateescape")
    digest.update(b"file %d:" % len(name) + name + content.digest())


def _chunks(f: Any) -> Iterator[bytes]:
    while chunk := f.read(CHUNK):
        yield chunk
