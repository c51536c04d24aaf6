"""The harness itself: it catches a real difference and names it, judges NaN and shape mismatches as
failures, and its report and sub-command say what failed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from parity import harness as H
from parity.harness_cli import Report, pattern_batches
from shared.backend import get_backend
from shared.cli import main
from shared.config import ModelConfig

CFG = ModelConfig(20, 5, cell="gru", num_layers=1, bidirectional=False, hidden_size=12)  # a grid config


def test_a_perturbed_parameter_is_caught_and_named() -> None:
    tb, jb = get_backend("torch"), get_backend("jax")
    tm = tb.init(CFG, 0)
    params = tb.to_params(tm)
    params["head.bias"][0] += 1e-3  # only the JAX copy moves (one class: a shift of all cancels in softmax)
    batches = {p: b for p, b in pattern_batches(CFG).items() if p in ("equal", "ragged", "single")}
    found = H.compare_outputs(CFG, tm, jb.from_params(CFG, params), batches, "perturbed", fast=True)
    failed = {(c.quantity, c.name) for c in found if not c.passed}
    assert ("logits", "") in failed and ("losses", "") in failed
    assert ("grad", "head.bias") in failed


def test_compare_measures_relative_to_torch_and_fails_on_nan_or_shape() -> None:
    c = H.compare("grad", "case", "w", np.array([2.0, -4.0]), np.array([2.0, -4.004]), 1e-3, "rel")
    assert c.max_abs == pytest.approx(0.004) and c.max_rel == pytest.approx(0.001) and c.passed
    step = H.compare("traj_loss", "sgd", "", [1.0, 0.01], [1.0, 0.0101], 1e-4, "rel", elementwise=True)
    assert step.max_rel == pytest.approx(0.01) and not step.passed  # each step against its own loss
    assert H.compare("grad", "c", "zero", np.zeros(3), np.zeros(3), 0.0, "rel").passed
    assert not H.compare("logits", "c", "", [np.nan], [np.nan], 1.0, "abs").passed
    assert not H.compare("logits", "c", "", np.zeros((2, 3)), np.zeros((3, 2)), 1.0, "abs").passed


def test_report_serialises_failures_and_non_finite_values() -> None:
    bad = H.Comparison("grad", "ragged torch->jax", "rnn.weight_hh_l0", float("nan"), float("nan"), 1e-4, "rel")
    good = H.Comparison("logits", "ragged torch->jax", "", 1e-8, 1e-7, 1e-5, "abs")
    report = Report("cpu", "float32", {"torch": "x"}, {}, [H.ConfigResult(CFG, [good, bad])])
    assert not report.passed
    assert [c.name for _, c in report.failures()] == ["rnn.weight_hh_l0"]
    doc = json.loads(report.to_json(), parse_constant=lambda s: pytest.fail(f"non-standard JSON constant {s}"))
    assert doc["passed"] is False and doc["configs"][0]["comparisons"][1]["max_abs"] == "nan"
    assert "FAIL" in report.table() and "rnn.weight_hh_l0" in report.table()


def test_cli_writes_a_json_report_and_exits_zero(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "parity.json"
    code = main(["parity", "--cell", "gru", "--steps", "3", "--no-contract", "--no-progress", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert doc["passed"] and doc["dtype"] == "float32" and doc["device"] == "cpu"
    assert {"torch", "jax", "flax", "optax", "numpy", "platform"} <= doc["environment"].keys()
    assert doc["configs"][0]["trajectory_steps"] == 3
    assert {c["quantity"] for c in doc["configs"][0]["comparisons"]} >= {"logits", "grad", "traj_loss", "transfer"}
    assert "gru-L1-uni-onehot-float32" in capsys.readouterr().out


def test_cli_exits_one_and_names_the_failure(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(H, "OUTPUT_ABS_TOL", {"float32": -1.0, "float64": -1.0})  # nothing can pass
    code = main(["parity", "--cell", "gru", "--steps", "0", "--no-contract", "--no-progress",
                 "--json", str(tmp_path / "p.json")])
    assert code == 1
    assert "FAIL gru-L1-uni-onehot-float32: logits" in capsys.readouterr().err


def test_user_errors_are_seqbatch_errors(capsys: Any) -> None:
    assert main(["parity", "--steps", "-1"]) == 2
    assert "--steps" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["parity", "--embed-dim", "wide"])
