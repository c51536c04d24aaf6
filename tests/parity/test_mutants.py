"""The mutant harness (parity/mutants): every catalog entry still applies to the code it was written
for, and a mutant is patched into a scratch copy, judged by pytest's exit status and undone, never
touching the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from parity.mutants import Mutant
from parity.mutants import runner as R
from parity.mutants.__main__ import REPO, collect

CALC = "def add(a, b):\n    return a + b\n"
TEST = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"


def test_every_mutant_applies_once_and_names_tests_that_exist() -> None:
    mutants = collect()
    assert len({m.name for m in mutants}) == len(mutants) >= 18
    for m in mutants:
        assert R.occurrences(REPO, m) == 1, f"{m.name}: `old` must occur exactly once in {m.path} (stale?)"
        assert m.old != m.new, m.name
        paths = [t for i, t in enumerate(m.tests) if not t.startswith("-") and (i == 0 or m.tests[i - 1] != "-k")]
        assert paths, f"{m.name}: no test file named"
        for t in paths:
            assert (REPO / t.split("::")[0]).is_file(), f"{m.name}: {t} does not exist"


@pytest.fixture
def scratch(tmp_path: Path) -> tuple[Path, dict[str, str], Path]:
    repo = tmp_path / "checkout"
    repo.mkdir()
    (repo / "calc.py").write_text(CALC)
    (repo / "test_calc.py").write_text(TEST)
    copy = R.make_scratch(repo, ["calc.py", "test_calc.py", "gone.py"], tmp_path / "w0" / "repo")
    return copy, R.scratch_env(copy, tmp_path / "w0" / "pytest-tmp"), repo


def judge(copy: Path, env: dict[str, str], m: Mutant, timeout: float = 120) -> R.Outcome:
    original = R.apply(copy, m)
    assert original is not None
    try:
        return R.run_pytest(copy, env, m.tests, timeout)
    finally:
        R.restore(copy, m, original)


def test_a_mutant_is_killed_or_survives_and_is_undone(scratch: tuple[Path, dict[str, str], Path]) -> None:
    copy, env, repo = scratch
    killed = judge(copy, env, Mutant("subtracts", "add subtracts", "calc.py", "a + b", "a - b", ("test_calc.py",)))
    assert R.verdict(killed) == R.KILLED and killed.first_failure == "FAILED test_calc.py::test_add"
    same = judge(copy, env, Mutant("commutes", "add commutes", "calc.py", "a + b", "b + a", ("test_calc.py",)))
    assert R.verdict(same) == R.SURVIVED
    assert (copy / "calc.py").read_text() == CALC == (repo / "calc.py").read_text()
    assert R.apply(copy, Mutant("stale", "gone", "calc.py", "a * b", "a / b", ("test_calc.py",))) is None
    assert not (copy / "gone.py").exists()  # listed by git but deleted: skipped


def test_a_run_past_its_timeout_is_killed_and_reported(scratch: tuple[Path, dict[str, str], Path]) -> None:
    copy, env, _ = scratch
    slow = Mutant("hangs", "add sleeps", "calc.py", "    return a + b",
                  "    import time\n    time.sleep(60)\n    return a + b", ("test_calc.py",))
    outcome = judge(copy, env, slow, timeout=3)
    assert outcome.code is None and R.verdict(outcome) == R.TIMEOUT and outcome.seconds < 30


@pytest.mark.parametrize("code, tail, result", [
    (0, "", R.SURVIVED), (1, "", R.KILLED), (2, "E   ImportError: cannot import name 'x'", R.IMPORT_ERROR),
    (2, "Interrupted: 1 error during collection", "interrupted/collection error (exit 2)"),
    (4, "", "pytest usage error (exit 4)"), (5, "", "no tests collected (exit 5)"), (None, "", R.TIMEOUT),
])
def test_pytest_exit_status_to_verdict(code: int | None, tail: str, result: str) -> None:
    assert R.verdict(R.Outcome(code, 1.0, "", tail)) == result


def test_the_two_bugs_that_once_passed_every_test_are_killed(tmp_path: Path) -> None:
    """The fast subset CI runs for real: the JAX backend never applying dropout, and `seqbatch eval`
    ignoring --backend (both passed the whole suite before issue 12)."""
    import json

    from parity.mutants.__main__ import main

    code = main(["--only", "jax-dropout-off,eval-ignores-backend", "--out", str(tmp_path), "--no-progress"])
    report = json.loads((tmp_path / "mutants.json").read_text())
    assert code == 0, report["mutants"]
    assert report["killed"] == report["total"] == 2
