"""JAX data parallel over 2 host devices (issue 15): the mesh step equals the single-device step
(parity/data_parallel.py, run as its own process because XLA reads the device count once), and
`seqbatch train --devices 2` gives the single-device run's model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shared.distributed import HOST_DEVICES_FLAG, request_host_devices
from shared.errors import SeqbatchError

ROOT = Path(__file__).resolve().parents[2]


def fresh(*argv: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    # Without the suite's shared compilation cache (tests/conftest.py): JAX processes that compile the
    # same program at once would read each other's half-written entries (a warning, then a compile).
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS" and not k.startswith("JAX_PERSISTENT_CACHE")
           and k != "JAX_COMPILATION_CACHE_DIR"}
    env["SEQBATCH_TORCH_DEVICE"] = "cpu"
    return subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_two_device_step_is_the_single_device_step(dtype: str, tmp_path: Path) -> None:
    out = tmp_path / "dp.json"
    done = fresh("-m", "parity.data_parallel", "--devices", "2", "--dtype", dtype, "--json", str(out))
    found = json.loads(out.read_text())
    cases = {c["case"] for c in found}
    assert {"names sgd", "names adam", "imdb adam", "uneven sgd", "lm stream sgd", "lm stream adam",
            "lm documents sgd", "lm documents adam"} <= cases
    assert {c["quantity"] for c in found} == {"dp.grad", "dp.loss", "dp.weights", "ref.reordered"}
    failed = [c for c in found if not c["max_rel"] <= c["tol"]]
    if dtype == "float64":
        assert done.returncode == 0 and not failed, done.stdout + done.stderr
    else:
        # The one known miss (README, data parallel): in float32 the language model's final weights after
        # 20 Adam steps on ragged documents differ by 1.7e-5 of their largest weight, over the issue's
        # 1e-5; the same run on ONE device with the batch's rows reversed differs by 8.5e-6, and float64
        # agrees to 6e-16: rounding of a reordered sum, amplified by Adam. Anything else failing is a bug.
        assert all(c["case"] == "lm documents adam" and c["quantity"] == "dp.weights" and c["max_rel"] < 5e-5
                   for c in failed), done.stdout + done.stderr
        assert done.returncode == (1 if failed else 0), done.stdout + done.stderr
    # Really two devices: the all-reduce sums in another order, so some figure differs in the last bits.
    assert any(c["max_abs"] > 0 for c in found)


def test_train_with_two_devices_gives_the_single_device_model(tiny_names_dir: Path, tmp_path: Path) -> None:
    flags = ["-m", "shared.cli", "train", "--backend", "jax", "--data", str(tiny_names_dir), "--hidden", "6",
             "--embed-dim", "4", "--optimizer", "adam", "--lr", "0.01", "--batch-size", "8", "--steps", "12",
             "--eval-every", "6", "--no-progress"]
    runs = {}
    for n in (1, 2):
        done = fresh(*flags, "--devices", str(n), "--out", str(tmp_path / f"d{n}"))
        assert done.returncode == 0, done.stderr
        runs[n] = json.loads(done.stdout.strip().splitlines()[-1])
    assert runs[1]["test"]["top1"] == runs[2]["test"]["top1"]
    assert runs[2]["test"]["loss"] == pytest.approx(runs[1]["test"]["loss"], rel=1e-5)
    config = json.loads((tmp_path / "d2" / "config.json").read_text())
    assert config["train"]["devices"] == 2


@pytest.mark.parametrize(("backend", "how"), [("jax", "--devices"), ("jax", "--procs"), ("torch", "--procs")])
def test_a_language_model_trained_on_two_devices_is_the_one_device_model(backend: str, how: str,
                                                                         tmp_path: Path) -> None:
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 120, encoding="utf-8")
    # No dropout: torch DDP ranks draw their own masks (the same model in distribution, not in numbers).
    flags = ["-m", "shared.cli", "train", "--task", "charlm", "--backend", backend, "--data", str(text), "--hidden",
             "12", "--embed-dim", "6", "--batch-size", "8", "--seq-length", "16", "--steps", "20", "--eval-every",
             "10", "--lr", "0.03", "--dropout", "0", "--no-progress"]
    runs = {}
    for n in (1, 2):
        done = fresh(*flags, how, str(n), "--out", str(tmp_path / f"lm{n}"))
        assert done.returncode == 0, done.stderr
        printed = [line for line in done.stdout.splitlines() if line.startswith('{"backend"')]
        assert len(printed) == 1, done.stdout  # over processes, rank 0 alone prints the result
        runs[n] = json.loads(printed[0])
        # torch DDP: one device per process; JAX: one program over every process's devices
        devices = 1 if backend == "torch" else n
        assert json.loads((tmp_path / f"lm{n}" / "config.json").read_text())["train"]["devices"] == devices
    # The run state holds every row's carried state, in the rows' order (over processes: gathered for rank 0).
    from safetensors.numpy import load_file

    one, two = (load_file(tmp_path / f"lm{n}" / "state" / "run.safetensors") for n in (1, 2))
    carries = sorted(k for k in one if k.startswith("carry/"))
    assert carries == sorted(k for k in two if k.startswith("carry/")) and carries
    for k in carries:
        assert two[k].shape == (2, 8, 12)  # [layers, rows, hidden]
        np.testing.assert_allclose(two[k], one[k], rtol=1e-4, atol=1e-6, err_msg=k)
    assert runs[2]["test"]["nats_per_char"] == pytest.approx(runs[1]["test"]["nats_per_char"], rel=1e-5)
    assert runs[2]["val"]["nats_per_char"] == pytest.approx(runs[1]["val"]["nats_per_char"], rel=1e-5)
    assert runs[1]["test"]["nats_per_char"] < 2.8  # it learned something (uniform over its 29 tokens: 3.37)
    # --resume, data parallel as the run was (each rank reads the saved state and takes its rows of the
    # carried state), extends it to the one-device run extended alike.
    extended = {}
    for n in (1, 2):
        again = [how, "2"] if n == 2 else []
        done = fresh("-m", "shared.cli", "train", "--resume", str(tmp_path / f"lm{n}"), "--steps", "30",
                     "--no-progress", *again)
        assert done.returncode == 0, done.stderr
        printed = [line for line in done.stdout.splitlines() if line.startswith('{"backend"')]
        assert len(printed) == 1 and json.loads(printed[0])["steps"] == 30, done.stdout
        extended[n] = json.loads(printed[0])
    assert extended[2]["test"]["nats_per_char"] == pytest.approx(extended[1]["test"]["nats_per_char"], rel=1e-5)
    assert extended[2]["test"]["nats_per_char"] != pytest.approx(runs[2]["test"]["nats_per_char"], rel=1e-5)


@pytest.mark.parametrize("argv, message", [
    (["--backend", "torch", "--devices", "2"], "--devices 2"),
    (["--backend", "jax", "--devices", "0"], "--devices 0"),
    (["--backend", "jax", "--devices", "2", "--batch-size", "7"], "not divisible by --devices 2"),
    (["--backend", "jax", "--procs", "2", "--devices", "2"], "not with --devices"),
    (["--backend", "jax", "--procs", "2", "--batch-size", "7"], "not divisible by 2 processes"),
    (["--backend", "jax", "--procs", "0"], "--procs must be >= 1"),
])
def test_bad_device_requests_for_a_language_model_are_one_line_errors(argv: list[str], message: str,
                                                                      tmp_path: Path) -> None:
    text = tmp_path / "t.txt"
    text.write_text("abc " * 2000, encoding="utf-8")
    done = fresh("-m", "shared.cli", "train", "--task", "charlm", "--data", str(text), "--steps", "2", "--no-progress",
                 *argv, "--out", str(tmp_path / "r"))
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and err[-1].startswith("seqbatch: error:") and message in err[-1], done.stderr


def test_the_device_count_is_asked_for_before_jax_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XLA_FLAGS", f"--xla_cpu_multi_thread_eigen=false {HOST_DEVICES_FLAG}=5")
    request_host_devices(3)
    assert os.environ["XLA_FLAGS"] == f"--xla_cpu_multi_thread_eigen=false {HOST_DEVICES_FLAG}=3"
    with pytest.raises(SeqbatchError, match="--devices must be >= 1"):
        request_host_devices(0)


@pytest.mark.parametrize("argv, message", [
    (["--backend", "torch", "--devices", "2"], "--devices 2"),
    (["--backend", "jax", "--devices", "0"], "--devices 0"),
    (["--backend", "jax", "--devices", "64"], "CPU cores"),
])
def test_bad_device_requests_are_one_line_errors(argv: list[str], message: str, tiny_names_dir: Path,
                                                 tmp_path: Path) -> None:
    done = fresh("-m", "shared.cli", "train", "--data", str(tiny_names_dir), "--steps", "2", "--no-progress",
                 *argv, "--out", str(tmp_path / "r"))
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and err[-1].startswith("seqbatch: error:") and message in err[-1], done.stderr


# ---- torch: DistributedDataParallel over 2 processes (gloo)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_two_process_ddp_step_is_the_single_process_step(dtype: str, tmp_path: Path) -> None:
    out = tmp_path / "ddp.json"
    done = fresh("-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "parity.data_parallel",
                 "--backend", "torch", "--dtype", dtype, "--json", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    found = json.loads(out.read_text())
    assert {"names sgd", "names adam", "imdb adam", "uneven sgd", "uneven adam", "lm stream sgd", "lm stream adam",
            "lm documents sgd", "lm documents adam"} <= {c["case"] for c in found}
    assert all(c["max_rel"] <= c["tol"] for c in found)
    assert any(c["max_abs"] > 0 for c in found)  # two processes really summed the gradients


# ---- jax: one program over 2 processes (jax.distributed, gloo CPU collectives)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_two_process_jax_step_is_the_single_process_step(dtype: str, tmp_path: Path) -> None:
    out = tmp_path / "jdp.json"
    # 4 steps, not the 20 of `python -m parity.data_parallel --procs 2` (run and reported in the README):
    # every step of two processes waits on gloo collectives that are slow on this 2-core machine.
    # float32 checks the classifier only: the language model's steps over gloo add minutes; float64 checks both.
    kinds = "classifier" if dtype == "float32" else "classifier,lm"
    done = fresh("-m", "parity.data_parallel", "--procs", "2", "--steps", "4", "--dtype", dtype, "--kinds", kinds,
                 "--json", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "devices over 2 processes (jax.distributed)" in done.stdout
    found = json.loads(out.read_text())
    assert {"names sgd", "names adam", "imdb adam", "uneven sgd", "uneven adam"} <= {c["case"] for c in found}
    assert ("lm stream adam" in {c["case"] for c in found}) == (dtype == "float64")
    assert all(c["max_rel"] <= c["tol"] for c in found)
    assert any(c["max_abs"] > 0 for c in found)  # two processes really summed the gradients


def test_jax_train_over_two_processes_gives_the_one_process_model(tiny_names_dir: Path, tmp_path: Path) -> None:
    flags = ["-m", "shared.cli", "train", "--backend", "jax", "--data", str(tiny_names_dir), *NAMES_FLAGS[2:]]
    results = {}
    for n in (1, 2):
        done = fresh(*flags, "--procs", str(n), "--out", str(tmp_path / f"j{n}"))
        assert done.returncode == 0, done.stderr
        printed = [line for line in done.stdout.splitlines() if line.startswith('{"backend"')]
        assert len(printed) == 1, done.stdout  # rank 0 alone prints the result
        results[n] = json.loads(printed[0])
    assert results[2]["test"]["top1"] == results[1]["test"]["top1"]
    assert results[2]["test"]["loss"] == pytest.approx(results[1]["test"]["loss"], rel=1e-5)
    assert json.loads((tmp_path / "j2" / "config.json").read_text())["train"]["devices"] == 2
    assert_resumes_alike(tmp_path / "j1", tmp_path / "j2")
    # The 2-process JAX checkpoint, evaluated by one torch process: the run's own test figure.
    done = fresh("-m", "shared.cli", "eval", "--checkpoint", str(tmp_path / "j2" / "model.safetensors"),
                 "--backend", "torch", "--data", str(tiny_names_dir))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["top1"] == results[2]["test"]["top1"]


def assert_resumes_alike(one: Path, two: Path) -> None:
    """The one-process run and the two-process run, each extended by --resume (the second over two
    processes again, each rank reading the saved state, the best weights included): still one model."""
    extended = []
    for run, again in ((one, []), (two, ["--procs", "2"])):
        done = fresh("-m", "shared.cli", "train", "--resume", str(run), "--steps", "18", "--no-progress", *again)
        assert done.returncode == 0, done.stderr
        printed = [line for line in done.stdout.splitlines() if line.startswith('{"backend"')]
        assert len(printed) == 1, done.stdout
        extended.append(json.loads(printed[0]))
        assert extended[-1]["steps"] == 18
    assert extended[1]["test"]["top1"] == extended[0]["test"]["top1"]
    assert extended[1]["test"]["loss"] == pytest.approx(extended[0]["test"]["loss"], rel=1e-5)


NAMES_FLAGS = ["--backend", "torch", "--hidden", "8", "--embed-dim", "4", "--optimizer", "adam", "--lr", "0.01",
               "--batch-size", "8", "--steps", "12", "--eval-every", "6", "--keep-best", "--no-progress"]


def test_train_with_two_processes_gives_the_single_process_model(tiny_names_dir: Path, tmp_path: Path) -> None:
    from safetensors import safe_open

    results = {}
    for n in (1, 2):
        done = fresh("-m", "shared.cli", "train", "--data", str(tiny_names_dir), *NAMES_FLAGS, "--procs", str(n),
                     "--out", str(tmp_path / f"p{n}"))
        assert done.returncode == 0, done.stderr
        results[n] = json.loads(done.stdout.strip().splitlines()[-1])
    assert results[2]["test"]["top1"] == results[1]["test"]["top1"]
    assert results[2]["test"]["loss"] == pytest.approx(results[1]["test"]["loss"], rel=1e-5)
    assert_resumes_alike(tmp_path / "p1", tmp_path / "p2")
    with safe_open(str(tmp_path / "p2" / "model.safetensors"), framework="numpy") as f:
        names = f.keys()
    assert names and not any(k.startswith("module.") for k in names)  # DDP's wrapper never reaches the file
    # The checkpoint of the 2-process run, evaluated by one jax process: the run's own test figure.
    done = fresh("-m", "shared.cli", "eval", "--checkpoint", str(tmp_path / "p2" / "model.safetensors"),
                 "--backend", "jax", "--data", str(tiny_names_dir))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["top1"] == results[2]["test"]["top1"]


@pytest.mark.parametrize("argv, message", [
    (["--procs", "0"], "--procs must be >= 1"),
    (["--procs", "2", "--backend", "jax", "--devices", "2"], "not with --devices"),
    (["--procs", "2", "--backend", "torch", "--class-weights", "inverse"], "not with --class-weights on torch"),
    (["--procs", "2", "--backend", "jax", "--batch-size", "7"], "not divisible by 2 processes"),
    (["--procs", "2", "--batch-size", "7"], "not divisible by 2 processes"),
])
def test_bad_process_requests_are_one_line_errors(argv: list[str], message: str, tiny_names_dir: Path,
                                                  tmp_path: Path) -> None:
    done = fresh("-m", "shared.cli", "train", "--data", str(tiny_names_dir), "--steps", "2", "--no-progress",
                 *argv, "--out", str(tmp_path / "r"))
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and err[-1].startswith("seqbatch: error:") and message in err[-1], done.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_a_killed_worker_stops_the_whole_run_with_an_error(backend: str, tiny_names_dir: Path,
                                                          tmp_path: Path) -> None:
    """SIGKILL one of two workers mid-run: the launcher ends (torchrun, or seqbatch's own JAX
    launcher, stops the other worker) with one error line, well within 60 s, instead of hanging."""
    import signal
    import time

    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["SEQBATCH_TORCH_DEVICE"] = "cpu"
    launcher = subprocess.Popen([sys.executable, "-m", "shared.cli", "train", "--data", str(tiny_names_dir),
                                 "--backend", backend, *NAMES_FLAGS[2:10], "--steps", "100000", "--eval-every", "50",
                                 "--no-progress", "--procs", "2", "--out", str(out)], cwd=ROOT, env=env,
                                stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "metrics.jsonl").exists() or len((out / "metrics.jsonl").read_text().splitlines()) < 20:
            assert time.monotonic() < deadline and launcher.poll() is None, "the run did not start"
            time.sleep(0.5)
        workers = [p for p in _children(launcher.pid)
                   if "shared.cli" in _cmdline(p) and "torch.distributed.run" not in _cmdline(p)]
        assert len(workers) == 2, workers
        os.kill(workers[-1], signal.SIGKILL)
        killed = time.monotonic()
        _, err = launcher.communicate(timeout=90)
        assert time.monotonic() - killed < 60
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 2
    assert err.strip().splitlines()[-1].startswith("seqbatch: error: the data-parallel run over 2 processes failed")


def _children(pid: int) -> list[int]:
    """Every descendant of `pid` (from /proc)."""
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                if ppid == parent:
                    found.append(int(entry.name))
                    frontier.append(int(entry.name))
    return found


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""
