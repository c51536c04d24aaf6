"""Surname data: the `<Label>.txt` folder format, and an embedded default needing no download."""

from __future__ import annotations

import unicodedata
import warnings
from pathlib import Path

from shared.errors import SeqbatchError
from shared.examples import Examples
from shared.textfiles import lines, read_utf8, txt_files

# The longest name a data file may hold: the real tutorial data's longest is 20 characters, the
# embedded default's 40. Longer lines are skipped with a warning; `name_chars` refuses them.
MAX_NAME_CHARS = 64

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

    Text is NFC-normalised and stripped of surrounding whitespace; CRLF and CR end lines too.
    Skipped, each kind counted in one warning: blank lines; names longer than MAX_NAME_CHARS
    characters (a surname is short: a longer line is a paragraph or a binary file, and one 10 MB
    line would make every batch 10 MB wide); other entries of the folder (shared/textfiles.py:
    a `German.TXT` or `French.csv` is named, hidden and `.md` files pass quietly).
    Raises SeqbatchError for a missing or empty folder, a file that is not UTF-8 or holds a NUL
    (naming the file and line), and a label file left with no names (naming the file).
    """
    root = Path(folder)
    if not root.is_dir():
        raise SeqbatchError(f"data folder {str(root)!r} does not exist or is not a folder")
    files = txt_files(root)
    if not files:
        raise SeqbatchError(f"data folder {str(root)!r} holds no <Label>.txt files")
    label_names = [p.stem for p in files]
    texts: list[str] = []
    labels: list[int] = []
    blank: dict[str, int] = {}
    long: dict[str, int] = {}
    for label, path in enumerate(files):
        for line in lines(read_utf8(path)):
            text = line.strip()
            if not text:
                blank[path.name] = blank.get(path.name, 0) + 1
            elif len(text) > MAX_NAME_CHARS:
                long[path.name] = long.get(path.name, 0) + 1
            else:
                texts.append(text)
                labels.append(label)
    for what, counts in (("blank line(s)", blank), (f"line(s) longer than {MAX_NAME_CHARS} characters", long)):
        if counts:
            where = ", ".join(f"{name}: {n}" for name, n in sorted(counts.items()))
            warnings.warn(f"skipped {sum(counts.values())} {what} in {root} ({where})", stacklevel=2)
    if not texts:
        raise SeqbatchError(f"data folder {str(root)!r} holds no names (all files are empty)")
    present = set(labels)
    empty = [files[i].name for i in range(len(files)) if i not in present]
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
