"""`seqbatch train --task imdb --init-embeddings FILE [--freeze-embeddings]` end to end on the
synthetic reviews: the count logged, the checkpoint's rows, the flags recorded and resumed, and
every mistake one line `seqbatch: error: ...` with exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shared import checkpoint
from shared.backend import get_backend
from shared.cli import run_captured as cli
from shared.init_embeddings import EMBEDDING
from shared.word_vectors import read_word2vec

# Tokens of the synthetic reviews, a cased word the lower-cased vocabulary lacks, and a stranger.
WORDS = ["the", "great", "awful", "plot", "acting", "The", "zebra"]
DIM = 6
TINY = ["train", "--task", "imdb", "--max-train", "200", "--max-test", "50", "--hidden", "8", "--max-len", "32",
        "--bucket", "32", "--no-progress"]


@pytest.fixture(autouse=True)
def _cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBATCH_TORCH_DEVICE", "cpu")


def write_vectors(path: Path, words: list[str], dim: int = DIM, seed: int = 0) -> Path:
    """The word2vec text format, written here by hand: a header `V D`, then `word v1 .. vD`."""
    vectors = (np.random.default_rng(seed).standard_normal((len(words), dim)) + 20).astype(np.float32)
    rows = [w + " " + " ".join(f"{x:.9g}" for x in v) for w, v in zip(words, vectors, strict=True)]
    lines = [f"{len(words)} {dim}", *rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def vectors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_vectors(tmp_path_factory.mktemp("vectors") / "vectors.txt", WORDS)


def one_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqbatch: error: "), err
    return lines[0]


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_a_frozen_run_keeps_the_files_rows_and_the_seeded_init(backend: str, vectors: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, _, err = cli(*TINY, "--backend", backend, "--steps", "4", "--init-embeddings", str(vectors),
                       "--freeze-embeddings", "--out", str(out))
    assert code == 0, err
    ckpt = checkpoint.load(out / "model.safetensors")
    assert ckpt.config.embed_dim == DIM and ckpt.vocab is not None
    found = [w for w in WORDS if w in ckpt.vocab.index]
    assert found == ["the", "great", "awful", "plot", "acting"]
    n = len(ckpt.vocab) - 1
    assert (f"init-embeddings: {len(found)} of {n} vocabulary tokens found in {vectors} (D={DIM}); "
            f"{n - len(found)} keep the random init") in err.splitlines()
    words, file_rows = read_word2vec(vectors)
    seeded = get_backend(backend).to_params(get_backend(backend).init(ckpt.config, 0))[EMBEDDING]
    table = ckpt.params[EMBEDDING]
    for token, i in ckpt.vocab.index.items():
        want = file_rows[words.index(token)] if token in found else seeded[i]
        assert np.array_equal(table[i], want), token
    config = json.loads((out / "config.json").read_text())
    assert config["cli"]["init_embeddings"] == str(vectors) and config["cli"]["freeze_embeddings"] is True
    assert config["train"]["freeze"] == [EMBEDDING] and config["model"]["embed_dim"] == DIM


def test_without_freezing_the_rows_train(vectors: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, _, err = cli(*TINY, "--steps", "4", "--no-keep-best", "--init-embeddings", str(vectors), "--embed-dim",
                       str(DIM), "--out", str(out))
    assert code == 0, err
    ckpt = checkpoint.load(out / "model.safetensors")
    assert ckpt.vocab is not None
    words, file_rows = read_word2vec(vectors)
    row = ckpt.params[EMBEDDING][ckpt.vocab.index["the"]]
    assert not np.array_equal(row, file_rows[words.index("the")])
    assert json.loads((out / "config.json").read_text())["train"]["freeze"] == []


@pytest.fixture(scope="module")
def runs(vectors: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Frozen and unfrozen 2-step runs, and the frozen one run 4 steps straight (validating at the same
    steps as the 2-step run resumed to 4, so that --keep-best chooses among the same weights)."""
    root = tmp_path_factory.mktemp("runs")
    made = {}
    for name, extra in (("frozen", ["--freeze-embeddings"]), ("unfrozen", []), ("straight", ["--freeze-embeddings"])):
        steps = "4" if name == "straight" else "2"
        code, _, err = cli(*TINY, "--steps", steps, "--eval-every", "2", "--init-embeddings", str(vectors), *extra,
                           "--out", str(root / name))
        assert code == 0, err
        made[name] = root / name
    return made


def test_resume_keeps_freezing_and_does_not_read_the_vectors_again(runs: dict[str, Path], tmp_path: Path) -> None:
    run = runs["frozen"]
    code, _, err = cli("train", "--resume", str(run), "--steps", "4", "--no-progress")
    assert code == 0, err
    assert "init-embeddings:" not in err and "resuming" in err
    resumed = checkpoint.load(run / "model.safetensors").params
    straight = checkpoint.load(runs["straight"] / "model.safetensors").params
    for name, value in straight.items():
        assert np.array_equal(resumed[name], value), name


@pytest.mark.parametrize("run, flags, says", [
    ("unfrozen", ["--freeze-embeddings"], "--freeze-embeddings True (the run has False)"),
    ("frozen", ["--init-embeddings", "other.txt"], "--init-embeddings other.txt (the run has "),
])
def test_resume_refuses_a_changed_flag(runs: dict[str, Path], run: str, flags: list[str], says: str) -> None:
    before = (runs[run] / "metrics.jsonl").read_bytes()
    code, _, err = cli("train", "--resume", str(runs[run]), *flags, "--steps", "3", "--no-progress")
    assert code == 2 and says in one_error(err)
    assert (runs[run] / "metrics.jsonl").read_bytes() == before


# ---- mistakes: (flags, what the message says, whether the run folder may exist by then)

ERRORS = {
    "freeze alone": (["--freeze-embeddings"], "--freeze-embeddings needs --init-embeddings"),
    "names": (["--task", "names", "--embed-dim", "6", "--init-embeddings", "{v}"], "--task names reads characters"),
    "charlm": (["--task", "charlm", "--init-embeddings", "{v}"], "--task charlm has no word embedding"),
    "char level": (["--level", "char", "--init-embeddings", "{v}"], "--level char embeds characters"),
    "dimension": (["--embed-dim", "5", "--init-embeddings", "{v}"], "--embed-dim 5 differs from the dimension"),
    "missing file": (["--init-embeddings", "{d}/gone.txt"], "gone.txt: cannot read"),
    "no header": (["--init-embeddings", "{d}/glove.txt"], "not a word2vec file: line 1 should be"),
}
LATE_ERRORS = {  # found once the file is read, after the vocabulary is fitted
    "bad row": (["--init-embeddings", "{d}/bad.txt"], "bad.txt:3: expected a word and 6 values"),
    "no shared word": (["--init-embeddings", "{d}/strangers.txt"], "strangers.txt shares no word with the vocabulary"),
}


@pytest.fixture
def files(vectors: Path, tmp_path: Path) -> dict[str, str]:
    (tmp_path / "glove.txt").write_text("the 1 2 3 4 5 6\n")
    write_vectors(tmp_path / "bad.txt", ["the", "plot"])
    (tmp_path / "bad.txt").write_text((tmp_path / "bad.txt").read_text().replace("\nplot ", "\nplot 1 "))
    write_vectors(tmp_path / "strangers.txt", ["zebra", "The", "<pad>"])
    return {"v": str(vectors), "d": str(tmp_path)}


@pytest.mark.parametrize("case", sorted(ERRORS) + sorted(LATE_ERRORS))
def test_each_mistake_is_one_line_and_exit_2(case: str, files: dict[str, str], tmp_path: Path) -> None:
    flags, says = {**ERRORS, **LATE_ERRORS}[case]
    out = tmp_path / "run"
    code, _, err = cli(*TINY, "--steps", "2", *(f.format(**files) for f in flags), "--out", str(out))
    assert code == 2 and says in one_error(err)
    if case in ERRORS:
        assert not out.exists()  # refused with the other flags, before the run folder is made
    else:
        assert not (out / "config.json").exists()
