"""The `<Label>.txt` loader, the embedded default data set, and the real surname folder."""

from __future__ import annotations

import time
import unicodedata
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.errors import SeqbatchError
from shared.examples import Examples
from shared.names import MAX_NAME_CHARS, default_names, load_names, load_names_or_default

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


def test_documentation_and_hidden_files_are_skipped_quietly(make_names_dir: NamesDir) -> None:
    folder = make_names_dir({"Irish": ["Murphy"]})
    (folder / "PROVENANCE.md").write_text("where the data came from\n")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / "._Irish.txt").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_names(folder).label_names == ["Irish"]


def test_other_entries_are_skipped_with_one_warning_naming_them(make_names_dir: NamesDir) -> None:
    # A label must not vanish silently: German.TXT or French.csv was meant to be a label file.
    folder = make_names_dir({"Irish": ["Murphy"], "Polish": ["Nowak"]})
    (folder / "German.TXT").write_text("Schmidt\n")
    (folder / "French.csv").write_text("Martin\n")
    (folder / "Dutch").write_text("De Vries\n")
    (folder / "Arabic.txt.bak").write_text("Nader\n")
    (folder / "old").mkdir()
    with pytest.warns(UserWarning, match=r"skipped 5 entries that are not a <name>\.txt file") as record:
        data = load_names(folder)
    assert len(record) == 1
    assert all(name in str(record[0].message) for name in ("German.TXT", "French.csv", "Dutch", "Arabic.txt.bak",
                                                           "old/"))
    assert data.label_names == ["Irish", "Polish"]


def test_names_longer_than_the_maximum_are_skipped_and_counted(make_names_dir: NamesDir) -> None:
    giant = b"x" * 10_000_000  # one 10 MB line would make every batch holding it 10 million steps wide
    folder = make_names_dir({"German": b"Schmidt\n" + b"y" * (MAX_NAME_CHARS + 1) + b"\nMeyer\n" + giant,
                             "Dutch": ["De Vries", "x" * MAX_NAME_CHARS]})
    with pytest.warns(UserWarning, match=rf"skipped 2 line\(s\) longer than {MAX_NAME_CHARS} characters") as record:
        data = load_names(folder)
    assert "German.txt: 2" in str(record[0].message)
    assert sorted(data.texts) == sorted(["Schmidt", "Meyer", "De Vries", "x" * MAX_NAME_CHARS])


def test_a_file_holding_only_a_giant_line_is_a_label_without_names(make_names_dir: NamesDir) -> None:
    folder = make_names_dir({"English": ["Smith"], "Giant": b"z" * 10_000_000})
    with pytest.raises(SeqbatchError, match=r"label file\(s\) with no names: Giant\.txt"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_names(folder)


def test_empty_and_whitespace_only_files_are_named(make_names_dir: NamesDir) -> None:
    folder = make_names_dir({"English": ["Smith"], "French": b"", "German": b"  \n\t\r\n\xc2\xa0\n"})
    with pytest.raises(SeqbatchError, match=r"label file\(s\) with no names: French\.txt, German\.txt"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_names(folder)


@pytest.mark.parametrize(("content", "message"), [
    (b"Smith\nSmi\x00th\n", r"English\.txt: line 2 holds a NUL character"),
    ("Smith\nJones\n".encode("utf-16-le"), r"English\.txt: line 1 holds a NUL character .*UTF-16"),
    ("Smith\nJones\n".encode("utf-16"), r"English\.txt: line 1 is not UTF-8"),  # with its byte-order mark
    (b"Smith\n\xff\xfe\xfa\n", r"English\.txt: line 2 is not UTF-8"),
])
def test_nul_bytes_and_utf16_are_refused_naming_file_and_line(
    make_names_dir: NamesDir, content: bytes, message: str
) -> None:
    with pytest.raises(SeqbatchError, match=message):
        load_names(make_names_dir({"English": content, "Irish": ["Ryan"]}))


def test_cr_and_crlf_end_lines_too(make_names_dir: NamesDir) -> None:
    folder = make_names_dir({"English": b"Smith\rJones\r\nBrown\n\rGreen"})
    with pytest.warns(UserWarning, match="skipped 1 blank line"):
        assert load_names(folder).texts == ["Smith", "Jones", "Brown", "Green"]


def test_a_file_of_millions_of_blank_lines_is_read_in_linear_time(make_names_dir: NamesDir) -> None:
    # Counting the lines again for each blank line made this quadratic: hours for 4 MB.
    folder = make_names_dir({"English": b"Smith\n" + b"\n" * 4_000_000, "Irish": ["Ryan"]})
    start = time.perf_counter()
    with pytest.warns(UserWarning, match="skipped 4000000 blank line"):
        load_names(folder)
    assert time.perf_counter() - start < 30


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
