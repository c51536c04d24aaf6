"""`seqbatch neighbors` and `seqbatch export` on small hand-made skip-gram checkpoints: known answers,
both backends alike, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shared import checkpoint
from shared.cli import run_captured
from shared.kinds.skipgram import SkipgramConfig
from shared.word_vectors import read_word2vec

# Row order = frequency order. Cosines to "a" (1, 0, 0): b 0.994 (short vector: a dot product would
# rank it last), big 0.707 (the largest dot product), c 0.6, d 0, e -1 (negated).
WORDS = ("a", "big", "c", "b", "d", "e")
VECTORS = np.array([[1, 0, 0], [50, 50, 0], [0.6, 0.8, 0], [0.09, 0.01, 0], [0, 0, 2], [-3, 0, 0]], np.float32)


def cos(u: np.ndarray, v: np.ndarray) -> float:
    u, v = u.astype(np.float64), v.astype(np.float64)
    return float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))


@pytest.fixture(autouse=True)
def _cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBATCH_TORCH_DEVICE", "cpu")


def save_skipgram(path: Path, vectors: np.ndarray = VECTORS, words: tuple[str, ...] | None = WORDS) -> Path:
    cfg = SkipgramConfig(vocab_size=len(vectors), embed_dim=vectors.shape[1], dtype="float32")
    # out_embed differs from in_embed, so that exporting or querying the wrong table is caught
    params = {"in_embed.weight": vectors, "out_embed.weight": np.flip(vectors, axis=0).copy() + 1}
    checkpoint.save(path, checkpoint.Checkpoint(cfg, params, words=words))
    return path


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    return save_skipgram(tmp_path / "sg.safetensors")


def ok(*argv: str) -> str:
    code, out, err = run_captured(*argv)
    assert code == 0, err
    return out


def fails(argv: list[str], *needles: str) -> str:
    """Exit 2, nothing on stdout, exactly one stderr line `seqbatch: error: ...` naming each needle."""
    code, out, err = run_captured(*argv)
    assert code == 2, (out, err)
    assert out == ""
    assert err.startswith("seqbatch: error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    return err


def test_neighbors_are_ranked_by_cosine_not_dot_product(ckpt: Path) -> None:
    out = ok("neighbors", "--checkpoint", str(ckpt), "--top", "10", "a")
    expected = [("b", cos(VECTORS[0], VECTORS[3])), ("big", 2 ** -0.5), ("c", 0.6), ("d", 0.0), ("e", -1.0)]
    assert out == "a: " + ", ".join(f"{w} {c:.3f}" for w, c in expected) + "\n"  # --top 10 > 5 others: all


def test_the_query_word_is_never_its_own_neighbour(ckpt: Path) -> None:
    for word in WORDS:
        listed = json.loads(ok("neighbors", "--checkpoint", str(ckpt), "--json", word))["neighbors"]
        assert word not in [w for w, _ in listed]
        assert sorted(w for w, _ in listed) == sorted(set(WORDS) - {word})


def test_top_limits_the_list_and_the_default_is_ten(tmp_path: Path, ckpt: Path) -> None:
    assert ok("neighbors", "--checkpoint", str(ckpt), "--top", "2", "a") == "a: b 0.994, big 0.707\n"
    assert ok("neighbors", "--checkpoint", str(ckpt), "--top", "1", "e") == "e: d 0.000\n"  # ties: by row
    rng = np.random.default_rng(0)
    many = save_skipgram(tmp_path / "many.safetensors", rng.standard_normal((30, 4)).astype(np.float32),
                         tuple(f"w{i}" for i in range(30)))
    listed = json.loads(ok("neighbors", "--checkpoint", str(many), "--json", "w0"))["neighbors"]
    assert len(listed) == 10


def test_json_lines_carry_the_exact_cosines_in_the_order_of_the_words_given(ckpt: Path) -> None:
    out = ok("neighbors", "--checkpoint", str(ckpt), "--json", "--top", "3", "c", "a", "c")
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["word"] for r in records] == ["c", "a", "c"]
    a = records[1]
    assert [w for w, _ in a["neighbors"]] == ["b", "big", "c"]
    assert a["neighbors"][0][1] == pytest.approx(cos(VECTORS[0], VECTORS[3]), abs=1e-12)
    assert a["neighbors"][1][1] == pytest.approx(2 ** -0.5, abs=1e-7)
    c = records[0]
    assert [w for w, _ in c["neighbors"]] == ["big", "b", "a"]  # 0.990, 0.685, 0.6
    assert [x for _, x in c["neighbors"]] == pytest.approx(
        [cos(VECTORS[2], VECTORS[i]) for i in (1, 3, 0)], abs=1e-7)


@pytest.mark.parametrize("extra", [[], ["--json"], ["--dtype", "float64"]])
def test_torch_and_jax_print_the_same(tmp_path: Path, extra: list[str]) -> None:
    rng = np.random.default_rng(1)
    path = save_skipgram(tmp_path / "r.safetensors", rng.standard_normal((40, 8)).astype(np.float32),
                         tuple(f"w{i}" for i in range(40)))
    outs = {b: ok("neighbors", "--checkpoint", str(path), "--backend", b, *extra, "w0", "w7", "w39") for b in
            ("torch", "jax")}
    assert outs["torch"] == outs["jax"]
    assert outs["torch"].count("\n") == 3


def test_export_text_has_the_input_vectors_most_frequent_first(tmp_path: Path, ckpt: Path) -> None:
    out = tmp_path / "vectors.txt"
    code, stdout, err = run_captured("export", "--checkpoint", str(ckpt), "--format", "word2vec", str(out))
    assert code == 0 and stdout == "" and str(out) in err
    assert out.read_text(encoding="utf-8").splitlines()[0] == "6 3"
    words, vectors = read_word2vec(out, binary=False)
    assert tuple(words) == WORDS
    np.testing.assert_array_equal(vectors, VECTORS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sg.safetensors", "vectors.txt"]  # no temporary left


@pytest.mark.parametrize("fmt", ["word2vec", "word2vec-binary"])
def test_export_limit_keeps_the_most_frequent_words(tmp_path: Path, ckpt: Path, fmt: str) -> None:
    out = tmp_path / "v"
    ok("export", "--checkpoint", str(ckpt), "--format", fmt, "--limit", "3", str(out))
    words, vectors = read_word2vec(out, binary=fmt == "word2vec-binary")
    assert tuple(words) == WORDS[:3]
    np.testing.assert_array_equal(vectors, VECTORS[:3])
    ok("export", "--checkpoint", str(ckpt), "--format", fmt, "--limit", "99", str(out))
    assert tuple(read_word2vec(out)[0]) == WORDS


def test_export_binary_is_the_same_file_on_both_backends_and_gensim_reads_it(tmp_path: Path, ckpt: Path) -> None:
    files = {}
    for backend in ("torch", "jax"):
        files[backend] = tmp_path / f"{backend}.bin"
        ok("export", "--checkpoint", str(ckpt), "--format", "word2vec-binary", "--backend", backend,
           str(files[backend]))
    assert files["torch"].read_bytes() == files["jax"].read_bytes()
    gensim = pytest.importorskip("gensim")
    kv = gensim.models.KeyedVectors.load_word2vec_format(str(files["jax"]), binary=True)
    assert tuple(kv.index_to_key) == WORDS
    np.testing.assert_array_equal(kv.vectors, VECTORS)
    assert kv.most_similar("a", topn=1)[0][0] == "b"


# -- errors: exit 2, one line, no traceback


def test_unknown_words_are_all_named_before_anything_is_printed(ckpt: Path) -> None:
    err = fails(["neighbors", "--checkpoint", str(ckpt), "a", "zebra", "A", "zebra"], "'zebra'", "'A' (but 'a' is)",
                "6 words", str(ckpt))
    assert err.count("zebra") == 1


def test_a_classifier_checkpoint_is_refused(tmp_path: Path) -> None:
    import reference_torch
    from shared.config import ModelConfig

    path = tmp_path / "names.safetensors"
    reference_torch.save(reference_torch.init(ModelConfig(vocab_size=5, num_classes=2, hidden_size=3), 0), path)
    for argv in (["neighbors", "--checkpoint", str(path), "a"], ["export", "--checkpoint", str(path),
                                                                 str(tmp_path / "v.txt")]):
        fails(argv, str(path), "is a classifier checkpoint", f"{argv[0]} needs a skip-gram checkpoint",
              "seqbatch train --task skipgram")
    assert not (tmp_path / "v.txt").exists()


def test_a_language_model_checkpoint_is_refused(tmp_path: Path) -> None:
    from shared.backend import get_backend
    from shared.kinds.lm import LMConfig

    path = tmp_path / "lm.safetensors"
    torch = get_backend("torch")
    torch.save(torch.init(LMConfig(vocab_size=5, num_layers=1, hidden_size=3), 0), path)
    fails(["neighbors", "--checkpoint", str(path), "a"], "is a language model checkpoint",
          "seqbatch train --task skipgram")
    fails(["export", "--checkpoint", str(path), str(tmp_path / "v.txt")], "is a language model checkpoint")


def test_a_checkpoint_without_words_is_refused(tmp_path: Path) -> None:
    path = save_skipgram(tmp_path / "bare.safetensors", words=None)
    fails(["neighbors", "--checkpoint", str(path), "a"], str(path), "without seqbatch.words metadata")
    fails(["export", "--checkpoint", str(path), str(tmp_path / "v.txt")], "without seqbatch.words metadata")


@pytest.mark.parametrize("top", ["0", "-3"])
def test_top_below_one_is_refused(ckpt: Path, top: str) -> None:
    fails(["neighbors", "--checkpoint", str(ckpt), "--top", top, "a"], f"--top must be >= 1, got {top}")


def test_export_errors(tmp_path: Path, ckpt: Path) -> None:
    fails(["export", "--checkpoint", str(ckpt), "--limit", "0", str(tmp_path / "v.txt")], "--limit must be >= 1")
    fails(["export", "--checkpoint", str(ckpt), str(tmp_path)], "is a folder")
    fails(["export", "--checkpoint", str(ckpt), str(ckpt)], "is the checkpoint itself")
    fails(["export", "--checkpoint", str(tmp_path / "gone.safetensors"), str(tmp_path / "v.txt")],
          "gone.safetensors")
    assert checkpoint.load(ckpt).words == WORDS  # untouched
    bad = save_skipgram(tmp_path / "space.safetensors", words=("a", "big", "c", "new york", "d", "e"))
    (tmp_path / "v.txt").write_text("old")
    fails(["export", "--checkpoint", str(bad), str(tmp_path / "v.txt")], "'new york'", "whitespace")
    assert (tmp_path / "v.txt").read_text() == "old"  # a failed export leaves the old file


def test_neighbors_of_a_missing_checkpoint_is_one_line(tmp_path: Path) -> None:
    fails(["neighbors", "--checkpoint", str(tmp_path / "gone.safetensors"), "a"], "gone.safetensors")
