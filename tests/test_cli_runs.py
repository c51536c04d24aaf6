"""`seqbatch train` run folders from the command line: bad flags refused before anything is touched,
--resume/--overwrite, the lock, divergence (exit 3), signals (exit 130/143), honest eval splits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.cli import run_captured as cli
from shared.runs import RunFolder

SEQBATCH = [sys.executable, "-c", "from shared.cli import main; raise SystemExit(main())"]
TINY = ["--hidden", "8", "--embed-dim", "4", "--batch-size", "8", "--eval-every", "3", "--optimizer", "adam",
        "--lr", "0.01", "--no-progress"]


@pytest.fixture(autouse=True)
def _cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBATCH_TORCH_DEVICE", "cpu")




def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("seqbatch: error: "), err
    return lines[0]


@pytest.mark.parametrize("flags, says", [
    (["--lr", "nan"], "lr must be > 0"),
    (["--lr", "inf"], "lr must be > 0"),
    (["--lr", "0"], "lr must be > 0"),
    (["--momentum", "nan"], "momentum"),
    (["--momentum", "1"], "momentum"),
    (["--clip-norm", "nan"], "clip_norm"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--task", "imdb", "--batch-size", "0"], "--batch-size must be >= 1"),
    (["--steps", "-5"], "steps must be >= 1"),
    (["--epochs", "0"], "epochs must be >= 1"),
    (["--dropout", "1.5"], "--dropout must be in [0, 1)"),
    (["--dropout", "nan"], "--dropout must be in [0, 1)"),
    (["--hidden", "0"], "--hidden must be >= 1"),
    (["--layers", "0"], "--layers must be >= 1"),
    (["--seed", "-1"], "--seed must be an integer in [0, 2**32)"),
    (["--seed", str(2**32)], "--seed must be an integer in [0, 2**32)"),
    (["--sampler", "epoch", "--bucket-chunk", "-1"], "--bucket-chunk must be >= 0"),
    (["--eval-every", "0"], "--eval-every must be >= 1"),
    (["--max-loss", "0"], "max_loss must be > 0"),
    (["--max-loss", "nan"], "max_loss must be > 0"),
    (["--checkpoint-every", "0"], "--checkpoint-every must be >= 1"),
    (["--task", "charlm", "--time-limit", "nan"], "--time-limit"),
    (["--task", "charlm", "--seq-length", "0"], "--seq-length must be >= 1"),
])
def test_bad_flags_are_refused_before_anything_is_written(flags: list[str], says: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, _, err = cli("train", *flags, "--out", str(out), "--no-progress")
    assert code == 2 and says in one_line_error(err)
    assert not out.exists()  # checked before the run folder is made


def test_out_must_be_a_writable_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    code, _, err = cli("train", "--out", str(tmp_path / "file"), "--no-progress")
    assert code == 2 and "is an existing file" in one_line_error(err)
    code, _, err = cli("train", "--no-progress")
    assert code == 2 and "--out RUN_DIR" in one_line_error(err)


def test_a_finished_run_is_not_trained_over_and_can_be_extended(tiny_names_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "--data", str(tiny_names_dir), *TINY, "--steps", "4", "--dropout", "0.2", "--layers", "2",
            "--out", str(out)]
    assert cli(*args)[0] == 0
    code, _, err = cli(*args)
    assert code == 2 and "already holds a run" in one_line_error(err)
    code, _, err = cli("train", "--resume", str(out), "--lr", "0.5", "--no-progress")
    assert code == 2 and "--lr 0.5 (the run has 0.01)" in one_line_error(err)
    code, _, err = cli("train", "--resume", str(out), "--epochs", "3", "--no-progress")
    assert code == 2 and "extend it with --steps" in one_line_error(err)
    code, stdout, err = cli("train", "--resume", str(out), "--steps", "6", "--no-progress")
    assert code == 0, err
    assert json.loads(stdout)["steps"] == 6
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").open() if "split" not in json.loads(line)]
    assert steps == [1, 2, 3, 4, 5, 6]
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["steps"] == 6 and config["resumes"][0]["step"] == 4
    assert config["environment"]["packages"]["numpy"] and config["split"]["seed"] == 0
    assert len(config["split"]["data_sha256"]) == 64
    assert oct((out / "model.safetensors").stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    code, _, err = cli(*args[:-2], "--out", str(out), "--overwrite")
    assert code == 0 and "--overwrite: removed" in err


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_second_run_into_a_locked_folder_refuses_at_once(tmp_path: Path) -> None:
    out = tmp_path / "run"
    holder = RunFolder(out, "new")
    (out / "config.json").write_text("{}")  # the first run's file
    try:
        start = time.monotonic()
        code, _, err = cli("train", "--out", str(out), "--overwrite", "--no-progress")
        assert code == 2 and f"in use by process {os.getpid()}" in one_line_error(err)
        assert time.monotonic() - start < 5
        assert (out / "config.json").read_text() == "{}"  # nothing of the first run damaged
    finally:
        holder.close()


def test_diverging_names_run_exits_3_with_a_loadable_last_good_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, _, err = cli("train", "--lr", "1e6", "--steps", "300", "--out", str(out), "--no-progress")
    line = err.strip().splitlines()[-1]
    assert code == 3 and line.startswith("seqbatch: error: loss became") and "last good state: step" in line
    assert "Traceback" not in err
    code, stdout, err = cli("eval", "--checkpoint", str(out / "state" / "model.safetensors"))
    assert code == 0, err
    assert json.loads(stdout)["n"] > 0


def test_eval_recreates_the_split_from_the_checkpoint_and_refuses_a_foreign_config(tiny_names_dir: Path,
                                                                                  tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert cli("train", "--data", str(tiny_names_dir), *TINY, "--steps", "3", "--seed", "5", "--out", str(out))[0] == 0
    lone = tmp_path / "lone.safetensors"
    lone.write_bytes((out / "model.safetensors").read_bytes())  # a checkpoint copied alone keeps its seed
    _, with_config, _ = cli("eval", "--checkpoint", str(out / "model.safetensors"), "--data", str(tiny_names_dir))
    _, alone, _ = cli("eval", "--checkpoint", str(lone), "--data", str(tiny_names_dir))
    assert json.loads(with_config) == json.loads(alone)
    config = json.loads((out / "config.json").read_text())
    config["split"]["seed"] = 0
    (out / "config.json").write_text(json.dumps(config))
    code, _, err = cli("eval", "--checkpoint", str(out / "model.safetensors"), "--data", str(tiny_names_dir))
    assert code == 2 and "describes another run (seed 0)" in one_line_error(err)
    (out / "config.json").write_text("{not json")
    code, _, err = cli("eval", "--checkpoint", str(out / "model.safetensors"), "--data", str(tiny_names_dir))
    assert code == 2 and "config.json: not a readable run config" in one_line_error(err)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_the_state_and_says_how_to_resume(sig: int, code: int, tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SEQBATCH_TORCH_DEVICE": "cpu"}
    proc = subprocess.Popen([*SEQBATCH, "train", "--steps", "100000", "--eval-every", "1000", "--out", str(out),
                             "--no-progress"], stderr=subprocess.PIPE, text=True, env=env)
    state = out / "state" / "run.safetensors"
    deadline = time.monotonic() + 120
    while not state.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    last = err.strip().splitlines()[-1]
    assert proc.returncode == code, err
    assert "Traceback" not in err and f"resume with: seqbatch train --resume {out}" in last
    assert not (out / ".lock").exists()
    holder = RunFolder(out, "resume")  # the saved state is there and the folder is free
    holder.close()


def test_a_full_disk_during_a_save_is_one_line_and_keeps_the_last_state(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from shared import runs

    calls = {"n": 0}

    def disk_full(tmp: Path) -> None:
        if tmp.name.startswith(".run.safetensors"):
            calls["n"] += 1
            if calls["n"] == 2:  # the save at step 0 succeeds, the next one finds the disk full
                raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    monkeypatch.setattr(runs, "FAULT_BEFORE_REPLACE", disk_full)
    out = tmp_path / "run"
    code, _, err = cli("train", "--steps", "20", "--checkpoint-every", "5", "--out", str(out), "--no-progress")
    assert code == 2 and "No space left on device" in one_line_error(err.splitlines()[-1])
    monkeypatch.setattr(runs, "FAULT_BEFORE_REPLACE", None)
    assert not (out / ".lock").exists() and not list((out / "state").glob(".*.tmp"))
    code, stdout, err = cli("train", "--resume", str(out), "--no-progress")  # from the state of step 0
    assert code == 0, err
    assert json.loads(stdout)["steps"] == 20


def test_a_plot_that_fails_costs_a_warning_not_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shared.training

    def broken(*args: object, **kw: object) -> None:
        raise RuntimeError("no display")

    monkeypatch.setattr(shared.training, "loss_curve", broken)
    out = tmp_path / "run"
    code, _, err = cli("train", "--steps", "3", "--out", str(out), "--no-progress")
    assert code == 0 and "the plots were not written (RuntimeError: no display)" in err
    assert (out / "model.safetensors").is_file() and not (out / "loss.png").exists()


def test_a_model_too_big_for_memory_is_refused_before_allocating(tmp_path: Path) -> None:
    code, _, err = cli("train", "--hidden", "100000", "--steps", "1", "--out", str(tmp_path / "run"), "--no-progress")
    assert code == 2 and "GiB for its weights, gradients and optimizer state" in one_line_error(err.splitlines()[-1])


def test_eval_checks_its_output_paths_before_loading_anything(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    code, _, err = cli("eval", "--checkpoint", str(tmp_path / "missing.safetensors"), "--confusion",
                       str(tmp_path / "folder"))
    assert code == 2 and "--confusion" in one_line_error(err)
