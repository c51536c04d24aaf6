"""`seqbatch sweep` (issue 14, item 1) on tiny wine runs: the cell folders, sweep.jsonl, summary.md and
plots; rerunning skips finished cells and reruns exactly the broken ones; failed cells; the one-line
user errors; the seeds, backends and grid parsers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.cli import run_captured
from shared.cli import sweep as sweep_cli
from shared.errors import SeqbatchError
from shared.sweep import parse_backends, parse_grid, parse_seeds, point_name
from shared.tabular import split_table, wine_table

EPOCHS = "2"


@pytest.fixture(autouse=True)
def _cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBATCH_TORCH_DEVICE", "cpu")


def sweep(out: Path, *extra: str, expect: int = 0) -> str:
    code, _, stderr = run_captured("sweep", "--task", "wine", "--out", str(out), "--no-progress",
                                        "--epochs", EPOCHS, *extra)
    assert code == expect, stderr
    return stderr


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "sweep.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Both backends x batch_size 32 and full x seeds 0, 1: eight cells."""
    out = tmp_path_factory.mktemp("sweep") / "both"
    mp = pytest.MonkeyPatch()
    mp.setenv("SEQBATCH_TORCH_DEVICE", "cpu")
    try:
        sweep(out, "--backends", "torch,jax", "--seeds", "0-1", "--grid", "batch_size=32,full")
        yield out
    finally:
        mp.undo()


def test_sweep_writes_cells_records_summary_and_plots(both: Path) -> None:
    rows = records(both)
    assert len(rows) == 8
    assert {(r["backend"], r["grid"]["batch_size"], r["seed"]) for r in rows} == {
        (b, v, s) for b in ("torch", "jax") for v in ("32", "full") for s in (0, 1)}
    for r in rows:
        folder = both / r["backend"] / f"batch_size={r['grid']['batch_size']}" / f"seed-{r['seed']}"
        assert Path(r["folder"]) == folder
        assert (folder / "model.safetensors").is_file() and (folder / "metrics.jsonl").is_file()
        assert r["status"] == "ok" and not r["reused"]
        assert 0 <= r["test"]["top1"] <= 1 and r["train_seconds"] >= 0
        config = json.loads((folder / "config.json").read_text())
        assert config["cli"]["seed"] == r["seed"] and config["cli"]["backend"] == r["backend"]
    # full: the whole training split (106 wine rows) in one batch, one step per epoch
    train_rows = len(split_table(wine_table(), 0).train)
    full = [r for r in rows if r["grid"]["batch_size"] == "full"]
    assert all(r["steps"] == int(EPOCHS) for r in full)
    assert json.loads((Path(full[0]["folder"]) / "config.json").read_text())["train"]["batch_size"] == train_rows
    assert all(r["steps"] == int(EPOCHS) * -(-train_rows // 32) for r in rows if r["grid"]["batch_size"] == "32")
    summary = (both / "summary.md").read_text()
    assert "## batch_size=32" in summary and "## batch_size=full" in summary
    assert summary.count("| torch | 2 |") == 2 and summary.count("| jax | 2 |") == 2
    assert summary.count("torch - jax (paired) | 2 |") == 2
    assert " ± " in summary and "top1" in summary and "train_seconds" in summary
    for plot in ("curves.png", "final.png"):
        assert (both / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_skips_finished_and_reruns_exactly_a_broken_cell(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "s"
    grid = ("--seeds", "0,1", "--grid", "lr=0.01,0.1")
    sweep(out, *grid)
    assert len(records(out)) == 4
    ran: list[list[str]] = []
    real = sweep_cli._run_cell

    def counting(argv: list[str]) -> tuple[int, str]:
        ran.append(argv)
        return real(argv)

    monkeypatch.setattr(sweep_cli, "_run_cell", counting)
    stderr = sweep(out, *grid)
    assert ran == [] and "0 trained now" in stderr
    assert all(r["reused"] for r in records(out))

    broken = out / "torch" / "lr=0.1" / "seed-1"
    (broken / "model.safetensors").unlink()
    sweep(out, *grid)
    assert len(ran) == 1 and ran[0][:2] == ["--resume", str(broken)]  # its state/ was saved: resumed
    assert (broken / "model.safetensors").is_file()
    rows = records(out)
    assert [r["reused"] for r in rows].count(False) == 1 and len(rows) == 4

    # a cell that died before saving any state is trained again from scratch (--overwrite)
    (broken / "model.safetensors").unlink()
    for f in (broken / "state").iterdir():
        f.unlink()
    ran.clear()
    sweep(out, *grid)
    assert len(ran) == 1 and "--overwrite" in ran[0] and ran[0][ran[0].index("--out") + 1] == str(broken)
    assert (broken / "model.safetensors").is_file()


def test_failed_cells_are_recorded_and_exit_1(tmp_path: Path) -> None:
    out = tmp_path / "f"
    # --max-loss below wine's first losses (~1.1): every run stops as diverged (exit 3)
    stderr = sweep(out, "--seeds", "0-1", "--max-loss", "0.5", expect=1)
    rows = records(out)
    assert len(rows) == 2 and all(r["status"] == "failed" and r["exit_code"] == 3 for r in rows)
    assert all(r["error"] for r in rows)
    assert stderr.strip().splitlines()[-1] == f"seqbatch: sweep: 2 of 2 runs failed (see {out}/sweep.jsonl)"
    assert "## Failed runs" in (out / "summary.md").read_text()
    assert (out / "final.png").is_file() and (out / "curves.png").is_file()


@pytest.mark.parametrize(("argv", "message"), [
    (("--grid", "batch_size="), "empty value"),
    (("--grid", "batch_size=1,,2"), "empty value"),
    (("--grid", "batch_size"), "KEY=V1,V2"),
    (("--grid", "bogus=1,2"), "bogus: not a `seqbatch train` flag"),
    (("--grid", "seed=1,2"), "the sweep sets it"),
    (("--grid", "lr=0.1", "lr=0.2"), "given twice"),
    (("--bogus", "3"), "unrecognized arguments: --bogus 3"),
    (("--seed", "3"), "the sweep sets --seeds"),
    (("--seeds", "4-2"), "runs backwards"),
    (("--seeds", "0,x"), "--seeds '0,x'"),
    (("--backends", "torch,tf"), "--backends 'torch,tf'"),
    (("--grid", "hidden=5"), "do not apply to --task wine"),
    (("--grid", "batch_size=abc"), "invalid int value"),
    (("--grid", "keep_best=maybe"), "true or false"),
])
def test_user_errors_exit_2_with_one_line_before_any_run(tmp_path: Path, argv: tuple[str, ...],
                                                         message: str) -> None:
    out = tmp_path / "e"
    code, _, stderr = run_captured("sweep", "--task", "wine", "--out", str(out), "--no-progress", *argv)
    assert code == 2, stderr
    assert stderr.startswith("seqbatch: error: ") and stderr.count("\n") == 1, stderr
    assert message in stderr
    assert not out.exists()


def test_out_is_required() -> None:
    code, _, stderr = run_captured("sweep", "--task", "wine")
    assert code == 2 and stderr.count("\n") == 1 and "--out" in stderr


def test_full_batch_needs_a_tabular_task(tmp_path: Path) -> None:
    code, _, stderr = run_captured("sweep", "--task", "names", "--grid", "batch_size=full", "--out",
                                   str(tmp_path / "n"))
    assert code == 2 and "wine and tabular only" in stderr


def test_parse_seeds() -> None:
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,3,7") == [0, 3, 7]
    assert parse_seeds("5,0-2,1") == [5, 0, 1, 2]
    assert parse_seeds("3") == [3]
    for bad in ("", "-1", "1-", "a-b", "2-1", "1,,2", "1.5", str(2**32)):
        with pytest.raises(SeqbatchError):
            parse_seeds(bad)


def test_parse_backends_and_grid() -> None:
    assert parse_backends("jax,torch,jax") == ["jax", "torch"]
    with pytest.raises(SeqbatchError):
        parse_backends("")
    assert parse_grid([]) == [{}]
    points = parse_grid(["batch-size=1,full", "lr=0.1,0.2"])
    assert points == [{"batch_size": "1", "lr": "0.1"}, {"batch_size": "1", "lr": "0.2"},
                      {"batch_size": "full", "lr": "0.1"}, {"batch_size": "full", "lr": "0.2"}]
    assert parse_grid(["hidden_sizes=10,10;32"]) == [{"hidden_sizes": "10,10"}, {"hidden_sizes": "32"}]
    assert point_name({"batch_size": "32", "lr": "0.1"}) == "batch_size=32,lr=0.1"
    assert point_name({}) == "default"


def test_a_rerun_with_other_flags_is_refused_not_mixed_in(tmp_path: Path) -> None:
    """Rerunning a finished sweep with another --epochs would reuse runs of the old setting: refused."""
    from shared.cli import run_captured

    base = ["sweep", "--task", "wine", "--backends", "torch", "--seeds", "0", "--out", str(tmp_path / "s"),
            "--no-progress"]
    code, _, stderr = run_captured(*base, "--epochs", "2")
    assert code == 0, stderr
    code, _, stderr = run_captured(*base, "--epochs", "2")  # the same command: fine, nothing to run
    assert code == 0, stderr
    code, _, stderr = run_captured(*base, "--epochs", "3")
    assert code == 2 and stderr.count("\n") == 1, stderr
    assert "holds a run with other flags: --epochs 3 (the run has 2)" in stderr
