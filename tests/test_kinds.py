"""The model-kind seam: the registry, one file per kind mirrored across the backends, checkpoint format 2."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from shared import checkpoint
from shared.backend import BACKENDS, CONTRACT
from shared.config import ModelConfig
from shared.errors import SeqbatchError
from shared.kinds import KIND_NAMES, get_kind, kind_of
from shared.kinds.lm import LMConfig
from shared.layout import parameter_shapes
from shared.lm_data import LMDataConfig
from shared.vocab import Vocab

LM = LMConfig(vocab_size=7, cell="gru", num_layers=2, hidden_size=5, embed_dim=3)
CLS = ModelConfig(vocab_size=7, num_classes=3, cell="lstm", hidden_size=4)


def test_every_kind_is_registered_and_found_from_its_config() -> None:
    assert set(KIND_NAMES) == {"classifier", "lm", "skipgram", "mlp"}
    assert get_kind("mlp").select_metric == "top1" and get_kind("mlp").higher_is_better
    assert kind_of(LM).name == "lm" and kind_of(CLS).name == "classifier"
    assert get_kind("lm").select_metric == "nats_per_char" and not get_kind("lm").higher_is_better
    with pytest.raises(SeqbatchError, match="unknown model kind"):
        get_kind("transformer")


def test_the_lm_layout_is_torch_s_with_a_head_over_the_vocabulary() -> None:
    shapes = parameter_shapes(LM)
    assert shapes["embedding.weight"] == (7, 3)
    assert shapes["rnn.weight_ih_l0"] == (15, 3) and shapes["rnn.weight_ih_l1"] == (15, 5)
    assert shapes["head.weight"] == (7, 5) and shapes["head.bias"] == (7,)
    assert not any("reverse" in k for k in shapes)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_each_backend_exports_the_contract(backend: str) -> None:
    module = importlib.import_module(BACKENDS[backend])
    assert set(CONTRACT) <= set(module.__all__)
    assert all(hasattr(module, n) for n in module.__all__)


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_the_two_backends_files_for_a_kind_define_the_same_public_names(kind: str) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    torch_mod = importlib.import_module(f"reference_torch.models.{kind}")
    jax_mod = importlib.import_module(f"jax_impl.models.{kind}")
    core = {"init", "from_params", "logits", "losses", "loss", "gradients", "train_state", "train_step", "model_of"}
    for mod in (torch_mod, jax_mod):
        assert core <= {n for n in dir(mod) if not n.startswith("_")}, mod.__name__
    # Beyond the contract, names a backend has no use for: the JAX vmap entry points, torch's kernel choice,
    # the torch DataLoader's batch sampler (the MLP's `loader` in JAX needs none).
    own = {"apply_batch", "batch_losses", "KERNELS", "default_kernel", "SharedOrder"}
    assert set(torch_mod.__all__) - own == set(jax_mod.__all__) - own


def test_an_lm_checkpoint_round_trips_with_its_kind_and_data_config(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    params = {k: rng.standard_normal(s).astype(np.float32) for k, s in parameter_shapes(LM).items()}
    vocab = Vocab(("<pad>", "<unk>", "\n", "a", "b", "c", "d"))
    path = tmp_path / "lm.safetensors"
    checkpoint.save(path, checkpoint.Checkpoint(LM, params, vocab, data=LMDataConfig("documents", "line", 4)))
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    assert meta["seqbatch.format"] == "2" and meta["seqbatch.kind"] == "lm"
    assert json.loads(meta["seqbatch.data"])["batching"] == "documents"
    back = checkpoint.load(path)
    assert back.config == LM and back.vocab == vocab and back.data == LMDataConfig("documents", "line", 4)


def test_a_format_1_file_still_loads_as_a_classifier(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    params = {k: rng.standard_normal(s).astype(np.float32) for k, s in parameter_shapes(CLS).items()}
    path = tmp_path / "old.safetensors"
    save_file(params, str(path), metadata={"seqbatch.format": "1", "seqbatch.model": CLS.to_json()})
    assert checkpoint.load(path).config == CLS


def test_an_lm_config_under_format_1_is_refused_naming_the_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    params = {k: rng.standard_normal(s).astype(np.float32) for k, s in parameter_shapes(LM).items()}
    path = tmp_path / "odd.safetensors"
    save_file(params, str(path), metadata={"seqbatch.format": "1", "seqbatch.model": LM.to_json()})
    with pytest.raises(SeqbatchError, match=r"odd\.safetensors.*num_classes"):
        checkpoint.load(path)


@pytest.mark.parametrize("bad", [{"vocab_size": 0}, {"vocab_size": 5, "dropout": float("nan")},
                                 {"vocab_size": 5, "cell": "transformer"}])
def test_lm_config_validation(bad: dict) -> None:
    with pytest.raises(SeqbatchError):
        LMConfig.from_dict(bad)
