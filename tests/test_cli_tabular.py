"""`seqbatch train --task wine|tabular`, `eval` and `predict` of MLP checkpoints end to end, on both
backends: the run folder and its per-epoch records, the size-weighted epoch loss, checkpoints
evaluated identically by both backends, a CSV's path, resuming, and the errors users meet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shared import checkpoint
from shared.cli import run_captured
from shared.tabular import split_table, wine_table

EPOCHS = 3


@pytest.fixture(autouse=True)
def _cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBATCH_TORCH_DEVICE", "cpu")


def train(out: Path, *extra: str, backend: str = "torch") -> dict:
    code, stdout, stderr = run_captured("train", "--backend", backend, "--out", str(out), "--no-progress", *extra)
    assert code == 0, stderr
    return json.loads(stdout.strip().splitlines()[-1])


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def fails(*argv: str) -> str:
    """The one stderr line of a command that must fail as a user error (exit 2)."""
    code, stdout, stderr = run_captured(*argv)
    assert code == 2, (code, stdout, stderr)
    assert stderr.startswith("seqbatch: error: ") and stderr.count("\n") == 1, stderr
    return stderr


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.write_text("\n".join(",".join(map(str, r)) for r in [header, *rows]) + "\n")
    return path


def separable_rows(n: int, seed: int = 0) -> list[list[object]]:
    """Two classes ("yes" when x0 + x2 > 0), the target column between the features."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)) * [1.0, 50.0, 3.0] + [0.0, 200.0, 0.0]  # scales standardisation must undo
    y = np.where(x[:, 0] + x[:, 2] / 3 > 0, "yes", "no")
    return [[f"{a:.4f}", label, f"{b:.3f}", f"{c:.4f}"] for (a, b, c), label in zip(x, y, strict=True)]


@pytest.fixture(scope="module")
def wine_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("wine")
    runs = {}
    for backend in ("torch", "jax"):
        runs[backend] = root / backend
        train(runs[backend], "--task", "wine", "--epochs", str(EPOCHS), "--seed", "3", backend=backend)
    return runs


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_a_wine_run_writes_its_folder_and_per_epoch_figures(wine_runs: dict[str, Path], backend: str) -> None:
    run = wine_runs[backend]
    assert {p.name for p in run.iterdir()} >= {"config.json", "metrics.jsonl", "model.safetensors", "loss.png",
                                                 "curves.png", "state"}
    config = json.loads((run / "config.json").read_text())
    assert config["kind"] == "mlp" and config["backend"] == backend and config["task"] == "wine"
    assert config["model"] == {"num_features": 13, "num_classes": 3, "hidden_sizes": [10, 10], "dtype": "float32"}
    assert config["train"]["optimizer"] == "adam" and config["train"]["lr"] == 1e-3
    assert config["train"]["batch_size"] == 32 and config["train"]["epochs"] == EPOCHS
    assert config["sizes"] == {"train": 106, "val": 36, "test": 36}  # stratified 60/20/20 of 178
    recs = records(run)
    assert [r["step"] for r in recs if "split" not in r] == list(range(1, 4 * EPOCHS + 1))  # 106 rows: 4 batches
    epochs = [r for r in recs if r.get("split") == "epoch"]
    assert [(r["epoch"], r["step"]) for r in epochs] == [(e, 4 * e) for e in range(1, EPOCHS + 1)]
    for r in epochs:
        assert r["train_n"] == 106 and 0 <= r["train_accuracy"] <= 1 and 0 <= r["val_accuracy"] <= 1
        assert round(r["train_accuracy"] * 106, 6).is_integer() and round(r["val_accuracy"] * 36, 6).is_integer()
        assert r["train_loss"] > 0 and r["val_loss"] > 0
    assert epochs[-1]["val_loss"] < epochs[0]["val_loss"]  # it learns
    last = recs[-1]
    assert last["split"] == "test" and last["n"] == 36 and last["test_accuracy"] == last["top1"]


def test_the_checkpoint_stores_labels_and_train_only_standardisation(wine_runs: dict[str, Path]) -> None:
    ckpt = checkpoint.load(wine_runs["torch"] / "model.safetensors")
    table = wine_table()
    assert ckpt.labels == ["class_0", "class_1", "class_2"] and ckpt.split is not None
    assert ckpt.split["task"] == "wine" and ckpt.split["seed"] == 3
    assert ckpt.features is not None and ckpt.features.names == table.feature_names
    data = split_table(table, 3)
    # The stored statistics are the seed-3 train split's, not the whole set's.
    np.testing.assert_allclose(ckpt.features.mean, data.scaling.mean)
    np.testing.assert_allclose(ckpt.features.std, data.scaling.std)
    assert not np.allclose(ckpt.features.mean, table.features.mean(0), rtol=1e-3)
    np.testing.assert_allclose(data.train.features.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(data.train.features.std(0), 1, atol=1e-12)


@pytest.mark.parametrize("split", ["test", "val"])
def test_eval_gives_identical_json_on_both_backends(wine_runs: dict[str, Path], split: str) -> None:
    for run in wine_runs.values():
        reports = []
        for backend in ("torch", "jax"):
            code, stdout, stderr = run_captured("eval", "--checkpoint", str(run / "model.safetensors"), "--backend",
                                                backend, "--split", split)
            assert code == 0, stderr
            report = json.loads(stdout)
            assert report.pop("backend") == backend
            reports.append(report)
        assert reports[0] == reports[1]
        recs = records(run)
        figure = recs[-1] if split == "test" else [r for r in recs if r.get("split") == "epoch"][-1]
        key = "top1" if split == "test" else "val_accuracy"
        assert reports[0]["n"] == 36 and reports[0]["top1"] == figure[key]  # the split the run itself used
        assert reports[0]["loss"] == pytest.approx(figure["loss" if split == "test" else "val_loss"], abs=2e-6)


def numpy_mlp(ckpt: checkpoint.Checkpoint, raw: np.ndarray) -> np.ndarray:
    """Class probabilities from the checkpoint's tensors and stored statistics, in plain NumPy."""
    assert ckpt.features is not None
    x = (raw - np.array(ckpt.features.mean)) / np.array(ckpt.features.std)
    layers = len(ckpt.params) // 2
    for i in range(layers):
        x = x @ ckpt.params[f"layers.{i}.weight"].T.astype(np.float64) + ckpt.params[f"layers.{i}.bias"]
        x = np.maximum(x, 0) if i < layers - 1 else x
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_predict_reads_raw_rows_in_the_checkpoint_s_feature_order(wine_runs: dict[str, Path]) -> None:
    table = wine_table()
    raw = table.features[[0, 100, 170]]  # one wine of each class
    rows = [",".join(f"{v:g}" for v in r) for r in raw]
    path = wine_runs["torch"] / "model.safetensors"
    expected = numpy_mlp(checkpoint.load(path), np.array([[float(v) for v in r.split(",")] for r in rows]))
    outputs = []
    for backend in ("torch", "jax"):
        code, stdout, stderr = run_captured("predict", "--checkpoint", str(path), "--backend", backend, "--json",
                                            "--top", "3", *rows)
        assert code == 0, stderr
        lines = [json.loads(line) for line in stdout.splitlines()]
        for line, want in zip(lines, expected, strict=True):
            labels = ["class_0", "class_1", "class_2"]
            assert [name for name, _ in line["top"]] == [labels[i] for i in np.argsort(-want, kind="stable")]
            assert [p for _, p in line["top"]] == pytest.approx(np.sort(want)[::-1], abs=1e-4)
        outputs.append(stdout)
    assert outputs[0] == outputs[1]
    err = fails("predict", "--checkpoint", str(path), "1,2,3")
    assert "give 13 numbers" in err and "alcohol" in err


def test_hidden_sizes_reach_the_model(tmp_path: Path) -> None:
    train(tmp_path / "r", "--task", "wine", "--epochs", "1", "--hidden-sizes", "7,5,4", backend="jax")
    params = checkpoint.load(tmp_path / "r" / "model.safetensors").params
    assert {k: v.shape for k, v in params.items()} == {
        "layers.0.weight": (7, 13), "layers.0.bias": (7,), "layers.1.weight": (5, 7), "layers.1.bias": (5,),
        "layers.2.weight": (4, 5), "layers.2.bias": (4,), "layers.3.weight": (3, 4), "layers.3.bias": (3,)}


def test_every_train_flag_reaches_the_run(tmp_path: Path) -> None:
    run = tmp_path / "r"
    train(run, "--task", "wine", "--hidden-sizes", "6", "--dtype", "float64", "--optimizer", "sgd", "--lr", "0.05",
          "--momentum", "0.5", "--batch-size", "50", "--clip-norm", "0.7", "--seed", "9", "--epochs", "2")
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == {"num_features": 13, "num_classes": 3, "hidden_sizes": [6], "dtype": "float64"}
    assert {k: config["train"][k] for k in ("optimizer", "lr", "momentum", "batch_size", "clip_norm", "seed",
                                             "epochs", "steps")} == {
        "optimizer": "sgd", "lr": 0.05, "momentum": 0.5, "batch_size": 50, "clip_norm": 0.7, "seed": 9, "epochs": 2,
        "steps": None}
    assert config["steps_per_epoch"] == 3 and config["split"]["seed"] == 9  # 106 rows in batches of 50
    for path in (run / "model.safetensors", run / "state" / "model.safetensors"):
        ckpt = checkpoint.load(path)
        assert ckpt.config.hidden_sizes == (6,) and ckpt.config.dtype == "float64"
        assert ckpt.params["layers.0.weight"].dtype == np.float64
    assert [r["step"] for r in records(run) if r.get("split") == "epoch"] == [3, 6]


def test_the_epoch_loss_weights_each_batch_by_its_size(tmp_path: Path) -> None:
    """18 rows: 10 train, batches of 4, 4 and 2. The epoch loss is sum(B_i * loss_i) / 10, which the
    plain mean of the three batch means is not (the short batch would count double)."""
    data = write_csv(tmp_path / "t.csv", ["a", "label", "b", "c"], separable_rows(18))
    train(tmp_path / "r", "--task", "tabular", "--data", str(data), "--target", "label", "--batch-size", "4",
          "--epochs", "1", "--optimizer", "sgd", "--lr", "0.5")
    recs = records(tmp_path / "r")
    steps = [r["loss"] for r in recs if "split" not in r]
    epoch = next(r for r in recs if r.get("split") == "epoch")
    assert len(steps) == 3 and epoch["train_n"] == 10
    weighted = (4 * steps[0] + 4 * steps[1] + 2 * steps[2]) / 10
    assert epoch["train_loss"] == pytest.approx(weighted, rel=1e-12)
    assert abs(weighted - np.mean(steps)) > 1e-3  # the case where weighting matters
    assert round(epoch["train_accuracy"] * 10, 9).is_integer()


def test_a_csv_trains_evaluates_and_predicts_with_its_own_labels(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "t.csv", ["a", "label", "b", "c"], separable_rows(60))
    run = tmp_path / "r"
    out = train(run, "--task", "tabular", "--data", str(data), "--target", "label", "--epochs", "20",
                "--lr", "0.02", "--hidden-sizes", "8", "--keep-best", backend="jax")
    assert out["test"]["n"] == 12 and out["test"]["top1"] >= 0.75
    ckpt = checkpoint.load(run / "model.safetensors")
    assert ckpt.labels == ["no", "yes"] and ckpt.features is not None and ckpt.features.names == ("a", "b", "c")
    assert ckpt.config.hidden_sizes == (8,) and ckpt.split is not None and ckpt.split["target"] == "label"
    recs = records(run)
    vals = [r["val_accuracy"] for r in recs if r.get("split") == "epoch"]
    per_epoch = json.loads((run / "config.json").read_text())["steps_per_epoch"]
    assert per_epoch == 2  # 36 train rows in batches of 32
    # keep-best: the earliest epoch of the best validation accuracy
    assert recs[-1]["best_val_top1"] == max(vals) and recs[-1]["best_step"] == per_epoch * (vals.index(max(vals)) + 1)
    reports = []
    for backend in ("torch", "jax"):  # the CSV's path comes from the checkpoint
        code, stdout, stderr = run_captured("eval", "--checkpoint", str(run / "model.safetensors"), "--backend",
                                            backend)
        assert code == 0, stderr
        reports.append({k: v for k, v in json.loads(stdout).items() if k != "backend"})
    assert reports[0] == reports[1] and reports[0]["top1"] == recs[-1]["top1"]
    code, stdout, stderr = run_captured("predict", "--checkpoint", str(run / "model.safetensors"),
                                        "--top", "1", "--", "2.0,200,3.0", "-2.0,200,-3.0")
    assert code == 0, stderr
    assert stdout.splitlines()[0].startswith("2.0,200,3.0: yes") and ": no" in stdout.splitlines()[1]
    other = write_csv(tmp_path / "o.csv", ["a", "label", "x", "c"], separable_rows(60))
    with pytest.warns(UserWarning, match="trained on other data"):
        err = fails("eval", "--checkpoint", str(run / "model.safetensors"), "--data", str(other))
    assert "differ from the ones the model was trained on" in err


def test_a_run_resumed_mid_epoch_ends_as_the_uninterrupted_one(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The save at step 6 fails (a full disk): the state of step 3, three batches into the first epoch,
    is what the run resumes from; the epoch's running loss and accuracy come back with it."""
    import errno

    from shared import runs

    flags = ("--task", "wine", "--epochs", "3", "--checkpoint-every", "3")
    train(tmp_path / "whole", *flags)
    saves = {"n": 0}

    def disk_full(tmp: Path) -> None:
        if tmp.name.startswith(".run.safetensors"):
            saves["n"] += 1
            if saves["n"] == 3:  # steps 0 and 3 are saved, step 6 is not
                raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    monkeypatch.setattr(runs, "FAULT_BEFORE_REPLACE", disk_full)
    code, _, stderr = run_captured("train", *flags, "--out", str(tmp_path / "part"), "--no-progress")
    assert code == 2 and stderr.splitlines()[-1].endswith("No space left on device"), stderr
    monkeypatch.setattr(runs, "FAULT_BEFORE_REPLACE", None)
    code, _, stderr = run_captured("train", "--resume", str(tmp_path / "part"), "--no-progress")
    assert code == 0, stderr
    assert "resuming" in stderr and "at step 3" in stderr
    whole, part = (checkpoint.load(tmp_path / name / "model.safetensors") for name in ("whole", "part"))
    assert all(np.array_equal(whole.params[k], part.params[k]) for k in whole.params)
    figures = [[{k: v for k, v in r.items() if "seconds" not in k} for r in records(tmp_path / name)
                if r.get("split") in ("epoch", "test")] for name in ("whole", "part")]
    assert figures[0] == figures[1] and len(figures[0]) == 4


def test_eval_standardises_with_the_checkpoint_s_statistics(wine_runs: dict[str, Path], tmp_path: Path) -> None:
    """Not with statistics recomputed from the data: a checkpoint whose stored std is doubled reads
    every row at half scale, and its logits change."""
    import dataclasses

    ckpt = checkpoint.load(wine_runs["torch"] / "model.safetensors")
    assert ckpt.features is not None
    halved = dataclasses.replace(ckpt.features, std=tuple(2 * s for s in ckpt.features.std))
    checkpoint.save(tmp_path / "m.safetensors", dataclasses.replace(ckpt, features=halved))
    logits = []
    for path in (wine_runs["torch"] / "model.safetensors", tmp_path / "m.safetensors"):
        code, _, stderr = run_captured("eval", "--checkpoint", str(path), "--logits-out", str(path) + ".npy")
        assert code == 0, stderr
        logits.append(np.load(str(path) + ".npy"))
    assert logits[0].shape == (36, 3) and not np.allclose(logits[0], logits[1], atol=1e-3)


@pytest.mark.parametrize("argv, message", [
    (["--task", "wine", "--hidden-sizes", "10,0"], "width >= 1"),
    (["--task", "wine", "--hidden-sizes", "10,,10"], "layer widths separated by commas"),
    (["--task", "wine", "--hidden-sizes", "ten"], "layer widths separated by commas"),
    (["--task", "wine", "--hidden-sizes", "-5"], "layer widths separated by commas"),
    (["--task", "wine", "--cell", "gru"], "--cell do not apply to --task wine"),
    (["--task", "wine", "--hidden", "8"], "--hidden (use --hidden-sizes)"),
    (["--task", "wine", "--steps", "10"], "--steps (the MLP trains in --epochs)"),
    (["--task", "wine", "--seq-length", "10"], "--seq-length apply to --task charlm only"),
    (["--task", "wine", "--data", "x.csv"], "--data do not apply to --task wine"),
    (["--task", "tabular", "--data", "x.csv"], "needs --data FILE.csv and --target COLUMN"),
    (["--task", "names", "--hidden-sizes", "4"], "--hidden-sizes apply to --task wine and tabular only"),
    (["--task", "skipgram", "--target", "y"], "--target apply to --task wine and tabular only"),
])
def test_flags_that_do_not_apply_or_are_malformed_are_refused(tmp_path: Path, argv: list[str], message: str) -> None:
    err = fails("train", *argv, "--out", str(tmp_path / "r"))
    assert message in err
    assert not (tmp_path / "r").exists()  # refused before the run folder is made


@pytest.mark.parametrize("content, message", [
    ("a,b,label\n1,2,x\n3,4,y\n", "no column 'target' for --target; the columns are 'a', 'b', 'label'"),
    ("a,target,b\n1,x,2\n3,y,oops\n5,x,6\n", "column 'b', line 3 (data row 2): 'oops' is not a finite number"),
    ("a,target,b\n1,x,2\n3,x,4\n5,x,6\n", "the target column 'target' has one class ('x')"),
    ("", "the CSV file is empty"),
    ("a,target\n", "a header line but no data rows"),
    ("a,target,b\n1,x,2\n3,y\n", "line 3 has 2 fields, the header 3"),
    ("a,target,b\n1,x,nan\n3,y,4\n", "column 'b', line 2 (data row 1): 'nan' is not a finite number"),
])
def test_bad_csv_files_are_one_line_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(content)
    err = fails("train", "--task", "tabular", "--data", str(path), "--target", "target", "--out",
                str(tmp_path / "r"))
    assert message in err and str(path) in err


def test_too_few_rows_for_a_stratified_split_is_a_one_line_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", ["a", "label", "b", "c"], separable_rows(4))
    err = fails("train", "--task", "tabular", "--data", str(path), "--target", "label", "--out", str(tmp_path / "r"))
    assert "cannot be split 60/20/20 stratified by class" in err
