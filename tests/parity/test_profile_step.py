"""`seqbatch profile-step`: the step's parts are found on both backends, and the categories are right."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from parity.profile_step import ROWS, jax_category, torch_category

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("op_name", "part"), [
    ("jit(step)/jvp(vmap(SequenceClassifier))/recurrence/while/body/closed_call/dot_general", "forward: recurrence"),
    ("jit(step)/transpose(jvp(vmap(CharLM)))/recurrence/while/body/add_any", "backward: recurrence"),
    ("jit(step)/jvp(vmap(CharLM))/head/dot_general", "forward: head"),
    ("jit(step)/transpose(jvp(vmap(CharLM)))/head/dot_general", "backward: head"),
    ("jit(step)/jvp(vmap(SequenceClassifier))/loss/reduce_max", "forward: loss"),
    ("jit(step)/jvp(vmap(SequenceClassifier))/input/gather", "forward: input"),
    ("jit(step)/optimizer/mul", "optimizer"),
    ("jit(step)/transpose(jvp(vmap(SequenceClassifier)))/mul", "other ops"),
])
def test_jax_ops_are_grouped_by_named_scope_and_direction(op_name: str, part: str) -> None:
    assert jax_category(op_name) == part


@pytest.mark.parametrize(("chain", "backward_of", "part"), [
    (["aten::mkldnn_rnn_layer", "aten::lstm"], None, "forward: recurrence"),
    (["aten::addmm", "aten::linear"], None, "forward: head"),
    (["aten::addmm", "aten::lstm"], None, "forward: recurrence"),  # the outermost named op decides
    (["aten::mm", "autograd::engine::evaluate_function: AddmmBackward0"], "recurrence", "backward: recurrence"),
    (["aten::mm", "autograd::engine::evaluate_function: AddmmBackward0"], "head", "backward: head"),
    (["aten::mm", "autograd::engine::evaluate_function: MulBackward0"], None, "other ops"),
    (["aten::add_", "Optimizer.step#Adam.step"], None, "optimizer"),
    (["aten::copy_"], None, "other ops"),
])
def test_torch_ops_are_grouped_by_their_nearest_named_ancestor(chain: list[str], backward_of: str | None,
                                                               part: str) -> None:
    assert torch_category(chain, backward_of) == part


def test_a_tiny_profile_finds_the_recurrence_forward_and_backward_on_both_backends(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # the command sets its own, before JAX starts
    done = subprocess.run([sys.executable, "-m", "shared.cli", "profile-step", "--tiny", "--steps", "2", "--out",
                           str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "profile.json").read_text())
    assert {(r["case"], r["backend"]) for r in report["results"]} == {
        (c, b) for c in ("names", "lm") for b in ("torch", "jax")}
    for r in report["results"]:
        ms = r["ms"]
        assert set(ms) == {*ROWS, "step"} and ms["step"] > 0
        where = f"{r['case']} {r['backend']}: {ms}"
        assert ms["forward: recurrence"] > 0 and ms["backward: recurrence"] > 0, where
        assert ms["optimizer"] > 0, where
    assert "## language model" in (tmp_path / "profile.md").read_text()
