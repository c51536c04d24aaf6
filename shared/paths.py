"""Output paths checked before the work that fills them: a run must not compute for minutes and then
find that it cannot write its results.

    out = writable_dir(args.out)               # a folder: created if needed, a probe file written and removed
    path = writable_file(args.json, "--json")  # a file: its folder as above, the path itself not a folder

Both raise `SeqbatchError("<flag> <path>: <reason>")`, which `seqbatch` prints as one line
(`seqbatch: error: --out runs/x: runs is a file, not a folder`) and exits 2. The probe is the only
test that settles it: permissions, ACLs, read-only mounts and full quotas all show up there, where
`os.access` misses read-only mounts and ACLs and says yes to root whatever the mode bits.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from shared.errors import SeqbatchError

__all__ = ["writable_dir", "writable_file"]

PROBE_PREFIX = ".seqbatch-write-probe-"


def writable_dir(path: Path, flag: str = "--out") -> Path:
    """Make sure `path` is a folder this process can create files in, creating it (and its parents)
    if needed; returns it. Folders it created are removed again when the probe write fails."""
    path = Path(path).expanduser()
    _check_folder(path, flag, shown=path)
    return path


def writable_file(path: Path, flag: str) -> Path:
    """Make sure a file can be written at `path`: not a folder, its folder writable (created if
    needed, as in `writable_dir`), and, when the file exists already, writable itself; returns it.
    An existing file is left untouched (it is not opened)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise SeqbatchError(f"{flag} {path}: is a folder; name a file")
    if path.is_symlink() and not path.exists():
        raise SeqbatchError(f"{flag} {path}: is a broken symbolic link")
    if path.name in ("", ".", ".."):
        raise SeqbatchError(f"{flag} {path}: names a folder; name a file")
    _check_folder(path.parent, flag, shown=path)
    if path.exists() and not os.access(path, os.W_OK):
        raise SeqbatchError(f"{flag} {path}: the file exists and is not writable")
    return path


def _check_folder(folder: Path, flag: str, shown: Path) -> None:
    def fail(reason: str) -> SeqbatchError:
        return SeqbatchError(f"{flag} {shown}: {reason}")

    here = "there" if folder == shown else f"in its folder {folder}"
    missing = _missing_chain(folder, shown, fail)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        _remove_created(missing)
        raise fail(f"cannot create the folder {_where(e, folder)}: {_reason(e)}") from e
    try:
        fd, probe = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=folder)
    except OSError as e:
        _remove_created(missing)
        raise fail(f"cannot write {here}: {_reason(e)}") from e
    try:
        os.close(fd)
    finally:
        try:
            os.unlink(probe)
        except OSError as e:  # created but not removable (sticky folder of someone else's, say)
            raise fail(f"cannot remove a file written {here}: {_reason(e)}") from e


def _missing_chain(folder: Path, shown: Path, fail: Callable[[str], SeqbatchError]) -> list[Path]:
    """The folders of `folder`'s chain that do not exist yet, deepest first; refuses a chain through
    a file (or a broken link), naming it."""
    missing: list[Path] = []
    current = folder
    while True:
        if current.is_symlink() and not current.exists():
            raise fail("is a broken symbolic link" if current == shown else f"{current} is a broken symbolic link")
        if current.exists():
            if not current.is_dir():
                raise fail("is an existing file, not a folder" if current == shown
                           else f"{current} is a file, not a folder")
            return missing
        missing.append(current)
        if current.parent == current:  # a root that does not exist (a Windows drive, say)
            return missing
        current = current.parent


def _remove_created(folders: list[Path]) -> None:
    for folder in folders:  # deepest first; rmdir only removes empty folders
        with contextlib.suppress(OSError):
            folder.rmdir()


def _where(e: OSError, folder: Path) -> str:
    return str(e.filename) if e.filename else str(folder)


def _reason(e: OSError) -> str:
    if e.errno == errno.EROFS:
        return "read-only file system"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if e.errno == errno.ENOSPC:
        return "no space left on the device"
    if e.errno == errno.ENOTDIR:
        return "a part of the path is a file, not a folder"
    return e.strerror or type(e).__name__
