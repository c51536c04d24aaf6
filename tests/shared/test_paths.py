"""shared.paths: output folders and files checked writable before the work, with one-line reasons."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import shared.paths
from shared.errors import SeqbatchError
from shared.paths import writable_dir, writable_file

as_root = pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                             reason="root writes whatever the permission bits say")


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    yield folder
    folder.chmod(stat.S_IRWXU)  # so that pytest can clean tmp_path


def refused(call: Any, *args: Any) -> str:
    with pytest.raises(SeqbatchError) as e:
        call(*args)
    message = str(e.value)
    assert "\n" not in message, message
    return message


def test_writable_dir_creates_the_chain_and_leaves_no_probe(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "c"
    assert writable_dir(out) == out
    assert out.is_dir() and list(out.iterdir()) == []
    assert writable_dir(out) == out  # an existing folder is fine, twice
    assert writable_dir(str(out)) == out  # type: ignore[arg-type]  # a str from a caller that did not convert


def test_an_existing_file_is_not_a_folder(tmp_path: Path) -> None:
    f = tmp_path / "results"
    f.write_text("keep me")
    assert refused(writable_dir, f) == f"--out {f}: is an existing file, not a folder"
    assert f.read_text() == "keep me"


def test_a_parent_that_is_a_file_is_named(tmp_path: Path) -> None:
    f = tmp_path / "runs"
    f.write_text("")
    message = refused(writable_dir, f / "x" / "y", "--save-dir")
    assert message == f"--save-dir {f / 'x' / 'y'}: {f} is a file, not a folder"


def test_a_broken_symlink_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "gone")
    assert "broken symbolic link" in refused(writable_dir, link)
    assert "broken symbolic link" in refused(writable_file, link, "--json")


@as_root
def test_an_unwritable_folder_is_refused(read_only_dir: Path) -> None:
    assert refused(writable_dir, read_only_dir) == f"--out {read_only_dir}: cannot write there: permission denied"
    message = refused(writable_dir, read_only_dir / "sub", "--save-dir")
    assert message.startswith(f"--save-dir {read_only_dir / 'sub'}: cannot create the folder")
    assert message.endswith("permission denied")
    target = read_only_dir / "r.json"
    message = refused(writable_file, target, "--json")
    assert message == f"--json {target}: cannot write in its folder {read_only_dir}: permission denied"


def test_a_failed_probe_names_the_reason_and_removes_the_folders_it_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(*_: Any, **__: Any) -> Any:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(shared.paths.tempfile, "mkstemp", read_only)
    out = tmp_path / "new" / "deeper"
    assert refused(writable_dir, out) == f"--out {out}: cannot write there: read-only file system"
    assert not (tmp_path / "new").exists()  # the folders it created for the probe are gone
    message = refused(writable_file, tmp_path / "r.json", "--json")
    assert message == f"--json {tmp_path / 'r.json'}: cannot write in its folder {tmp_path}: read-only file system"


def test_a_folder_that_cannot_be_created_names_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(self: Path, *_: Any, **__: Any) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", denied)
    out = tmp_path / "x"
    assert refused(writable_dir, out) == f"--out {out}: cannot create the folder {out}: permission denied"


def test_writable_file_checks_the_folder_but_not_the_file(tmp_path: Path) -> None:
    path = tmp_path / "reports" / "parity.json"
    assert writable_file(path, "--json") == path
    assert path.parent.is_dir() and not path.exists()
    path.write_text("old")
    assert writable_file(path, "--json") == path
    assert path.read_text() == "old"  # an existing file is left as it was


def test_writable_file_refuses_a_folder_and_a_file_as_folder(tmp_path: Path) -> None:
    assert refused(writable_file, tmp_path, "--json") == f"--json {tmp_path}: is a folder; name a file"
    f = tmp_path / "plain"
    f.write_text("")
    assert refused(writable_file, f / "r.json", "--json") == f"--json {f / 'r.json'}: {f} is a file, not a folder"


@as_root
def test_writable_file_refuses_a_read_only_file(tmp_path: Path) -> None:
    f = tmp_path / "r.json"
    f.write_text("{}")
    f.chmod(stat.S_IRUSR)
    assert refused(writable_file, f, "--json") == f"--json {f}: the file exists and is not writable"
