"""`eval`, `predict` and `generate` run the backend their --backend names, for a classifier and for a
language model: each backend's model functions record their calls, and only the named one may be
called (a command that quietly used torch would still print plausible numbers)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared.cli import run_captured as cli

BACKENDS = ("torch", "jax")




@pytest.fixture(autouse=True)
def _cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBATCH_TORCH_DEVICE", "cpu")


@pytest.fixture(scope="module")
def names_ckpt(tiny_names_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("names") / "run"
    code, _, err = cli("train", "--data", str(tiny_names_dir), "--cell", "gru", "--hidden", "6", "--embed-dim", "4",
                       "--steps", "2", "--batch-size", "8", "--eval-every", "2", "--out", str(out), "--no-progress")
    assert code == 0, err
    return out / "model.safetensors"


@pytest.fixture(scope="module")
def text_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from shared.lm_data import default_corpus

    path = tmp_path_factory.mktemp("text") / "corpus.txt"
    path.write_text(default_corpus()[0][:8_000])
    return path


@pytest.fixture(scope="module")
def lm_ckpt(text_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lm") / "run"
    code, _, err = cli("train", "--task", "charlm", "--data", str(text_file), "--hidden", "8", "--embed-dim", "4",
                       "--layers", "1", "--batch-size", "4", "--seq-length", "16", "--steps", "2", "--eval-every", "2",
                       "--out", str(out), "--no-progress")
    assert code == 0, err
    return out / "model.safetensors"


def _recording(calls: list[str], name: str, real: Callable[..., Any]) -> Callable[..., Any]:
    def record(*args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return real(*args, **kwargs)

    return record


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The backends (by name) whose classifier or LM `logits`/`losses` ran during the test."""
    import jax_impl
    import reference_torch
    from jax_impl.models import lm as jax_lm
    from reference_torch.models import lm as torch_lm

    found: list[str] = []
    for name, package, lm in (("torch", reference_torch, torch_lm), ("jax", jax_impl, jax_lm)):
        for module, functions in ((package, ("logits", "losses")), (lm, ("logits", "losses"))):
            for fn in functions:
                monkeypatch.setattr(module, fn, _recording(found, name, getattr(module, fn)))
    return found


@pytest.mark.parametrize("backend", BACKENDS)
def test_eval_of_a_classifier_runs_the_named_backend(names_ckpt: Path, tiny_names_dir: Path, calls: list[str],
                                                      backend: str) -> None:
    code, out, err = cli("eval", "--checkpoint", str(names_ckpt), "--data", str(tiny_names_dir), "--backend", backend)
    assert code == 0, err
    assert json.loads(out)["backend"] == backend
    assert calls and set(calls) == {backend}, f"--backend {backend} ran {sorted(set(calls))}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_runs_the_named_backend(names_ckpt: Path, calls: list[str], backend: str) -> None:
    code, out, err = cli("predict", "--checkpoint", str(names_ckpt), "--backend", backend, "--json", "Tanaka")
    assert code == 0, err
    assert json.loads(out)["name"] == "Tanaka"
    assert calls and set(calls) == {backend}, f"--backend {backend} ran {sorted(set(calls))}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_eval_of_a_language_model_runs_the_named_backend(lm_ckpt: Path, text_file: Path, calls: list[str],
                                                          backend: str) -> None:
    code, out, err = cli("eval", "--checkpoint", str(lm_ckpt), "--data", str(text_file), "--backend", backend,
                         "--split", "val")
    assert code == 0, err
    assert json.loads(out)["backend"] == backend
    assert calls and set(calls) == {backend}, f"--backend {backend} ran {sorted(set(calls))}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_generate_runs_the_named_backend(lm_ckpt: Path, calls: list[str], backend: str) -> None:
    code, out, err = cli("generate", "--checkpoint", str(lm_ckpt), "--backend", backend, "--prime", "The",
                         "--length", "5", "--top-k", "1")
    assert code == 0, err
    assert out.startswith("The")
    assert calls and set(calls) == {backend}, f"--backend {backend} ran {sorted(set(calls))}"
