"""`seqbatch train --task charlm`, `eval` and `generate` end to end, across backends, and their errors."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from shared.cli import main

PNG = b"\x89PNG\r\n\x1a\n"
SURNAMES = ["McDonald", "McAllister", "MacLeod", "Campbell", "Stewart", "Robertson", "Murray", "Fraser",
            "Kowalski", "Nowak", "Wisniewski", "Tanaka", "Suzuki", "Yamamoto", "Nakamura", "Rossi", "Russo",
            "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco", "Bruno", "Gallo", "Conti", "Costa",
            "Giordano", "Mancini", "Rizzo", "Lombardi", "Moretti", "Barbieri", "Fontana", "Santoro", "Mariani"]


def run_cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def _cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBATCH_TORCH_DEVICE", "cpu")


@pytest.fixture(scope="module")
def text_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from shared.lm_data import default_corpus

    path = tmp_path_factory.mktemp("text") / "corpus.txt"
    path.write_text(default_corpus()[0][:60_000].replace("\n", "\r\n"), newline="")
    return path


@pytest.fixture(scope="module")
def lm_run(text_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lm") / "run"
    code, stdout, stderr = run_cli(["train", "--task", "charlm", "--data", str(text_file), "--backend", "jax",
                                    "--hidden", "16", "--embed-dim", "8", "--batch-size", "8", "--seq-length", "20",
                                    "--steps", "12", "--eval-every", "6", "--out", str(out), "--no-progress"])
    assert code == 0, stderr
    assert json.loads(stdout.strip().splitlines()[-1])["steps"] == 12
    return out


def test_charlm_train_writes_the_run_folder_with_lm_metrics(lm_run: Path) -> None:
    assert (lm_run / "loss.png").read_bytes().startswith(PNG)
    config = json.loads((lm_run / "config.json").read_text())
    assert config["kind"] == "lm" and config["model"]["hidden_size"] == 16 and config["seq_length"] == 20
    assert config["model"]["num_layers"] == 2 and config["model"]["dropout"] == 0.2  # the charlm defaults
    records = [json.loads(line) for line in (lm_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "split" not in r] == list(range(1, 13))
    vals = [r for r in records if r.get("split") == "val"]
    assert [r["step"] for r in vals] == [6, 12]
    last = records[-1]
    assert last["split"] == "test" and last["best_step"] in (6, 12)
    for rec in (*vals, last):
        assert rec["bits_per_char"] == pytest.approx(rec["nats_per_char"] / np.log(2))
        assert rec["perplexity"] == pytest.approx(np.exp(rec["nats_per_char"]))
    assert last["best_val_nats_per_char"] == min(r["nats_per_char"] for r in vals)  # keep-best on val loss


@pytest.mark.parametrize("split", ["val", "test"])
def test_eval_gives_the_same_loss_on_both_backends(lm_run: Path, text_file: Path, split: str) -> None:
    reports = {}
    for backend in ("torch", "jax"):
        code, stdout, stderr = run_cli(["eval", "--checkpoint", str(lm_run / "model.safetensors"), "--backend",
                                        backend, "--data", str(text_file), "--split", split])
        assert code == 0, stderr
        reports[backend] = json.loads(stdout)
        assert reports[backend]["backend"] == backend and reports[backend]["split"] == split
    assert reports["torch"]["nats_per_char"] == pytest.approx(reports["jax"]["nats_per_char"], abs=1e-5)
    assert reports["torch"]["n"] == reports["jax"]["n"] > 2900
    records = [json.loads(line) for line in (lm_run / "metrics.jsonl").read_text().splitlines()]
    if split == "test":  # the figure the run itself reported
        assert reports["jax"]["nats_per_char"] == pytest.approx(records[-1]["nats_per_char"], abs=1e-6)


def test_greedy_generation_is_the_same_text_on_both_backends(lm_run: Path) -> None:
    texts = []
    for backend in ("torch", "jax"):
        code, stdout, stderr = run_cli(["generate", "--checkpoint", str(lm_run / "model.safetensors"), "--backend",
                                        backend, "--prime", "The ", "--length", "60", "--top-k", "1"])
        assert code == 0, stderr
        texts.append(stdout)
    assert texts[0] == texts[1] and texts[0].startswith("The ") and len(texts[0].rstrip("\n")) == 64


def test_sampled_generation_follows_the_seed(lm_run: Path) -> None:
    def sample(seed: int, backend: str = "jax") -> str:
        code, stdout, stderr = run_cli(["generate", "--checkpoint", str(lm_run / "model.safetensors"), "--backend",
                                        backend, "--prime", "A", "--length", "40", "--temperature", "0.8",
                                        "--top-k", "5", "--seed", str(seed)])
        assert code == 0, stderr
        return stdout

    assert sample(0) == sample(0) != sample(1)
    assert sample(3, "torch") == sample(3, "jax")


def test_a_names_language_model_generates_surnames_from_a_prefix(tmp_path: Path) -> None:
    folder = tmp_path / "names"
    folder.mkdir()
    (folder / "Mixed.txt").write_text("\n".join(SURNAMES) + "\n")
    out = tmp_path / "run"
    code, _, stderr = run_cli(["train", "--task", "charlm", "--data", str(folder), "--backend", "torch",
                               "--hidden", "16", "--embed-dim", "8", "--batch-size", "8", "--steps", "5",
                               "--out", str(out), "--no-progress"])
    assert code == 0, stderr
    config = json.loads((out / "config.json").read_text())
    assert config["lm_data"]["batching"] == "documents"  # a folder: one document per line
    code, stdout, stderr = run_cli(["generate", "--checkpoint", str(out / "model.safetensors"), "--backend", "jax",
                                    "--prime", "Mc", "--length", "12", "--samples", "3"])
    assert code == 0, stderr
    lines = stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("Mc") and "\n" not in line for line in lines)
    assert all(len(line) <= 14 for line in lines)


def expect_error(args: list[str], message: str) -> None:
    code, _, stderr = run_cli(args)
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("seqbatch: error: ") and message in lines[-1], stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize(("content", "message"), [(b"", "is empty"), (b"\xff\xfe\x00bad", "is not UTF-8"),
                                                  (b"too short for a batch", "fewer than one batch"),
                                                  (b"short text, " * 100, "fewer than one batch")])
def test_bad_text_ends_in_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    expect_error(["train", "--task", "charlm", "--data", str(path), "--out", str(tmp_path / "o"), "--no-progress"],
                 message)


def test_generate_mistakes_end_in_one_line(lm_run: Path, tmp_path: Path, tiny_names_dir: Path) -> None:
    ckpt = str(lm_run / "model.safetensors")
    expect_error(["generate", "--checkpoint", ckpt, "--prime", "Ωμέγα"], "outside the model's vocabulary")
    expect_error(["generate", "--checkpoint", ckpt, "--prime", "A", "--length", "0"], "--length must be >= 1")
    expect_error(["generate", "--checkpoint", ckpt, "--prime", "A", "--temperature", "0"], "--temperature")
    expect_error(["generate", "--checkpoint", ckpt, "--prime", ""], "--prime is empty")
    expect_error(["generate", "--checkpoint", ckpt, "--prime", "A", "--seed", "-1"], "--seed must be an integer")
    expect_error(["generate", "--checkpoint", ckpt, "--prime", "A", "--seed", str(2**32 - 1), "--samples", "2"],
                 "--seed + --samples - 1 must be an integer")
    expect_error(["eval", "--checkpoint", ckpt, "--seed", "-1"], "--seed must be an integer")
    classifier = tmp_path / "cls"
    code, _, stderr = run_cli(["train", "--data", str(tiny_names_dir), "--hidden", "4", "--steps", "2",
                               "--batch-size", "4", "--out", str(classifier), "--no-progress"])
    assert code == 0, stderr
    expect_error(["generate", "--checkpoint", str(classifier / "model.safetensors"), "--prime", "A"],
                 "is a classifier checkpoint")
    expect_error(["predict", "--checkpoint", ckpt, "Anna"], "is a language model")
    expect_error(["eval", "--checkpoint", ckpt, "--confusion", str(tmp_path / "c.png")], "--confusion apply to")
    expect_error(["eval", "--checkpoint", ckpt, "--task", "names"], "is a language model (--task charlm)")


def test_flags_of_the_other_kind_are_refused(tmp_path: Path, text_file: Path) -> None:
    expect_error(["train", "--task", "charlm", "--data", str(text_file), "--bidirectional", "--out",
                  str(tmp_path / "o")], "--bidirectional apply to the classifier tasks")
    expect_error(["train", "--task", "names", "--seq-length", "50", "--out", str(tmp_path / "o")],
                 "--seq-length apply to --task charlm only")


@pytest.mark.parametrize("flag", [["--lr", "nan"], ["--lr", "inf"], ["--clip-norm", "nan"], ["--momentum", "nan"]])
def test_non_finite_numbers_are_refused_before_training(tmp_path: Path, flag: list[str]) -> None:
    expect_error(["train", "--task", "charlm", *flag, "--out", str(tmp_path / "o"), "--no-progress"], "must be")
    assert not (tmp_path / "o").exists()
