"""The user's text files: read as UTF-8 with errors naming file and line; folders listed saying what they skip.

Data files are hostile until read: a UTF-16 file (every other byte NUL, which is valid UTF-8), a
Latin-1 file, a binary file under a `.txt` name. Each ends in one SeqbatchError naming the file
and the line, never in garbage tokens or a traceback.
"""

from __future__ import annotations

import unicodedata
import warnings
from pathlib import Path

from shared.errors import SeqbatchError

# Files a data folder commonly holds beside its data (the shipped names folder has a
# PROVENANCE.md): skipped without a warning, as are hidden files (`.DS_Store`, macOS's
# `._German.txt` resource forks).
DOC_SUFFIXES: tuple[str, ...] = (".md", ".rst")


def read_utf8(path: Path) -> str:
    """A whole UTF-8 file with universal newlines (CRLF and CR become \\n), NFC-normalised.

    SeqbatchError naming the file and line for bytes that are not UTF-8 and for NUL characters
    (valid UTF-8, but the sign of a UTF-16 or binary file), and for a file that cannot be read.
    """
    try:
        raw = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    except OSError as e:
        raise SeqbatchError(f"{path}: cannot be read ({e.strerror or e})") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise SeqbatchError(f"{path}: line {line} is not UTF-8 ({e.reason} at byte {e.start})") from e
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw[:nul].count(b"\n") + 1
        raise SeqbatchError(f"{path}: line {line} holds a NUL character at byte {nul} (a UTF-16 or binary "
                            "file? text files must be UTF-8)")
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))


def lines(text: str) -> list[str]:
    """The lines of a read_utf8 text; the empty tail after a final newline is no line."""
    parts = text.split("\n")
    return parts[:-1] if parts[-1] == "" else parts


def txt_files(folder: Path) -> list[Path]:
    """The `*.txt` regular files of a folder, sorted; one warning names every other entry skipped
    (a `German.TXT`, a `French.csv`, a subfolder), except hidden and documentation files."""
    files: list[Path] = []
    skipped: list[str] = []
    try:
        entries = sorted(folder.iterdir())
    except OSError as e:
        raise SeqbatchError(f"{folder}: cannot be listed ({e.strerror or e})") from e
    for p in entries:
        if p.name.startswith("."):
            continue
        if p.suffix == ".txt" and p.is_file():
            files.append(p)
        elif p.suffix.lower() not in DOC_SUFFIXES or not p.is_file():
            skipped.append(p.name + ("/" if p.is_dir() else ""))
    if skipped:
        warnings.warn(f"{folder}: skipped {len(skipped)} entr{'y' if len(skipped) == 1 else 'ies'} that "
                      f"{'is' if len(skipped) == 1 else 'are'} not a <name>.txt file: {', '.join(skipped)}",
                      stacklevel=3)
    return files
