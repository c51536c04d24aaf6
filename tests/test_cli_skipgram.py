"""`seqbatch train --task skipgram` and `seqbatch eval` of its checkpoints end to end: the run folder, the
per-epoch scores, word2vec's learning-rate decay, a checkpoint read identically by both backends, and
the errors users meet."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from shared import checkpoint
from shared.cli import run_captured
from shared.config import TrainConfig
from shared.skipgram_training import learning_rate

# A corpus with structure: two families of words that never share a sentence.
ANIMALS = ["cat", "dog", "horse", "cow", "sheep", "goat"]
TOOLS = ["hammer", "saw", "drill", "wrench", "chisel", "pliers"]


@pytest.fixture(autouse=True)
def _cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBATCH_TORCH_DEVICE", "cpu")


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(1500):
        family = ANIMALS if rng.random() < 0.5 else TOOLS
        lines.append(" ".join(rng.choice(family, 8)))
    path = tmp_path_factory.mktemp("sg") / "corpus.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("word-eval")
    same, other = [("cat", "dog", 9.0), ("saw", "drill", 8.5), ("cow", "goat", 8.0), ("hammer", "wrench", 7.5)], [
        ("cat", "hammer", 1.0), ("dog", "saw", 0.5), ("goat", "pliers", 1.5), ("cow", "chisel", 0.8)]
    pairs = "\n".join(f"{a}\t{b}\t{s}" for a, b, s in same + other + [("cat", "unicorn", 5.0)])
    (folder / "wordsim353.tsv").write_text("# word1\tword2\tscore\n" + pairs + "\n")
    (folder / "simlex999.txt").write_text(pairs + "\n")
    (folder / "questions-words.txt").write_text(": family\ncat dog horse cow\nsaw drill hammer wrench\n")
    return folder


def train(corpus: Path, out: Path, *extra: str, backend: str = "torch") -> dict:
    code, stdout, stderr = run_captured("train", "--task", "skipgram", "--data", str(corpus), "--backend", backend,
                                        "--embed-dim", "16", "--min-count", "1", "--sample", "0.01",
                                        "--batch-size", "64", "--out", str(out), "--no-progress", *extra)
    assert code == 0, stderr
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def run(corpus_file: Path, eval_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "sg"
    train(corpus_file, out, "--epochs", "3", "--window", "3", "--word-eval", str(eval_dir))
    return out


def test_a_run_writes_its_folder_with_scores_after_every_epoch(run: Path) -> None:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r.get("split") == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3]
    for r in epochs:
        assert {"wordsim353", "simlex999", "analogy", "words_per_second"} <= set(r)
        assert r["wordsim353_oov"] == 1 and r["wordsim353_used"] == 8  # "unicorn" is counted, not scored
    assert epochs[-1]["wordsim353"] > 0.6  # the two families separate
    final = records[-1]
    assert final["split"] == "final" and final["wordsim353"] == epochs[-1]["wordsim353"]
    losses = [r["loss"] for r in records if "split" not in r]
    assert losses[-1] < losses[0]
    assert (run / "loss.png").read_bytes()[:4] == b"\x89PNG"
    ckpt = checkpoint.load(run / "model.safetensors")
    assert ckpt.words is not None and set(ckpt.words) == set(ANIMALS + TOOLS)
    config = json.loads((run / "config.json").read_text())
    assert config["kind"] == "skipgram" and config["data"]["window"] == 3


def test_eval_prints_the_same_scores_on_both_backends(run: Path, eval_dir: Path) -> None:
    outputs = []
    for backend in ("torch", "jax"):
        code, stdout, stderr = run_captured("eval", "--checkpoint", str(run / "model.safetensors"), "--backend",
                                            backend, "--word-eval", str(eval_dir))
        assert code == 0, stderr
        outputs.append(json.loads(stdout))
    assert outputs[0].pop("backend") == "torch" and outputs[1].pop("backend") == "jax"
    assert outputs[0] == outputs[1]
    last = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert outputs[0]["wordsim353"] == pytest.approx(last["wordsim353"], abs=1e-12)


def test_the_rate_decays_linearly_by_corpus_read() -> None:
    epochs = TrainConfig(optimizer="sgd", lr=0.025, momentum=0.0, epochs=5, steps=None)
    assert learning_rate(epochs, 1e-4, epoch=0, progress=0.0, step=0) == 0.025
    assert learning_rate(epochs, 1e-4, epoch=2, progress=0.5, step=7) == pytest.approx(0.025 - 0.0249 / 2)
    assert learning_rate(epochs, 1e-4, epoch=4, progress=1.0, step=9) == pytest.approx(1e-4)
    steps = TrainConfig(optimizer="sgd", lr=0.1, momentum=0.0, steps=100)
    assert learning_rate(steps, 0.0, epoch=3, progress=0.9, step=25) == pytest.approx(0.075)


def test_training_applies_the_decaying_rate(corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    from reference_torch.models import skipgram

    seen: list[float] = []
    real = skipgram.sparse_step

    def spy(state, batch, lr):  # type: ignore[no-untyped-def]
        seen.append(lr)
        return real(state, batch, lr)

    monkeypatch.setattr(skipgram, "sparse_step", spy)
    train(corpus_file, tmp_path / "r", "--epochs", "2", "--lr", "0.05", "--min-lr", "0.001")
    assert seen[0] == pytest.approx(0.05, rel=0.01) and seen[-1] == pytest.approx(0.001, abs=1e-3)
    assert all(b <= a for a, b in itertools.pairwise(seen))
    assert seen[len(seen) // 2] == pytest.approx((0.05 + 0.001) / 2, rel=0.05)


def test_neighbors_of_a_trained_run_are_its_family_on_both_backends(run: Path) -> None:
    outputs = []
    for backend in ("torch", "jax"):
        code, stdout, stderr = run_captured("neighbors", "--checkpoint", str(run / "model.safetensors"), "--backend",
                                            backend, "--top", "5", "--json", "cat", "drill")
        assert code == 0, stderr
        outputs.append([json.loads(line) for line in stdout.splitlines()])
    assert outputs[0] == outputs[1]
    cat, drill = outputs[0]
    assert {w for w, _ in cat["neighbors"]} == set(ANIMALS) - {"cat"}
    assert {w for w, _ in drill["neighbors"]} == set(TOOLS) - {"drill"}


@pytest.mark.parametrize("flags, message", [
    (["--window", "0"], "--window must be >= 1"),
    (["--negatives", "0"], "--negatives must be >= 1"),
    (["--min-count", "0"], "--min-count must be >= 1"),
    (["--min-count", "100000"], "skip-gram needs two or more"),
    (["--sample", "0"], "sample must be"),
    (["--hidden", "32"], "--hidden"),
    (["--momentum", "0.5"], "--momentum"),
    (["--min-lr", "1"], "--min-lr must be in"),
    (["--word-eval", "/nonexistent"], "missing wordsim353.tsv"),
])
def test_bad_skipgram_flags_end_in_one_line(corpus_file: Path, tmp_path: Path, flags: list[str], message: str
                                            ) -> None:
    code, _stdout, stderr = run_captured("train", "--task", "skipgram", "--data", str(corpus_file), "--out",
                                        str(tmp_path / "r"), "--no-progress", *flags)
    assert code == 2, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("seqbatch: error: ") and message in stderr, stderr


def test_skipgram_flags_are_refused_for_other_tasks(tmp_path: Path) -> None:
    code, _, stderr = run_captured("train", "--task", "names", "--window", "3", "--out", str(tmp_path / "r"))
    assert code == 2 and "--window apply to --task skipgram only" in stderr, stderr


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_adam_is_an_option(corpus_file: Path, tmp_path: Path, backend: str) -> None:
    result = train(corpus_file, tmp_path / "adam", "--epochs", "2", "--optimizer", "adam", backend=backend)
    records = [json.loads(line) for line in (tmp_path / "adam" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "split" not in r]
    assert result["steps"] > 0 and losses[-1] < losses[0]
    assert json.loads((tmp_path / "adam" / "config.json").read_text())["train"]["lr"] == 1e-3


def test_the_batch_generator_thread_hands_on_its_errors() -> None:
    from shared.skipgram_training import prefetched

    def items():  # type: ignore[no-untyped-def]
        yield from range(300)
        raise ValueError("broken corpus")

    got = []
    with pytest.raises(ValueError, match="broken corpus"):
        for x in prefetched(items(), depth=2, group=7):
            got.append(x)
    assert got == list(range(300))  # every item before the error, in order
    stream = prefetched(iter(range(10**9)), depth=2, group=5)
    assert [next(stream) for _ in range(12)] == list(range(12))
    stream.close()  # stops the producer thread instead of leaving it blocked
    import threading
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(t.name == "skipgram-batches" for t in threading.enumerate()):
        time.sleep(0.05)
    assert not any(t.name == "skipgram-batches" for t in threading.enumerate())
