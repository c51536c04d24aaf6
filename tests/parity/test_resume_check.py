"""The acceptance check for crash-safe training: `seqbatch train` killed with SIGKILL at three random
steps and resumed each time ends bit-identical to the same run left alone (parity/resume.py), for
names (one-hot and embedding input, dropout 0.3) and the language model's carried state, on both
backends. Each case starts five processes; the whole file takes a few minutes on a 2-core CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from parity.resume import CASES, resume_check


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_run_killed_three_times_and_resumed_equals_the_uninterrupted_run(case: str, backend: str,
                                                                            tmp_path: Path) -> None:
    report = resume_check(CASES[case], backend, tmp_path, kills=3, seed=sorted(CASES).index(case))
    assert all(s is not None for s in report["saved_step_at_each_kill"]), report  # three real kills
    assert report["max_abs_diff"] == 0.0, report
    assert report["metrics_identical"], report
