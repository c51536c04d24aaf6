"""The checkpoint file: safetensors with PyTorch names, config/vocab/labels as string metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from shared import checkpoint
from shared.checkpoint import Checkpoint
from shared.config import ModelConfig
from shared.errors import SeqbatchError
from shared.layout import parameter_shapes
from shared.vocab import Vocab

CFG = ModelConfig(vocab_size=6, num_classes=3, cell="gru", num_layers=2, bidirectional=True, hidden_size=4, embed_dim=5)
VOCAB = Vocab(("<pad>", "<unk>", "a", "é", "ж", "z"))
LABELS = ["Czech", "Ελληνικά", "Русский"]


def random_params(cfg: ModelConfig, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(shape).astype(np.float32) for k, shape in parameter_shapes(cfg).items()}


def metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="numpy") as f:
        return f.metadata()


def test_round_trip_keeps_params_config_vocab_and_labels(tmp_path: Path) -> None:
    params = random_params(CFG)
    path = tmp_path / "model.safetensors"
    checkpoint.save(path, Checkpoint(CFG, params, VOCAB, LABELS))
    back = checkpoint.load(path)
    assert back.config == CFG
    assert back.params.keys() == params.keys()
    for name, value in params.items():
        np.testing.assert_array_equal(back.params[name], value, err_msg=name)
    assert back.vocab == VOCAB and back.labels == LABELS


def test_metadata_keys_are_the_documented_ones(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    checkpoint.save(path, Checkpoint(CFG, random_params(CFG), VOCAB, LABELS))
    meta = metadata(path)
    assert set(meta) == {"seqbatch.format", "seqbatch.kind", "seqbatch.model", "seqbatch.vocab", "seqbatch.labels"}
    assert meta["seqbatch.format"] == "2" and meta["seqbatch.kind"] == "classifier"
    model = json.loads(meta["seqbatch.model"])
    required = {"cell", "num_layers", "bidirectional", "hidden_size", "embed_dim", "vocab_size", "num_classes"}
    assert required <= set(model)
    assert model["cell"] == "gru" and model["embed_dim"] == 5 and model["bidirectional"] is True
    assert json.loads(meta["seqbatch.vocab"]) == list(VOCAB.tokens)  # index = id
    assert json.loads(meta["seqbatch.labels"]) == LABELS


def test_tensor_names_are_pytorch_state_dict_names(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    checkpoint.save(path, Checkpoint(CFG, random_params(CFG)))
    with safe_open(str(path), framework="numpy") as f:
        assert {k: tuple(f.get_tensor(k).shape) for k in f.keys()} == parameter_shapes(CFG)  # noqa: SIM118
    assert "rnn.weight_ih_l1_reverse" in parameter_shapes(CFG)


def test_one_hot_config_stores_null_embed_dim(tmp_path: Path) -> None:
    cfg = ModelConfig(vocab_size=6, num_classes=2, cell="lstm", hidden_size=3)
    path = tmp_path / "model.safetensors"
    checkpoint.save(path, Checkpoint(cfg, random_params(cfg)))
    assert json.loads(metadata(path)["seqbatch.model"])["embed_dim"] is None
    assert checkpoint.load(path).config == cfg


def test_a_file_without_vocab_or_labels_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "bare.safetensors"
    checkpoint.save(path, Checkpoint(CFG, random_params(CFG)))
    assert not {"seqbatch.vocab", "seqbatch.labels"} & set(metadata(path))
    back = checkpoint.load(path)
    assert back.vocab is None and back.labels is None
    assert back.config == CFG


def test_save_is_atomic_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "run" / "model.safetensors"
    checkpoint.save(path, Checkpoint(CFG, random_params(CFG, 0)))
    checkpoint.save(path, Checkpoint(CFG, random_params(CFG, 1)))  # overwrite in place
    assert [p.name for p in path.parent.iterdir()] == ["model.safetensors"]
    np.testing.assert_array_equal(checkpoint.load(path).params["head.bias"], random_params(CFG, 1)["head.bias"])


def test_a_failed_save_keeps_the_old_file_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.safetensors"
    checkpoint.save(path, Checkpoint(CFG, random_params(CFG, 0)))
    before = path.read_bytes()

    def broken_save_file(tensors: dict, filename: str, metadata: dict) -> None:
        Path(filename).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", broken_save_file)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, Checkpoint(CFG, random_params(CFG, 1)))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_saving_params_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    params = random_params(CFG)
    params["head.weight"] = params["head.weight"][:, :3]
    with pytest.raises(SeqbatchError, match=r"head\.weight has shape \(3, 3\), config wants \(3, 8\)"):
        checkpoint.save(tmp_path / "model.safetensors", Checkpoint(CFG, params))
    assert not list(tmp_path.iterdir())


def write_raw(path: Path, params: dict[str, np.ndarray], cfg: ModelConfig = CFG) -> Path:
    save_file(params, str(path), metadata={"seqbatch.format": "1", "seqbatch.model": cfg.to_json()})
    return path


def test_loading_wrong_shapes_names_the_tensor(tmp_path: Path) -> None:
    params = random_params(CFG)
    params["rnn.weight_hh_l1"] = np.zeros((12, 5), np.float32)
    path = write_raw(tmp_path / "bad.safetensors", params)
    with pytest.raises(SeqbatchError, match=r"bad\.safetensors: rnn\.weight_hh_l1 has shape \(12, 5\)"):
        checkpoint.load(path)


def test_loading_missing_tensors_names_them(tmp_path: Path) -> None:
    params = random_params(CFG)
    del params["embedding.weight"]
    path = write_raw(tmp_path / "bad.safetensors", params)
    with pytest.raises(SeqbatchError, match=r"missing \['embedding\.weight'\]"):
        checkpoint.load(path)


def test_loading_a_checkpoint_of_another_config_is_refused(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "other.safetensors", random_params(CFG), cfg=ModelConfig(vocab_size=6, num_classes=3))
    with pytest.raises(SeqbatchError, match=r"other\.safetensors: tensors do not match the config"):
        checkpoint.load(path)


def test_not_a_safetensors_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(SeqbatchError, match="not a readable safetensors file"):
        checkpoint.load(path)


def test_a_safetensors_file_without_seqbatch_metadata_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "foreign.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(path))
    with pytest.raises(SeqbatchError, match=r"foreign\.safetensors: not a seqbatch checkpoint"):
        checkpoint.load(path)


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(SeqbatchError, match=r"nowhere\.safetensors' does not exist"):
        checkpoint.load(tmp_path / "nowhere.safetensors")


def write_with_meta(path: Path, **meta: str) -> Path:
    save_file(random_params(CFG), str(path), metadata={"seqbatch.format": "1", "seqbatch.model": CFG.to_json(), **meta})
    return path


def test_a_bad_config_in_the_metadata_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "odd.safetensors"
    save_file(random_params(CFG), str(path),
              metadata={"seqbatch.format": "1", "seqbatch.model": CFG.to_json().replace('"gru"', '"foo"')})
    with pytest.raises(SeqbatchError, match=r"odd\.safetensors.*unknown cell 'foo'"):
        checkpoint.load(path)


def test_unreadable_vocab_metadata_is_a_seqbatch_error(tmp_path: Path) -> None:
    path = write_with_meta(tmp_path / "odd.safetensors", **{"seqbatch.vocab": "[broken"})
    with pytest.raises(SeqbatchError, match=r"odd\.safetensors.*seqbatch\.vocab"):
        checkpoint.load(path)


def test_labels_that_disagree_with_the_config_are_refused(tmp_path: Path) -> None:
    # Three classes in the tensors, two names: predict would index past the end of the label list.
    path = write_with_meta(tmp_path / "odd.safetensors", **{"seqbatch.labels": json.dumps(["Czech", "Greek"])})
    with pytest.raises(SeqbatchError, match=r"odd\.safetensors.*labels"):
        checkpoint.load(path)
