"""Every flag of `parity`, `bench`, `bench-lm` and `bench-kernels` is checked before any work, the
output path last: a bad value ends in one line `seqbatch: error: ...` and exit 2, not a traceback
after minutes. The work functions are replaced by tripwires, so nothing here measures anything."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

import parity.bench
import parity.bench_lm
import parity.harness_cli
import parity.kernels
import parity.lm
from parity.flags import available_cpus
from shared.cli import main

TOO_MANY = str(available_cpus() + 1)


class Reached(Exception):
    """Raised by a tripwire: the command got past its checks and started the work."""


@pytest.fixture(autouse=True)
def tripwires(monkeypatch: pytest.MonkeyPatch) -> None:
    def work(*_: Any, **__: Any) -> Any:
        raise Reached

    for module, name in ((parity.bench, "run"), (parity.bench_lm, "run"), (parity.kernels, "run"),
                         (parity.harness_cli, "run"), (parity.lm, "run_grid"), (parity.lm, "check_lm")):
        monkeypatch.setattr(module, name, work)


def on_cpu(argv: list[str]) -> list[str]:
    """`--device cpu` for the commands that have the flag (bench-kernels always runs on the CPU)."""
    return argv if argv[0] == "bench-kernels" else [*argv, "--device", "cpu"]


def one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(on_cpu(argv)) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("seqbatch: error: ") and "\n" not in err, err
    assert "Traceback" not in captured.err
    return err.removeprefix("seqbatch: error: ")


BAD: list[tuple[list[str], str]] = [
    (["bench", "--threads", "0"], "--threads must be >= 1, got 0"),
    (["bench", "--threads", "-3"], "--threads must be >= 1, got -3"),
    (["bench", "--threads", TOO_MANY], f"--threads {TOO_MANY}: this process may use"),
    (["bench", "--repeats", "0"], "--repeats must be >= 1, got 0"),
    (["bench", "--hidden", "8,0"], "--hidden values must be >= 1, got 0"),
    (["bench", "--hidden", ","], "--hidden: give at least one value"),
    (["bench", "--batch-sizes", "4,-1"], "--batch-sizes values must be >= 1, got -1"),
    (["bench", "--cells", ","], "--cells: give at least one of rnn, lstm, gru"),
    (["bench", "--per-example-n", "0"], "--per-example-n must be >= 1, got 0"),
    (["bench-lm", "--sizes", "huge"], "--sizes huge: choose among lesson, small, tiny"),
    (["bench-lm", "--sizes", "small,"], "--sizes '': choose among lesson, small, tiny"),
    (["bench-lm", "--cells", "lstm,transformer"], "--cells transformer: choose among rnn_tanh, rnn_relu, lstm, gru"),
    (["bench-lm", "--threads", "0"], "--threads must be >= 1, got 0"),
    (["bench-lm", "--threads", TOO_MANY], f"--threads {TOO_MANY}: this process may use"),
    (["bench-lm", "--min-seconds", "0"], "--min-seconds must be a finite number > 0, got 0.0"),
    (["bench-lm", "--min-seconds", "-1"], "--min-seconds must be a finite number > 0, got -1.0"),
    (["bench-lm", "--min-seconds", "nan"], "--min-seconds must be a finite number > 0, got nan"),
    (["bench-lm", "--min-seconds", "inf"], "--min-seconds must be a finite number > 0, got inf"),
    (["bench-kernels", "--cells", "lstm,rnn"], "--cells rnn: choose among rnn_tanh, rnn_relu, lstm, gru"),
    (["bench-kernels", "--shapes", "4bi"], "--shapes 4bi: choose among 1, 3bi, 2bi, 1bi"),
    (["bench-kernels", "--max-lens", "100,0"], "--max-lens values must be >= 1, got 0"),
    (["bench-kernels", "--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    (["bench-kernels", "--pool", "-1"], "--pool must be >= 1, got -1"),
    (["bench-kernels", "--max-train", "0"], "--max-train must be >= 1, got 0"),
    (["bench-kernels", "--threads", "0"], "--threads must be >= 1, got 0"),
    (["parity", "--layers", "0"], "--layers must be >= 1, got 0"),
    (["parity", "--hidden", "-4"], "--hidden must be >= 1, got -4"),
    (["parity", "--embed-dim", "0"], "--embed-dim must be >= 1, got 0"),
    (["parity", "--steps", "-1"], "--steps must be >= 0, got -1"),
    (["parity", "--grid-steps", "-1"], "--grid-steps must be >= 0, got -1"),
    (["parity", "--seed", "-1"], "--seed must be in [0, 2**32), got -1"),
    (["parity", "--seed", str(2**32)], f"--seed must be in [0, 2**32), got {2**32}"),
    (["parity", "--kind", "lm", "--steps", "0"], "--steps must be >= 1, got 0"),
    (["parity", "--kind", "lm", "--bidirectional"], "--bidirectional: a language model reads left to right only"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_number_or_name_is_one_line_and_nothing_is_created(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "new" / "out"
    where = ["--json", str(out / "p.json")] if argv[0] == "parity" else ["--out", str(out)]
    assert one_line_error([*argv, *where], capsys).startswith(message)
    assert not (tmp_path / "new").exists()  # the flags are checked before the output path is made


@pytest.mark.parametrize("command", ["bench", "bench-kernels"])
def test_missing_data_is_named(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-data"
    err = one_line_error([command, "--data", str(missing), "--out", str(tmp_path / "o")], capsys)
    assert err == f"--data {missing}: no such file or folder"


OUT_FLAG = {"bench": "--out", "bench-lm": "--out", "bench-kernels": "--out", "parity": "--json"}


@pytest.mark.parametrize("command", list(OUT_FLAG))
def test_an_output_under_a_file_is_refused_before_the_work(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    target = blocker / "run" / ("p.json" if command == "parity" else "")
    flag = OUT_FLAG[command]
    err = one_line_error([command, flag, str(target)], capsys)
    assert err == f"{flag} {target}: {blocker} is a file, not a folder"


@pytest.mark.parametrize("command", ["bench", "bench-lm", "bench-kernels"])
def test_an_out_that_is_a_file_is_refused(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "bench.json"
    f.write_text("{}")
    err = one_line_error([command, "--out", str(f)], capsys)
    assert err == f"--out {f}: is an existing file, not a folder"
    assert f.read_text() == "{}"


@pytest.mark.parametrize("dtype", ["float32", "both"])
@pytest.mark.parametrize("kind", ["classifier", "lm"])
def test_parity_json_that_is_a_folder_is_refused(
    kind: str, dtype: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = one_line_error(["parity", "--kind", kind, "--dtype", dtype, "--json", str(tmp_path)], capsys)
    assert err == f"--json {tmp_path}: is a folder; name a file"


GOOD = [(["parity"], "--json"), (["parity", "--kind", "lm"], "--json"), (["bench"], "--out"), (["bench-lm"], "--out"),
        (["bench-kernels"], "--out")]


@pytest.mark.parametrize(("argv", "flag"), GOOD)
def test_good_flags_reach_the_work_with_the_output_ready(argv: list[str], flag: str, tmp_path: Path) -> None:
    """The defaults pass the checks; the output folder exists, without a probe left behind, before the work."""
    out = tmp_path / "a" / "b"
    with pytest.raises(Reached):
        main(on_cpu([*argv, flag, str(out / "p.json" if flag == "--json" else out)]))
    assert out.is_dir() and list(out.iterdir()) == []


def test_parity_checks_both_dtypes_report_paths(tmp_path: Path) -> None:
    from parity.flags import check_parity

    a = argparse.Namespace(kind="classifier", bidirectional=False, layers=1, hidden=4, embed_dim=None, steps=None,
                           grid_steps=0, seed=2**32 - 1, dtype="both", json=tmp_path / "r.json", device="cpu")
    assert check_parity(a, tmp_path) == {"float32": tmp_path / "r-float32.json", "float64": tmp_path / "r-float64.json"}
    a.json = None
    assert check_parity(a, tmp_path)["float64"] == tmp_path / "parity-cpu-float64.json"
    a.kind = "lm"
    assert check_parity(a, tmp_path)["float32"] == tmp_path / "parity-lm-cpu-float32.json"


def test_text_where_a_number_belongs_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["bench-lm", "--min-seconds", "soon"], ["bench-kernels", "--max-lens", "100,x"],
                 ["bench", "--threads", "two"], ["parity", "--seed", "1.5"]):
        with pytest.raises(SystemExit) as e:
            main([*argv, "--out", "unused"] if argv[0] != "parity" else argv)
        assert e.value.code == 2
    assert "expected comma-separated integers, got '100,x'" in capsys.readouterr().err
