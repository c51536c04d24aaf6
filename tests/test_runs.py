"""Crash-safe runs (shared/runs.py, shared/loop.py, shared/guard.py) through the library, on both backends:
exact resume, atomic saves under fault injection, the divergence guard, signals, the lock, run folders."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from parity.resume import TIMING_KEYS as TIMING
from shared import runs
from shared.backend import Backend
from shared.config import ModelConfig, TrainConfig
from shared.dataset import Dataset, names_dataset
from shared.errors import SeqbatchError
from shared.guard import Diverged, Interrupted
from shared.kinds.lm import LMConfig
from shared.lm_data import LMDataConfig, load_lm_data
from shared.lm_training import fit_lm
from shared.runs import RunFolder, load_state
from shared.training import fit


@pytest.fixture(scope="module")
def names() -> Dataset:
    return names_dataset(None, seed=0)


def _cfg(names: Dataset, embed: int | None = None) -> ModelConfig:
    return ModelConfig(vocab_size=len(names.vocab), num_classes=names.num_classes, cell="lstm", num_layers=2,
                       hidden_size=12, embed_dim=embed, dropout=0.3)


def _metrics(out: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in (out / "metrics.jsonl").open()]


def _weights(out: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(out / "model.safetensors"))


def _same_run(a: Path, b: Path, *, extended_at: int | None = None) -> None:
    """Bit-identical weights; metrics identical line for line apart from timings (and, for a run
    extended after it finished at `extended_at`, the validation it made at that old end)."""
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    assert all(np.array_equal(wa[k], wb[k]) for k in wa), "weights differ"
    mb = [r for r in _metrics(b) if not (r.get("split") == "val" and r["step"] == extended_at)]
    assert _metrics(a) == mb


def test_extending_a_finished_run_is_bit_identical_to_one_long_run(backend: Backend, names: Dataset,
                                                                   tmp_path: Path) -> None:
    """The resume path end to end: optimizer state, dropout RNG, sampler replay, keep-best, metrics."""
    cfg = _cfg(names, embed=6)
    train = TrainConfig(optimizer="adam", lr=0.01, batch_size=16, steps=24, eval_every=8, clip_norm=1.0, seed=3)
    kw: dict[str, Any] = {"progress": False, "log": lambda m: None, "checkpoint_every": 5}
    fit(backend, cfg, train, names, tmp_path / "long", **kw)
    fit(backend, cfg, dataclasses.replace(train, steps=13), names, tmp_path / "cut", **kw)
    fit(backend, cfg, train, names, tmp_path / "cut", mode="resume", **kw)
    _same_run(tmp_path / "long", tmp_path / "cut", extended_at=13)
    config = json.loads((tmp_path / "cut" / "config.json").read_text())
    assert config["resumes"][0]["step"] == 13 and config["train"]["steps"] == 24


def test_an_interrupted_run_saves_resumes_and_ends_the_same(backend: Backend, names: Dataset, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM at step 7 (between saves): the state is saved at 7 and the resumed run matches."""
    cfg = _cfg(names)
    train = TrainConfig(optimizer="sgd", lr=0.1, batch_size=16, steps=20, eval_every=6, seed=1)
    kw: dict[str, Any] = {"progress": False, "log": lambda m: None, "checkpoint_every": 5, "keep_best": True}
    fit(backend, cfg, train, names, tmp_path / "ref", **kw)
    real_step = backend.train_step

    def step_then_signal(state: Any, batch: Any) -> Any:
        out = real_step(state, batch)
        if out[0].step == 7:
            os.kill(os.getpid(), signal.SIGTERM)  # the loop's handler records it; it stops after this step
        return out

    monkeypatch.setattr(backend, "train_step", step_then_signal)
    with pytest.raises(Interrupted) as caught:
        fit(backend, cfg, train, names, tmp_path / "cut", **kw)
    assert caught.value.step == 7 and caught.value.exit_code == 143
    assert "--resume" in str(caught.value)
    monkeypatch.setattr(backend, "train_step", real_step)
    folder = RunFolder(tmp_path / "cut", "resume")
    assert load_state(folder, cfg)[3]["step"] == 7
    folder.close()
    fit(backend, cfg, train, names, tmp_path / "cut", mode="resume", **kw)
    _same_run(tmp_path / "ref", tmp_path / "cut")


def test_an_imdb_shaped_run_resumes_exactly(backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Words, an embedding, shuffled epochs with length bucketing, clipping, keep-best, epoch records."""
    from shared.dataset import imdb_dataset
    from shared.text import TextConfig

    data = imdb_dataset(None, TextConfig(max_len=40), seed=0, max_train=300, max_test=100)
    cfg = ModelConfig(vocab_size=len(data.vocab), num_classes=2, cell="gru", num_layers=2, bidirectional=True,
                      hidden_size=8, embed_dim=8, dropout=0.3)
    train = TrainConfig(optimizer="adam", lr=3e-3, batch_size=16, steps=None, epochs=2, clip_norm=3.0, seed=4,
                        sampler="epoch", eval_every=9)
    kw: dict[str, Any] = {"progress": False, "log": lambda m: None, "keep_best": True, "bucket_chunk": 5,
                          "checkpoint_every": 4, "probe_size": 50}
    fit(backend, cfg, train, data, tmp_path / "ref", **kw)
    real_step = backend.train_step

    def step_then_signal(state: Any, batch: Any) -> Any:
        out = real_step(state, batch)
        if out[0].step == 23:  # mid-way through the second epoch, between saves
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(backend, "train_step", step_then_signal)
    with pytest.raises(Interrupted):
        fit(backend, cfg, train, data, tmp_path / "cut", **kw)
    monkeypatch.setattr(backend, "train_step", real_step)
    fit(backend, cfg, train, data, tmp_path / "cut", mode="resume", **kw)
    _same_run(tmp_path / "ref", tmp_path / "cut")
    assert sum(r.get("split") == "epoch" for r in _metrics(tmp_path / "cut")) == 2


def test_the_language_models_carried_state_survives_a_resume(backend: Backend, tmp_path: Path) -> None:
    data = load_lm_data(None, LMDataConfig(seed=0))
    cfg = LMConfig(vocab_size=len(data.vocab), cell="gru", num_layers=2, hidden_size=10, embed_dim=6, dropout=0.3)
    train = TrainConfig(optimizer="adam", lr=3e-3, batch_size=4, steps=12, eval_every=6, clip_norm=5.0)
    kw: dict[str, Any] = {"progress": False, "log": lambda m: None, "seq_length": 16, "checkpoint_every": 5,
                          "keep_best": False}
    fit_lm(backend, cfg, train, data, tmp_path / "long", **kw)
    fit_lm(backend, cfg, dataclasses.replace(train, steps=7), data, tmp_path / "cut", **kw)
    folder = RunFolder(tmp_path / "cut", "resume")
    arrays = load_state(folder, cfg)[1]
    folder.close()
    assert {"carry/0"} <= arrays.keys() and arrays["carry/0"].shape == (2, 4, 10)
    assert np.abs(arrays["carry/0"]).max() > 0  # a real state, not zeros
    fit_lm(backend, cfg, train, data, tmp_path / "cut", mode="resume", **kw)
    _same_run(tmp_path / "long", tmp_path / "cut", extended_at=7)


def test_a_save_killed_before_its_rename_keeps_the_previous_state(backend: Backend, names: Dataset,
                                                                  tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection: the third save's file is truncated to half and the process 'dies' before the rename."""
    cfg = _cfg(names)
    train = TrainConfig(optimizer="sgd", lr=0.1, batch_size=16, steps=20, eval_every=100, seed=2)
    saves = {"n": 0}

    def die_mid_save(tmp: Path) -> None:
        if tmp.name.startswith(".run.safetensors"):
            saves["n"] += 1
            if saves["n"] == 3:  # saves at steps 0, 4, then 8 dies
                with open(tmp, "r+b") as f:
                    f.truncate(tmp.stat().st_size // 2)
                raise KeyboardInterrupt("killed during save")

    monkeypatch.setattr(runs, "FAULT_BEFORE_REPLACE", die_mid_save)
    with pytest.raises(KeyboardInterrupt):
        fit(backend, cfg, train, names, tmp_path / "cut", progress=False, log=lambda m: None, checkpoint_every=4)
    monkeypatch.setattr(runs, "FAULT_BEFORE_REPLACE", None)
    stale = tmp_path / "cut" / "state" / ".run.safetensors.x1y2.tmp"  # what a real kill leaves behind
    stale.write_bytes(b"torn")
    folder = RunFolder(tmp_path / "cut", "resume")
    assert not stale.exists()
    assert load_state(folder, cfg)[3]["step"] == 4  # the previous good state, intact
    folder.close()
    fit(backend, cfg, train, names, tmp_path / "cut", mode="resume", progress=False, log=lambda m: None,
        checkpoint_every=4)
    fit(backend, cfg, train, names, tmp_path / "ref", progress=False, log=lambda m: None, checkpoint_every=4)
    _same_run(tmp_path / "ref", tmp_path / "cut")


def test_a_diverging_run_stops_at_the_bad_step_and_keeps_the_last_good_state(backend: Backend, names: Dataset,
                                                                            tmp_path: Path) -> None:
    from shared import checkpoint

    cfg = _cfg(names)
    train = TrainConfig(optimizer="sgd", lr=1e6, batch_size=32, steps=50, eval_every=20)
    with pytest.raises(Diverged) as caught:
        fit(backend, cfg, train, names, tmp_path / "run", progress=False, log=lambda m: None)
    bad = caught.value.step
    assert 1 <= bad <= 5 and caught.value.good_step == bad - 1
    assert f"at step {bad}" in str(caught.value) and "last good state: step" in str(caught.value)
    saved = checkpoint.load(tmp_path / "run" / "state" / "model.safetensors")
    assert all(np.isfinite(v).all() for v in saved.params.values())
    steps = [r["step"] for r in _metrics(tmp_path / "run") if "split" not in r]
    assert steps == list(range(1, bad))  # the bad step and the frozen ones after it are not recorded
    folder = RunFolder(tmp_path / "run", "resume")
    assert load_state(folder, cfg)[3]["step"] == bad - 1
    folder.close()


def test_on_nan_skip_drops_bad_batches_and_counts_them(backend: Backend, names: Dataset, tmp_path: Path) -> None:
    cfg = _cfg(names)
    start = backend.to_params(backend.init(cfg, 0))
    train = TrainConfig(optimizer="sgd", lr=1e6, batch_size=32, steps=12, eval_every=6, on_nan="skip")
    result = fit(backend, cfg, train, names, tmp_path / "run", progress=False, log=lambda m: None)
    skipped = [r for r in result.history if r.get("skipped")]
    assert skipped and result.history[-1]["skipped_steps"] == len(skipped)
    assert all(np.isfinite(v).all() for v in backend.to_params(result.model).values())
    assert any(not np.array_equal(start[k], v) for k, v in backend.to_params(result.model).items())
    for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


def test_the_guard_changes_nothing_while_steps_are_good(backend: Backend, names: Dataset) -> None:
    cfg = _cfg(names)
    batch = names.train.batch(np.arange(16))
    runs_ = []
    for max_loss in (None, 100.0):
        state = backend.train_state(backend.init(cfg, 0), TrainConfig(lr=0.1, steps=3, max_loss=max_loss))
        for _ in range(3):
            state, metrics = backend.train_step(state, batch)
            assert bool(metrics["ok"])
        runs_.append(backend.to_params(backend.model_of(state)))
    assert all(np.array_equal(runs_[0][k], runs_[1][k]) for k in runs_[0])


# ---- the run folder


def test_a_folder_that_holds_a_run_is_refused_unless_overwrite(names: Dataset, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text("{}\n")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SeqbatchError, match=r"already holds a run.*--overwrite"):
        RunFolder(out, "new")
    messages: list[str] = []
    RunFolder(out, "overwrite", log=messages.append).close()
    assert not (out / "metrics.jsonl").exists() and (out / "notes.txt").read_text() == "mine"
    assert "metrics.jsonl" in messages[0]
    with pytest.raises(SeqbatchError, match="no saved state"):
        RunFolder(out, "resume")


def test_the_lock_refuses_a_second_writer_and_takes_over_a_dead_ones(tmp_path: Path) -> None:
    first = RunFolder(tmp_path / "run", "new")
    with pytest.raises(SeqbatchError, match=f"in use by process {os.getpid()}"):
        RunFolder(tmp_path / "run", "new")
    first.close()
    assert not (tmp_path / "run" / runs.LOCK).exists()
    dead = 2**22 + 12345  # above the default pid_max: no such process
    (tmp_path / "run" / runs.LOCK).write_text(json.dumps({"pid": dead, "host": socket.gethostname()}))
    with pytest.warns(UserWarning, match="no longer running"):
        RunFolder(tmp_path / "run", "new").close()
    (tmp_path / "run" / runs.LOCK).write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(SeqbatchError, match="host elsewhere"):
        RunFolder(tmp_path / "run", "new")


def test_metrics_are_strict_json() -> None:
    assert runs.dumps({"a": float("nan"), "b": [float("inf"), np.float32(1.5)], "c": np.int64(3)}) == \
        '{"a": null, "b": [null, 1.5], "c": 3}'


@pytest.mark.parametrize("damage", ["truncate", "rng", "optim"])
def test_a_damaged_run_state_is_a_one_line_error(backend: Backend, names: Dataset, tmp_path: Path, damage: str) -> None:
    """Truncated at many offsets, or well-formed with a wrong RNG or optimizer entry: SeqbatchError naming the file."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    cfg = _cfg(names)
    train = TrainConfig(optimizer="adam", lr=0.01, batch_size=8, steps=3, eval_every=3)
    fit(backend, cfg, train, names, tmp_path / "run", progress=False, log=lambda m: None)
    state = tmp_path / "run" / "state" / "run.safetensors"
    good = state.read_bytes()
    if damage == "truncate":
        cuts = sorted(set(range(0, len(good), max(1, len(good) // 60))) | {8, len(good) - 1})
    else:
        with safe_open(str(state), framework="numpy") as f:
            meta = f.metadata()
        tensors = load_file(str(state))
        key = next(k for k in tensors if k.startswith(f"{damage}/"))
        tensors[key] = np.zeros(3, tensors[key].dtype)
        save_file(tensors, str(state), metadata=meta)
        cuts = [len(state.read_bytes())]
        good = state.read_bytes()
    for cut in cuts:
        state.write_bytes(good[:cut])
        with pytest.raises(SeqbatchError, match=str(state)):
            fit(backend, cfg, train, names, tmp_path / "run", mode="resume", progress=False, log=lambda m: None)
        assert not (tmp_path / "run" / runs.LOCK).exists()
