"""`seqbatch train|eval|predict` end to end on a tiny names folder, and the errors users can cause."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from shared.cli import main
from shared.layout import parameter_shapes
from shared.names import load_names
from shared.splits import stratified_split

NamesDir = Callable[..., Path]  # the make_names_dir fixture (tests/conftest.py)
Capsys = pytest.CaptureFixture[str]
Run = tuple[Path, str]  # the run folder, and what `train` printed
PNG = b"\x89PNG\r\n\x1a\n"
STEPS = 6


@pytest.fixture(autouse=True)
def _cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBATCH_TORCH_DEVICE", "cpu")


@pytest.fixture(scope="module")
def run(tiny_names_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One tiny torch training run shared by the tests below: (run folder, its stdout)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["train", "--data", str(tiny_names_dir), "--backend", "torch", "--cell", "gru", "--hidden", "8",
                     "--embed-dim", "4", "--steps", str(STEPS), "--batch-size", "8", "--eval-every", "3",
                     "--optimizer", "adam", "--lr", "0.01", "--out", str(out), "--no-progress"])
    assert code == 0, stderr.getvalue()
    return out, stdout.getvalue()


def test_train_writes_the_run_folder(run: Run) -> None:
    out, stdout = run
    for name in ("config.json", "metrics.jsonl", "model.safetensors"):
        assert (out / name).is_file(), name
    assert (out / "loss.png").read_bytes().startswith(PNG)
    config = json.loads((out / "config.json").read_text())
    assert config["backend"] == "torch" and config["model"]["cell"] == "gru" and config["train"]["steps"] == STEPS
    assert config["labels"] == ["Greek", "Japanese", "Polish"]
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["steps"] == STEPS and 0 <= summary["test"]["top1"] <= 1


def split_size(data: Path, split: str = "test") -> int:
    return len(getattr(stratified_split(load_names(data), seed=0), split))


def test_metrics_have_a_loss_per_step_and_end_with_the_test_record(run: Run, tiny_names_dir: Path) -> None:
    records = [json.loads(line) for line in (run[0] / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "split" not in r]
    assert [r["step"] for r in train] == list(range(1, STEPS + 1))
    assert all(np.isfinite(r["loss"]) and r["loss"] > 0 for r in train)
    assert [r["step"] for r in records if r.get("split") == "val"] == [3, 6]
    last = records[-1]
    assert last["split"] == "test" and last["n"] == split_size(tiny_names_dir)
    assert {"top1", "top2", "balanced_accuracy"} <= last.keys()


def test_the_checkpoint_holds_the_model_vocab_and_labels(run: Run) -> None:
    from shared import checkpoint

    ckpt = checkpoint.load(run[0] / "model.safetensors")
    assert ckpt.labels == ["Greek", "Japanese", "Polish"]
    assert ckpt.vocab is not None and "ń" in ckpt.vocab.tokens  # characters fitted on the train split
    assert ckpt.params.keys() == parameter_shapes(ckpt.config).keys()


def eval_json(capsys: Capsys, args: list[str]) -> dict:
    assert main(["eval", *args]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, lines  # exactly one JSON object, for scripts to parse
    return json.loads(lines[0])


def test_eval_prints_one_json_object_and_writes_the_confusion_plot(
    run: Run, tiny_names_dir: Path, tmp_path: Path, capsys: Capsys
) -> None:
    png = tmp_path / "confusion.png"
    report = eval_json(capsys, ["--checkpoint", str(run[0] / "model.safetensors"), "--data", str(tiny_names_dir),
                                "--confusion", str(png)])
    assert {"top1", "top2", "balanced_accuracy", "n"} <= report.keys()
    assert report["n"] == split_size(tiny_names_dir)
    assert 0 <= report["top1"] <= report["top2"] <= 1
    assert png.read_bytes().startswith(PNG)


def test_eval_gives_the_run_s_own_test_figure(run: Run, tiny_names_dir: Path, capsys: Capsys) -> None:
    report = eval_json(capsys, ["--checkpoint", str(run[0] / "model.safetensors"), "--data", str(tiny_names_dir)])
    final = json.loads((run[0] / "metrics.jsonl").read_text().splitlines()[-1])
    assert report["top1"] == pytest.approx(final["top1"])  # same seed from config.json, so the same test split


def test_both_backends_evaluate_a_checkpoint_alike(run: Run, tiny_names_dir: Path, capsys: Capsys) -> None:
    args = ["--checkpoint", str(run[0] / "model.safetensors"), "--data", str(tiny_names_dir), "--split", "val"]
    torch_report = eval_json(capsys, [*args, "--backend", "torch"])
    jax_report = eval_json(capsys, [*args, "--backend", "jax"])
    assert torch_report["top1"] == jax_report["top1"]
    assert torch_report["balanced_accuracy"] == jax_report["balanced_accuracy"]
    assert jax_report["loss"] == pytest.approx(torch_report["loss"], abs=1e-5)


def test_float64_eval_takes_float32_rounding_out_of_the_cross_backend_logits(
    run: Run, tiny_names_dir: Path, tmp_path: Path, capsys: Capsys
) -> None:
    logits = {}
    for backend in ("torch", "jax"):
        for dtype in ("float32", "float64"):
            out = tmp_path / f"{backend}-{dtype}.npy"
            eval_json(capsys, ["--checkpoint", str(run[0] / "model.safetensors"), "--data", str(tiny_names_dir),
                               "--backend", backend, "--dtype", dtype, "--logits-out", str(out)])
            logits[backend, dtype] = np.load(out)
    assert logits["torch", "float64"].dtype == np.float64 and logits["jax", "float32"].dtype == np.float32
    np.testing.assert_allclose(logits["jax", "float64"], logits["torch", "float64"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(logits["jax", "float32"], logits["torch", "float32"], rtol=0, atol=1e-5)
    # the float64 run is the same model: the float32 logits are its rounding, no more
    np.testing.assert_allclose(logits["torch", "float32"], logits["torch", "float64"], rtol=0, atol=1e-5)


def test_torch_kernel_flag_trains_the_same_model_faster_kernel(
    run: Run, tiny_names_dir: Path, tmp_path: Path, capsys: Capsys
) -> None:
    out = tmp_path / "padded"
    args = ["train", "--data", str(tiny_names_dir), "--backend", "torch", "--cell", "gru", "--hidden", "8",
            "--embed-dim", "4", "--steps", str(STEPS), "--batch-size", "8", "--eval-every", "3", "--optimizer",
            "adam", "--lr", "0.01", "--no-progress"]
    assert main([*args, "--torch-kernel", "padded", "--out", str(out)]) == 0
    capsys.readouterr()
    assert json.loads((out / "config.json").read_text())["torch_kernel"] == "padded"
    assert json.loads((run[0] / "config.json").read_text())["torch_kernel"] == "packed"
    # same data, init and batches: the packed run's losses to float32 rounding
    losses = [[r["loss"] for r in map(json.loads, (d / "metrics.jsonl").read_text().splitlines()) if "step" in r
               and "loss" in r and "top1" not in r] for d in (out, run[0])]
    assert len(losses[0]) == STEPS
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)
    fails(capsys, [*args, "--backend", "jax", "--torch-kernel", "padded", "--out", str(tmp_path / "j")],
          "--torch-kernel padded applies to --backend torch, not jax")


def test_predict_refuses_a_top_count_outside_the_labels(run: Run, capsys: Capsys) -> None:
    for top in ("0", "4"):  # the tiny set has 3 labels
        fails(capsys, ["predict", "--checkpoint", str(run[0] / "model.safetensors"), "--top", top, "Tanaka"],
              f"--top {top}", "give 1 to 3")


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_predict_shows_the_top_three_labels(run: Run, backend: str, capsys: Capsys) -> None:
    code = main(["predict", "--checkpoint", str(run[0] / "model.safetensors"), "--backend", backend, "--json",
                 "Nakamura", "Kamiński"])
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["name"] for r in lines] == ["Nakamura", "Kamiński"]
    for r in lines:
        labels, probs = zip(*r["top"], strict=True)
        assert sorted(labels) == ["Greek", "Japanese", "Polish"]
        assert list(probs) == sorted(probs, reverse=True)
        assert sum(probs) <= 1 + 1e-3 and min(probs) > 0


def test_predict_in_text_form(run: Run, capsys: Capsys) -> None:
    assert main(["predict", "--checkpoint", str(run[0] / "model.safetensors"), "--top", "2", "Tanaka"]) == 0
    (line,) = capsys.readouterr().out.strip().splitlines()
    assert line.startswith("Tanaka: ") and line.count("%") == 2


def test_predict_warns_about_characters_it_never_saw(run: Run, capsys: Capsys) -> None:
    with pytest.warns(UserWarning, match=r"'Tanakaω': 1 character\(s\) not in the vocabulary"):
        assert main(["predict", "--checkpoint", str(run[0] / "model.safetensors"), "Tanakaω"]) == 0
    assert capsys.readouterr().out.startswith("Tanakaω: ")


def fails(capsys: Capsys, args: list[str], *needles: str) -> None:
    """The command exits with status 2 and says on stderr what is wrong, without a traceback."""
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("seqbatch: error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"


def test_an_empty_name_is_refused(run: Run, capsys: Capsys) -> None:
    fails(capsys, ["predict", "--checkpoint", str(run[0] / "model.safetensors"), "Tanaka", "  "], "empty name '  '")


def test_a_missing_data_folder_is_named(tmp_path: Path, capsys: Capsys) -> None:
    missing = tmp_path / "no-such-data"
    fails(capsys, ["train", "--data", str(missing), "--steps", "1", "--out", str(tmp_path / "run")], str(missing),
          "does not exist")
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_a_file_that_is_not_utf8_is_named_with_its_line(
    make_names_dir: NamesDir, tmp_path: Path, capsys: Capsys
) -> None:
    data = make_names_dir({"English": ["Smith", "Jones", "Brown"], "German": "Meyer\nMüller\n".encode("latin-1")})
    fails(capsys, ["train", "--data", str(data), "--steps", "1", "--out", str(tmp_path / "run")],
          "German.txt: line 2 is not UTF-8")


def test_a_label_too_rare_to_split_is_named(make_names_dir: NamesDir, tmp_path: Path, capsys: Capsys) -> None:
    data = make_names_dir({"English": ["Smith", "Jones", "Brown", "Evans"], "Welsh": ["Pryce"]})
    fails(capsys, ["train", "--data", str(data), "--steps", "1", "--out", str(tmp_path / "run")], "Welsh")


def test_a_checkpoint_of_another_label_set_is_refused(run: Run, make_names_dir: NamesDir, capsys: Capsys) -> None:
    other = make_names_dir({"Greek": ["Pappas"] * 3 + ["Georgiou", "Antoniou"], "Irish": ["Murphy", "Ryan", "Byrne"]})
    fails(capsys, ["eval", "--checkpoint", str(run[0] / "model.safetensors"), "--data", str(other)],
          "was trained on labels ['Greek', 'Japanese', 'Polish']", "['Greek', 'Irish']")


def test_a_checkpoint_without_vocab_or_labels_cannot_predict(tmp_path: Path, capsys: Capsys) -> None:
    import reference_torch
    from shared.config import ModelConfig

    path = tmp_path / "bare.safetensors"
    reference_torch.save(reference_torch.init(ModelConfig(vocab_size=5, num_classes=2, hidden_size=3), 0), path)
    fails(capsys, ["predict", "--checkpoint", str(path), "Smith"], str(path), "no vocabulary or labels")
    fails(capsys, ["eval", "--checkpoint", str(path)], str(path), "no vocabulary/labels")


def test_a_missing_checkpoint_is_named(tmp_path: Path, capsys: Capsys) -> None:
    fails(capsys, ["predict", "--checkpoint", str(tmp_path / "gone.safetensors"), "Smith"], "gone.safetensors",
          "does not exist")
