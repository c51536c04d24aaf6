"""Pre-trained embedding rows (shared/init_embeddings.py) and frozen parameters (TrainConfig.freeze),
on both backends: the run starts from the file's rows, a frozen table never moves under any
optimizer, and torch and JAX still train alike when it is frozen and the gradient clipped."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from shared.backend import Backend, get_backend
from shared.batching import Batch, pad
from shared.config import ModelConfig, TrainConfig
from shared.errors import SeqbatchError
from shared.init_embeddings import EMBEDDING, Pretrained, apply, match, vectors_dim
from shared.layout import check_freeze, parameter_shapes
from shared.loop import RunLoop
from shared.vocab import Vocab

VOCAB = Vocab(("<pad>", "<unk>", "good", "bad", "plot", "acting", "dull", "fine"))
CFG = ModelConfig(vocab_size=len(VOCAB), num_classes=2, cell="gru", hidden_size=6, embed_dim=4)
# "<pad>" in the file too: its row keeps the seeded init all the same. "zebra" is in no vocabulary.
WORDS = ["bad", "<pad>", "good", "zebra", "dull", "<unk>"]
FOUND = {"bad": 0, "good": 2, "dull": 4, "<unk>": 5}  # vocabulary token -> row of the file
FROZEN = (EMBEDDING,)
CLIP = 0.05  # below every gradient norm here: each clipped step takes the scaling branch


def file_vectors() -> np.ndarray:
    # Values far from N(0, 1)'s, so that a row left at the init can never pass for a file row.
    return (np.random.default_rng(7).standard_normal((len(WORDS), 4)) * 10 + 50).astype(np.float32)


def pretrained() -> Pretrained:
    return match(VOCAB, WORDS, file_vectors(), "v.txt")


def batches(n: int, seed: int = 0) -> list[Batch]:
    """Ragged batches over every token id but <pad> (so every embedding row but <pad>'s has a gradient)."""
    rng = np.random.default_rng(seed)
    return [pad([rng.integers(1, len(VOCAB), k) for k in (3, 8, 5, 1, 6)], rng.integers(0, 2, 5)) for _ in range(n)]


def variant(name: str, **kw: Any) -> TrainConfig:
    """Adam at 0.003, not higher: at 0.01 float32 rounding alone grows past 1e-4 in the gradient norm
    by step 9 (frozen or not), as parity/harness.py notes for its own Adam runs."""
    opt, _, clip = name.partition("+")
    return TrainConfig(optimizer=opt, lr=0.05 if opt == "sgd" else 0.003, momentum=0.9, batch_size=5, steps=10,
                       clip_norm=CLIP if clip else None, **kw)  # type: ignore[arg-type]


# ---- the rows, in NumPy


def test_found_tokens_get_the_files_rows_and_the_rest_keep_theirs() -> None:
    pre = pretrained()
    assert (pre.found, pre.candidates, pre.dim) == (4, 7, 4)
    base = np.random.default_rng(0).standard_normal((len(VOCAB), 4)).astype(np.float32)
    head = np.ones((2, 6), np.float32)
    out = apply({EMBEDDING: base.copy(), "head.weight": head}, pre)
    vectors = file_vectors()
    for token, i in VOCAB.index.items():
        want = vectors[FOUND[token]] if token in FOUND else base[i]
        assert np.array_equal(out[EMBEDDING][i], want), token
    assert out["head.weight"] is head
    assert pre.describe() == "init-embeddings: 4 of 7 vocabulary tokens found in v.txt (D=4); 3 keep the random init"


def test_float64_tables_hold_the_float32_values_exactly() -> None:
    out = apply({EMBEDDING: np.zeros((len(VOCAB), 4))}, pretrained())
    assert out[EMBEDDING].dtype == np.float64
    assert np.array_equal(out[EMBEDDING][VOCAB.index["bad"]], file_vectors()[0].astype(np.float64))


def test_a_file_sharing_no_word_and_a_table_of_another_shape_are_refused() -> None:
    with pytest.raises(SeqbatchError, match="shares no word with the vocabulary"):
        match(VOCAB, ["zebra", "<pad>"], np.ones((2, 4), np.float32), "v.txt")
    with pytest.raises(SeqbatchError, match=r"the embedding table is \[8, 3\]"):
        apply({EMBEDDING: np.zeros((len(VOCAB), 3), np.float32)}, pretrained())
    with pytest.raises(SeqbatchError, match=r"no embedding\.weight"):
        apply({"rnn.weight_ih_l0": np.zeros((3, 8), np.float32)}, pretrained())


def test_the_header_gives_the_dimension(tmp_path: Any) -> None:
    (tmp_path / "v.txt").write_text("2 3\na 1 2 3\nb 4 5 6\n")
    (tmp_path / "glove.txt").write_text("a 1 2 3\n")
    assert vectors_dim(tmp_path / "v.txt") == 3
    with pytest.raises(SeqbatchError, match="not a word2vec file"):
        vectors_dim(tmp_path / "glove.txt")
    with pytest.raises(SeqbatchError, match="cannot read"):
        vectors_dim(tmp_path / "gone.txt")


def test_freeze_names_parameters_and_leaves_one_to_train() -> None:
    check_freeze(CFG, FROZEN)
    with pytest.raises(SeqbatchError, match=r"cannot freeze embedding\.nope"):
        check_freeze(CFG, ("embedding.nope",))
    with pytest.raises(SeqbatchError, match="nothing to train"):
        check_freeze(CFG, tuple(parameter_shapes(CFG)))
    with pytest.raises(SeqbatchError, match="freeze must be parameter names"):
        TrainConfig(freeze="embedding.weight")  # type: ignore[arg-type]


# ---- the run's first weights, on each backend


def start_params(backend: Backend, seed: int = 3) -> dict[str, np.ndarray]:
    """The weights RunLoop.start hands to training, with the file's rows as `initial`."""
    pre = pretrained()
    loop = RunLoop(backend, CFG, TrainConfig(seed=seed), None, lambda params: None,
                   initial=lambda params: apply(params, pre))
    state, done = loop.start({})
    assert done == 0
    return backend.to_params(backend.model_of(state))


def test_a_fresh_run_starts_from_the_files_rows_and_the_seeded_init(backend: Backend) -> None:
    start = start_params(backend)
    seeded = backend.to_params(backend.init(CFG, 3))
    vectors = file_vectors()
    for token, i in VOCAB.index.items():
        want = vectors[FOUND[token]] if token in FOUND else seeded[EMBEDDING][i]
        assert np.array_equal(start[EMBEDDING][i], want), token
    for name in parameter_shapes(CFG):
        if name != EMBEDDING:
            assert np.array_equal(start[name], seeded[name]), name


def test_both_backends_start_from_bit_identical_file_rows() -> None:
    torch_start, jax_start = (start_params(get_backend(name)) for name in ("torch", "jax"))
    ids = [VOCAB.index[t] for t in FOUND]
    assert torch_start[EMBEDDING][ids].tobytes() == jax_start[EMBEDDING][ids].tobytes()


# ---- freezing


def train(backend: Backend, cfg: TrainConfig, params: dict[str, np.ndarray], steps: int
          ) -> tuple[Any, list[dict[str, float]]]:
    state = backend.train_state(backend.from_params(CFG, params), cfg)
    seen = []
    for batch in batches(steps):
        state, m = backend.train_step(state, batch)
        seen.append({"loss": float(m["loss"]), "grad_norm": float(m["grad_norm"])})
    return state, seen


@pytest.mark.parametrize("name", ["sgd", "adam", "sgd+clip", "adam+clip"])
def test_a_frozen_table_stays_bit_identical_while_the_rest_trains(backend: Backend, name: str) -> None:
    start = apply(backend.to_params(backend.init(CFG, 0)), pretrained())
    state, seen = train(backend, variant(name, freeze=FROZEN), start, 5)
    after = backend.to_params(backend.model_of(state))
    assert after[EMBEDDING].tobytes() == start[EMBEDDING].tobytes()
    for param in parameter_shapes(CFG):
        if param != EMBEDDING:
            assert not np.array_equal(after[param], start[param]), f"{param} did not train"
    assert not [k for k in backend.state_arrays(state) if "embedding" in k], "optimizer state for a frozen table"
    if "clip" in name:
        assert all(s["grad_norm"] > CLIP for s in seen)
    unfrozen, _ = train(backend, variant(name), start, 5)  # the control: these batches do move the table
    assert not np.array_equal(backend.to_params(backend.model_of(unfrozen))[EMBEDDING], start[EMBEDDING])


def test_the_clipping_norm_leaves_the_frozen_table_out(backend: Backend) -> None:
    """Step 1's gradient norm is the norm over the trainable parameters' gradients only."""
    start = apply(backend.to_params(backend.init(CFG, 0)), pretrained())
    grads = backend.gradients(backend.from_params(CFG, start), batches(1)[0])
    _, seen = train(backend, variant("sgd+clip", freeze=FROZEN), start, 1)
    trainable = np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for k, g in grads.items() if k != EMBEDDING))
    assert seen[0]["grad_norm"] == pytest.approx(trainable, rel=1e-5)
    assert float(np.linalg.norm(grads[EMBEDDING])) > 1e-3 * trainable  # leaving it in would show


@pytest.mark.parametrize("name", ["sgd+clip", "adam+clip"])
def test_torch_and_jax_train_alike_with_a_frozen_table_and_clipping(name: str) -> None:
    from parity.harness_cli import backend_settings

    with backend_settings("cpu", "float32"):
        torch_b, jax_b = get_backend("torch"), get_backend("jax")
        start = apply(torch_b.to_params(torch_b.init(CFG, 0)), pretrained())
        cfg = variant(name, freeze=FROZEN)
        (t_state, t_seen), (j_state, j_seen) = (train(b, cfg, start, 10) for b in (torch_b, jax_b))
        t_after, j_after = torch_b.to_params(t_state.model), jax_b.to_params(j_state.model)
    for step, (t, j) in enumerate(zip(t_seen, j_seen, strict=True), 1):
        assert j["loss"] == pytest.approx(t["loss"], rel=1e-5), f"loss at step {step}"
        assert j["grad_norm"] == pytest.approx(t["grad_norm"], rel=1e-4), f"grad_norm at step {step}"
    assert t_after[EMBEDDING].tobytes() == j_after[EMBEDDING].tobytes() == start[EMBEDDING].tobytes()
    for param, value in t_after.items():
        scale = float(np.abs(value).max())
        assert float(np.abs(j_after[param] - value).max()) <= 1e-4 * scale, param


def test_no_freeze_keeps_the_train_config_as_it_was() -> None:
    cfg = TrainConfig()
    assert cfg.freeze == () and dataclasses.replace(cfg, freeze=[EMBEDDING]).freeze == FROZEN  # type: ignore[arg-type]
