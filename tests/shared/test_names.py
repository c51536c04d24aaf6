"""The `<Label>.txt` loader, the embedded default data set, and the real surname folder."""

from __future__ import annotations

import unicodedata
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.errors import SeqbatchError
from shared.examples import Examples
from shared.names import default_names, load_names, load_names_or_default

NamesDir = Callable[..., Path]  # the make_names_dir fixture (tests/conftest.py)


def test_labels_come_from_file_names_in_sorted_order(make_names_dir: NamesDir) -> None:
    folder = make_names_dir({"Polish": ["Nowak", "Kowalski"], "Czech": ["Novak"], "Arabic": ["Nader", "Haddad"]})
    data = load_names(folder)
    assert data.label_names == ["Arabic", "Czech", "Polish"]
    pairs = sorted(zip(data.texts, (data.label_names[i] for i in data.labels), strict=True))
    assert pairs == [("Haddad", "Arabic"), ("Kowalski", "Polish"), ("Nader", "Arabic"),
                     ("Novak", "Czech"), ("Nowak", "Polish")]


def test_text_is_nfc_normalised_and_stripped(make_names_dir: NamesDir) -> None:
    decomposed = "Jose\u0301"  # e + combining acute: two code points that NFC makes one
    folder = make_names_dir({"Spanish": [f"  {decomposed}\t", "Gómez\r"]})
    data = load_names(folder)
    assert data.texts == ["José", "Gómez"]
    assert all(unicodedata.is_normalized("NFC", t) for t in data.texts)


def test_files_that_are_not_txt_are_ignored(make_names_dir: NamesDir) -> None:
    folder = make_names_dir({"Irish": ["Murphy"]})
    (folder / "PROVENANCE.md").write_text("where the data came from\n")
    assert load_names(folder).label_names == ["Irish"]


def test_blank_lines_are_skipped_and_counted_in_one_warning(make_names_dir: NamesDir) -> None:
    folder = make_names_dir({"German": b"Schmidt\n\n   \nMeyer\n", "Dutch": b"\nDe Vries\n", "Irish": b"Ryan"})
    with pytest.warns(UserWarning, match=r"skipped 3 blank line") as record:
        data = load_names(folder)
    assert len(record) == 1
    message = str(record[0].message)
    assert "German.txt: 2" in message and "Dutch.txt: 1" in message and "Irish" not in message
    assert sorted(data.texts) == ["De Vries", "Meyer", "Ryan", "Schmidt"]


def test_a_trailing_newline_is_not_a_blank_line(make_names_dir: NamesDir) -> None:
    folder = make_names_dir({"German": b"Schmidt\nMeyer\n"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_names(folder).texts == ["Schmidt", "Meyer"]


def test_missing_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    with pytest.raises(SeqbatchError, match="no-such-folder"):
        load_names(missing)


def test_a_file_instead_of_a_folder_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "English.txt"
    path.write_text("Smith\n")
    with pytest.raises(SeqbatchError, match="not a folder"):
        load_names(path)


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    with pytest.raises(SeqbatchError, match=r"holds no <Label>\.txt files"):
        load_names(tmp_path / "data")


def test_folder_of_only_empty_files_is_an_error(make_names_dir: NamesDir) -> None:
    folder = make_names_dir({"English": b"", "French": b"\n"})
    with pytest.raises(SeqbatchError, match="holds no names"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_names(folder)


def test_one_empty_label_file_is_named(make_names_dir: NamesDir) -> None:
    folder = make_names_dir({"English": ["Smith"], "French": b""})
    with pytest.raises(SeqbatchError, match="French"):
        load_names(folder)


def test_a_file_that_is_not_utf8_names_the_file_and_line(make_names_dir: NamesDir) -> None:
    folder = make_names_dir({"English": ["Smith"], "German": "Müller\nSchäfer\n".encode("latin-1")})
    with pytest.raises(SeqbatchError, match=r"German\.txt: line 1 is not UTF-8"):
        load_names(folder)
    folder = make_names_dir({"German": "Meyer\nBauer\nMüller\n".encode("cp1252")}, name="data2")
    with pytest.raises(SeqbatchError, match=r"German\.txt: line 3 is not UTF-8"):
        load_names(folder)


def test_load_names_or_default_picks_the_folder_when_given(make_names_dir: NamesDir) -> None:
    folder = make_names_dir({"English": ["Smith"], "French": ["Martin"]})
    assert load_names_or_default(folder).label_names == ["English", "French"]


@pytest.fixture(scope="module")
def default() -> Examples:
    return default_names()


def test_default_has_many_labels_and_names(default: Examples) -> None:
    assert len(default.label_names) >= 10
    assert len(default) > 5000
    counts = Counter(default.labels)
    assert set(counts) == set(range(len(default.label_names))), "every label has names"
    assert min(counts.values()) >= 3, "every label can be split 80/10/10"


def test_default_spans_several_scripts(default: Examples) -> None:
    scripts = {unicodedata.name(ch).split()[0] for t in default.texts for ch in t if ch.isalpha()}
    assert {"LATIN", "GREEK", "CYRILLIC"} <= scripts


def test_default_has_no_duplicates_within_a_label(default: Examples) -> None:
    pairs = Counter(zip(default.texts, default.labels, strict=True))
    assert max(pairs.values()) == 1
    assert all(t and t == t.strip() and unicodedata.is_normalized("NFC", t) for t in default.texts)


def test_real_names_data_loads_completely(real_names_dir: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the published files have no blank lines
        data = load_names(real_names_dir)
    assert len(data) == 20074
    assert len(data.label_names) == 18
    assert {"Arabic", "Chinese", "English", "Japanese", "Russian", "Vietnamese"} <= set(data.label_names)
    assert Counter(data.labels)[data.label_names.index("Russian")] == 9408


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_name(make_names_dir: NamesDir) -> None:
    folder = make_names_dir({"English": "\ufeffSmith\nJones\n".encode()})
    assert load_names(folder).texts == ["Smith", "Jones"]
