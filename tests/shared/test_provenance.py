"""shared.provenance: the environment record and the training-data hash written into config.json."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import shared.provenance as prov
from shared.errors import SeqbatchError
from shared.provenance import ENVIRONMENT_KEYS, PACKAGES, data_hash, environment, git_state

FILES = {"Greek.txt": b"Papadopoulos\nGeorgiou\n", "Polish.txt": b"Kowalski\n", "sub/Irish.txt": b"Murphy\n"}


def make_tree(root: Path, files: dict[str, bytes] = FILES, order: list[str] | None = None) -> Path:
    for rel in order or list(files):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[rel])
    return root


# ---- data_hash ----------------------------------------------------------------------------------


def test_the_hash_is_a_stable_sha256_and_the_default_data_is_embedded(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "names")
    first = data_hash(root)
    assert isinstance(first, str) and len(first) == 64 and int(first, 16) >= 0
    assert data_hash(root) == first == data_hash(str(root))  # type: ignore[arg-type]
    assert data_hash([root]) == first
    assert data_hash(None) == "embedded"
    assert data_hash([]) is None


def test_one_byte_of_one_file_changes_the_hash(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "names")
    before = data_hash(root)
    target = root / "sub" / "Irish.txt"
    raw = bytearray(target.read_bytes())
    raw[3] ^= 1
    target.write_bytes(bytes(raw))
    assert data_hash(root) != before
    raw[3] ^= 1
    target.write_bytes(bytes(raw))
    assert data_hash(root) == before


def test_renaming_moving_adding_or_removing_a_file_changes_the_hash(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "names")
    before = data_hash(root)
    (root / "Polish.txt").rename(root / "Czech.txt")
    renamed = data_hash(root)
    assert renamed != before
    (root / "Czech.txt").rename(root / "sub" / "Czech.txt")
    assert data_hash(root) not in (before, renamed)
    (root / "sub" / "Czech.txt").rename(root / "Polish.txt")
    assert data_hash(root) == before
    (root / "empty.txt").write_bytes(b"")
    assert data_hash(root) != before
    (root / "empty.txt").unlink()
    (root / "Greek.txt").unlink()
    assert data_hash(root) != before


def test_the_hash_ignores_listing_and_creation_order_and_where_the_folder_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = make_tree(tmp_path / "a")
    b = make_tree(tmp_path / "elsewhere" / "b", order=list(reversed(FILES)))
    assert data_hash(a) == data_hash(b)
    real_walk = os.walk

    def reversed_walk(top: Any, **kw: Any) -> Iterator[tuple[str, list[str], list[str]]]:
        for folder, dirs, names in real_walk(top, **kw):
            dirs.reverse()
            yield folder, dirs, list(reversed(names))

    expected = data_hash(a)
    monkeypatch.setattr(prov.os, "walk", reversed_walk)
    assert data_hash(a) == expected


def test_content_and_names_do_not_run_into_each_other(tmp_path: Path) -> None:
    """'ab' + 'c' and 'a' + 'bc' (in path or content) hash differently: each part is framed."""
    one = make_tree(tmp_path / "one", {"x": b"ab", "y": b"c"})
    two = make_tree(tmp_path / "two", {"x": b"a", "y": b"bc"})
    three = make_tree(tmp_path / "three", {"xy": b"abc"})
    assert len({data_hash(one), data_hash(two), data_hash(three)}) == 3


def test_files_are_streamed_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_tree(tmp_path / "big", {"data.bin": os.urandom(10_000), "small.txt": b"x"})
    whole = data_hash(root)
    reads: list[int] = []
    real_chunks = prov._chunks

    def counted(f: Any) -> Iterator[bytes]:
        for chunk in real_chunks(f):
            reads.append(len(chunk))
            yield chunk

    monkeypatch.setattr(prov, "CHUNK", 999)
    monkeypatch.setattr(prov, "_chunks", counted)
    assert data_hash(root) == whole
    assert max(reads) == 999 and sum(reads) == 10_001


def test_a_single_file_and_several_paths(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "names")
    greek = root / "Greek.txt"
    single = data_hash(greek)
    assert single == data_hash(make_tree(tmp_path / "only", {"Greek.txt": FILES["Greek.txt"]}))
    copy = tmp_path / "Hellenic.txt"
    shutil.copy(greek, copy)
    assert data_hash(copy) != single  # a file's name is part of what it hashes
    both = data_hash([greek, root / "Polish.txt"])
    assert both not in (single, data_hash([root / "Polish.txt", greek]))  # several paths: in the order given


def test_missing_data_is_a_seqbatch_error(tmp_path: Path) -> None:
    with pytest.raises(SeqbatchError, match="no such file or folder"):
        data_hash(tmp_path / "missing")


# ---- environment --------------------------------------------------------------------------------


def test_environment_is_json_with_the_documented_keys() -> None:
    env = json.loads(json.dumps(environment()))
    assert tuple(env) == ENVIRONMENT_KEYS
    assert env["python"] == ".".join(map(str, sys.version_info[:3]))
    assert tuple(env["packages"]) == PACKAGES
    assert all(v is None or isinstance(v, str) for v in env["packages"].values())
    assert env["packages"]["numpy"] is not None
    assert set(env["devices"]) == {"torch", "jax"}
    assert env["argv"] == sys.argv and isinstance(env["hostname"], str)
    assert env["git"] is None or (len(env["git"]["commit"]) == 40 and env["git"]["dirty"] in (True, False, None))


def test_an_absent_package_is_null(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prov, "PACKAGES", ("numpy", "surely-not-installed-seqbatch-probe"))
    assert environment()["packages"]["surely-not-installed-seqbatch-probe"] is None


def test_environment_imports_no_framework() -> None:
    code = ("import json, sys; from shared.provenance import environment; env = environment(); "
            "assert not {'torch', 'jax', 'flax', 'optax'} & set(sys.modules), sorted(sys.modules); "
            "print(json.dumps(env['devices']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(prov.__file__).parents[1], check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"torch": "cpu", "jax": None}


def test_devices_come_from_frameworks_already_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = types.SimpleNamespace(is_available=lambda: True, current_device=lambda: 0,
                                 get_device_name=lambda i: f"NVIDIA H200 #{i}")
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    monkeypatch.setitem(sys.modules, "jax", types.SimpleNamespace(devices=lambda: ["cuda:0", "cuda:1"]))
    assert environment()["devices"] == {"torch": "NVIDIA H200 #0", "jax": ["cuda:0", "cuda:1"]}

    def broken() -> Any:
        raise RuntimeError("no driver")

    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=types.SimpleNamespace(is_available=broken)))
    monkeypatch.setitem(sys.modules, "jax", types.SimpleNamespace(devices=broken))
    assert environment()["devices"] == {"torch": "cpu", "jax": None}


# ---- git ----------------------------------------------------------------------------------------

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          capture_output=True, text=True, check=True, timeout=30).stdout


@needs_git
def test_git_state_of_a_checkout_clean_and_dirty(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    git(repo, "add", "a.py")
    git(repo, "commit", "-q", "-m", "one")
    head = git(repo, "rev-parse", "HEAD").strip()
    assert git_state(repo) == {"commit": head, "dirty": False}
    (repo / "a.py").write_text("x = 2\n")
    assert git_state(repo) == {"commit": head, "dirty": True}
    assert git_state(repo / "sub") is None  # not a folder at all
    (repo / "sub").mkdir()
    assert git_state(repo / "sub") is None  # inside a checkout, but not its top: some other project's


@needs_git
def test_git_state_is_null_outside_a_checkout_and_without_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert git_state(tmp_path) is None
    (tmp_path / "empty-repo").mkdir()
    git(tmp_path / "empty-repo", "init", "-q")
    assert git_state(tmp_path / "empty-repo") is None  # no commit yet: no HEAD
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert git_state() is None


def test_a_slow_git_times_out_to_null(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float] = []

    def slow(*args: Any, timeout: float, **kw: Any) -> Any:
        seen.append(timeout)
        raise subprocess.TimeoutExpired(args[0], timeout)

    monkeypatch.setattr(prov.subprocess, "run", slow)
    assert git_state() is None
    assert seen and all(t <= prov.GIT_TIMEOUT_S <= 5 for t in seen)
    assert environment()["git"] is None
