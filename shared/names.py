"""Surname data: the `<Label>.txt` folder format, and an embedded default needing no download."""

from __future__ import annotations

import unicodedata
import warnings
from pathlib import Path

from shared.errors import SeqbatchError
from shared.examples import Examples

# The default data set: real surnames per locale from Faker's person providers (a maintained
# registry package we depend on), in Latin, Greek and Cyrillic scripts. Locale -> label.
DEFAULT_LOCALES: dict[str, str] = {
    "cs_CZ": "Czech",
    "de_DE": "German",
    "el_GR": "Greek",
    "en_US": "English",
    "es_ES": "Spanish",
    "fi_FI": "Finnish",
    "fr_FR": "French",
    "ga_IE": "Irish",
    "hr_HR": "Croatian",
    "it_IT": "Italian",
    "nl_NL": "Dutch",
    "ru_RU": "Russian",
    "sk_SK": "Slovak",
    "tr_TR": "Turkish",
    "uk_UA": "Ukrainian",
}


def load_names(folder: str | Path) -> Examples:
    """Read a folder of `<Label>.txt` files, one name per line (UTF-8); the file name is the label.

    Blank lines are skipped and counted in one warning; text is NFC-normalised and stripped of
    surrounding whitespace. Raises SeqbatchError for a missing or empty folder and for a file
    that is not UTF-8 (naming the file and line).
    """
    root = Path(folder)
    if not root.is_dir():
        raise SeqbatchError(f"data folder {str(root)!r} does not exist or is not a folder")
    files = sorted(p for p in root.glob("*.txt") if p.is_file())
    if not files:
        raise SeqbatchError(f"data folder {str(root)!r} holds no <Label>.txt files")
    label_names = [p.stem for p in files]
    texts: list[str] = []
    labels: list[int] = []
    blank: dict[str, int] = {}
    for label, path in enumerate(files):
        # Editors on Windows start UTF-8 files with a byte-order mark; it is not part of the first name.
        raw = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
        for lineno, line in enumerate(raw.split(b"\n"), start=1):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as e:
                raise SeqbatchError(f"{path}: line {lineno} is not UTF-8 ({e.reason} at byte {e.start})") from e
            text = unicodedata.normalize("NFC", text).strip()
            if not text:
                if lineno < raw.count(b"\n") + 1 or line.strip():  # the empty tail after the last \n is no line
                    blank[path.name] = blank.get(path.name, 0) + 1
                continue
            texts.append(text)
            labels.append(label)
    if blank:
        where = ", ".join(f"{name}: {n}" for name, n in sorted(blank.items()))
        warnings.warn(f"skipped {sum(blank.values())} blank line(s) in {root} ({where})", stacklevel=2)
    if not texts:
        raise SeqbatchError(f"data folder {str(root)!r} holds no names (all files are empty)")
    empty = [label_names[i] for i in range(len(files)) if i not in set(labels)]
    if empty:
        raise SeqbatchError(f"{root}: label file(s) with no names: {', '.join(empty)}")
    return Examples(texts, labels, label_names)


def default_names() -> Examples:
    """The embedded default: Faker's surname lists, one label per locale (DEFAULT_LOCALES)."""
    import importlib

    texts: list[str] = []
    labels: list[int] = []
    label_names = sorted(set(DEFAULT_LOCALES.values()))
    for locale, label in sorted(DEFAULT_LOCALES.items()):
        try:
            module = importlib.import_module(f"faker.providers.person.{locale}")
        except ImportError as e:  # pragma: no cover - faker is a dependency
            raise SeqbatchError(f"the default data needs the 'faker' package ({e}); or pass --data DIR") from e
        for name in dict.fromkeys(module.Provider.last_names):  # ordered, de-duplicated
            name = unicodedata.normalize("NFC", str(name)).strip()
            if name:
                texts.append(name)
                labels.append(label_names.index(label))
    return Examples(texts, labels, label_names)


def load_names_or_default(folder: str | Path | None) -> Examples:
    return default_names() if folder is None else load_names(folder)
