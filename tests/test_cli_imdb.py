"""`seqbatch train|eval|predict --task imdb` end to end, tiny, on both backends."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from shared.checkpoint import Checkpoint, save
from shared.cli import main
from shared.config import ModelConfig
from shared.layout import parameter_shapes
from shared.vocab import Vocab

IMDB = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "imdb"
TINY = ["--hidden", "8", "--embed-dim", "8", "--max-len", "32", "--bucket", "32", "--epochs", "2", "--no-progress"]
REVIEW = "The movie is visually stunning and the movie is very interesting."


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module", params=["torch", "jax"])
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A tiny run on the embedded synthetic reviews."""
    out = tmp_path_factory.mktemp(f"imdb-{request.param}")
    code = main(["train", "--task", "imdb", "--backend", request.param, "--max-train", "200", "--max-test", "100",
                 *TINY, "--out", str(out)])
    assert code == 0
    return request.param, out


def test_train_writes_the_run_folder_with_epoch_records_and_test_accuracy(trained: tuple[str, Path]) -> None:
    backend, out = trained
    assert {p.name for p in out.iterdir()} >= {"config.json", "metrics.jsonl", "loss.png", "curves.png",
                                               "model.safetensors"}
    recs = records(out)
    last = recs[-1]
    assert last["split"] == "test" and last["n"] == 100
    assert 0.0 <= last["test_accuracy"] <= 1.0 and last["test_accuracy"] == last["top1"]
    epochs = [r for r in recs if r.get("split") == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    for r in epochs:
        assert 0.0 <= r["train_accuracy"] <= 1.0 and 0.0 <= r["val_accuracy"] <= 1.0
        assert r["train_loss"] > 0 and r["val_loss"] > 0
    config = json.loads((out / "config.json").read_text())
    assert config["backend"] == backend and config["task"] == "imdb"
    assert config["text"]["max_len"] == 32 and "synthetic" in config["data"]
    assert config["padding"]["bucketed"] <= config["padding"]["unbucketed"]


def test_the_checkpoint_carries_the_text_config(trained: tuple[str, Path]) -> None:
    with safe_open(str(trained[1] / "model.safetensors"), framework="numpy") as f:
        text = json.loads(f.metadata()["seqbatch.text"])
    assert text["max_len"] == 32 and text["level"] == "word"


def test_eval_reproduces_the_runs_test_accuracy(trained: tuple[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    backend, out = trained
    code, stdout, _ = run(capsys, "eval", "--task", "imdb", "--backend", backend,
                          "--checkpoint", str(out / "model.safetensors"))
    assert code == 0
    report = json.loads(stdout)
    assert report["n"] == 100
    assert report["top1"] == pytest.approx(records(out)[-1]["test_accuracy"])


def test_predict_prints_a_label_and_probability_from_the_checkpoint_alone(
    trained: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backend, out = trained
    alone = tmp_path / "model.safetensors"  # no config.json beside it: the file must be enough
    shutil.copy(out / "model.safetensors", alone)
    # The synthetic training set does not know most of the seed's review: predict says so.
    with pytest.warns(UserWarning, match=r"6 of 11 tokens not in the vocabulary, read as <unk>"):
        code, stdout, _ = run(capsys, "predict", "--task", "imdb", "--backend", backend, "--checkpoint", str(alone),
                              REVIEW, "The plot was not good.")
    assert code == 0
    lines = stdout.splitlines()
    assert len(lines) == 2
    m = re.fullmatch(r"(.+): (negative|positive) (\d+\.\d)%", lines[0])
    assert m is not None and m.group(1) == REVIEW
    assert 50.0 <= float(m.group(3)) <= 100.0
    with pytest.warns(UserWarning, match="not in the vocabulary"):
        code, stdout, _ = run(capsys, "predict", "--json", "--backend", backend, "--checkpoint", str(alone), REVIEW)
    top = json.loads(stdout)["top"]
    assert len(top) == 1 and top[0][0] in ("negative", "positive") and 0.5 <= top[0][1] <= 1.0


@pytest.mark.skipif(not (IMDB / "imdb_train.csv.xz").is_file(), reason=f"no IMDB data at {IMDB}")
def test_train_on_a_sample_of_the_real_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, err = run(capsys, "train", "--task", "imdb", "--data", str(IMDB), "--max-train", "120",
                            "--max-test", "60", "--sampler", "balanced", *TINY, "--out", str(tmp_path))
    assert code == 0, err
    assert "padding waste per epoch" in err
    result = json.loads(stdout)
    assert result["test"]["n"] == 60 and records(tmp_path)[-1]["test_accuracy"] == result["test"]["top1"]


def names_checkpoint(path: Path) -> Path:
    cfg = ModelConfig(vocab_size=4, num_classes=2, hidden_size=2)
    params = {k: np.zeros(s, np.float32) for k, s in parameter_shapes(cfg).items()}
    save(path, Checkpoint(cfg, params, Vocab(("<pad>", "<unk>", "a", "b")), ["English", "French"]))
    return path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--task", "imdb", "--data", "{tmp}/nowhere"], "nowhere"),
        (["train", "--task", "imdb", "--max-len", "-1"], "max_len"),
        (["train", "--task", "imdb", "--max-train", "3"], "max_train=3"),
        (["train", "--task", "names", "--max-len", "10"], "--max-len"),
        (["predict", "--task", "imdb", "--checkpoint", "{names}", REVIEW], "--task names"),
        (["predict", "--task", "imdb", "--checkpoint", "{tmp}/missing.safetensors", REVIEW], "does not exist"),
    ],
)
def test_bad_input_exits_with_status_2_and_says_why(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = names_checkpoint(tmp_path / "names.safetensors")
    argv = [a.format(tmp=tmp_path, names=names) for a in argv]
    if argv[0] == "train":
        argv += ["--out", str(tmp_path / "run"), "--no-progress"]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("seqbatch: error:") and message in err


def test_a_review_with_no_tokens_left_is_refused(trained: tuple[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "predict", "--checkpoint", str(trained[1] / "model.safetensors"), "<br /> \x85")
    assert code == 2 and "no tokens left" in err


def test_unknown_truncate_side_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as e:
        main(["train", "--task", "imdb", "--truncate", "middle", "--out", str(tmp_path)])
    assert e.value.code == 2
