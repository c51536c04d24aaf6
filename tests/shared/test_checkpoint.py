"""The checkpoint file: safetensors with PyTorch names, config/vocab/labels as string metadata."""

from __future__ import annotations

import json
import os
import stat
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
    with pytest.raises(SeqbatchError, match=r"nowhere\.safetensors: checkpoint does not exist"):
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


SPLIT = {"seed": 3, "val_fraction": 0.1, "max_train": 1000, "max_test": None, "data_sha256": "ab" * 32}


def test_split_parameters_round_trip_as_a_json_object(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    checkpoint.save(path, Checkpoint(CFG, random_params(CFG), VOCAB, LABELS, split=SPLIT))
    assert json.loads(metadata(path)["seqbatch.split"]) == SPLIT
    assert checkpoint.load(path).split == SPLIT
    checkpoint.save(path, Checkpoint(CFG, random_params(CFG)))
    assert "seqbatch.split" not in metadata(path) and checkpoint.load(path).split is None


@pytest.mark.parametrize("split", [[1, 2], "seed=0", 3, None])
def test_split_metadata_that_is_not_an_object_is_refused(tmp_path: Path, split: object) -> None:
    path = write_with_meta(tmp_path / "odd.safetensors", **{"seqbatch.split": json.dumps(split)})
    with pytest.raises(SeqbatchError, match=r"odd\.safetensors: seqbatch\.split metadata: must be a JSON object"):
        checkpoint.load(path)


def test_saving_split_parameters_that_are_not_json_is_refused(tmp_path: Path) -> None:
    for split in ({"seed": object()}, {"val_fraction": float("nan")}, {1: "a"}):
        with pytest.raises(SeqbatchError, match="split parameters"):
            checkpoint.save(tmp_path / "m.safetensors", Checkpoint(CFG, random_params(CFG), split=split))  # type: ignore[arg-type]


@pytest.mark.parametrize(("key", "tokens", "twice"), [
    ("seqbatch.labels", ["Czech", "Greek", "Czech"], "Czech"),
    ("seqbatch.vocab", ["<pad>", "<unk>", "a", "é", "a", "z"], "a"),
])
def test_duplicate_labels_or_tokens_are_refused_by_name(
    tmp_path: Path, key: str, tokens: list[str], twice: str
) -> None:
    path = write_with_meta(tmp_path / "dup.safetensors", **{key: json.dumps(tokens)})
    with pytest.raises(SeqbatchError, match=rf"dup\.safetensors: {key} metadata lists '{twice}' more than once"):
        checkpoint.load(path)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("seqbatch.model", "[1, 2]", r"seqbatch\.model metadata must be a JSON object, got list"),
    ("seqbatch.model", CFG.to_json().replace('"hidden_size": 4', '"hidden_size": 4.0'), "hidden_size is 4.0, not int"),
    ("seqbatch.model", CFG.to_json().replace('"bidirectional": true', '"bidirectional": 1'), "bidirectional is 1"),
    ("seqbatch.model", CFG.to_json().replace('"hidden_size": 4', '"hidden_size": Infinity'), "Infinity is not JSON"),
    ("seqbatch.vocab", '{"a": 1}', r"seqbatch\.vocab metadata must be a JSON list of strings"),
    ("seqbatch.vocab", '["a", "<pad>", "<unk>", "b", "c", "d"]', r"seqbatch\.vocab metadata: a vocabulary starts with"),
    ("seqbatch.labels", '["a", 2, "c"]', r"seqbatch\.labels metadata must be a JSON list of strings"),
    ("seqbatch.text", '"word"', r"seqbatch\.text metadata: text config must be a JSON object"),
    ("seqbatch.text", '{"max_len": 2.5}', r"seqbatch\.text metadata: text config: max_len must be int or None"),
    ("seqbatch.data", '{"batching": "stream", "doc_unit": "line"}', r"seqbatch\.data metadata: .*lacks \['seed'\]"),
    ("seqbatch.data", '{"batching": "x", "doc_unit": "line", "seed": 0}', "LM batching must be stream or documents"),
])
def test_metadata_of_the_wrong_type_is_a_clean_error(tmp_path: Path, key: str, value: str, message: str) -> None:
    path = write_with_meta(tmp_path / "odd.safetensors", **{key: value})
    with pytest.raises(SeqbatchError, match=message) as info:
        checkpoint.load(path)
    assert str(info.value).startswith(f"{path}: ")


def test_a_folder_or_a_fifo_is_refused_without_reading(tmp_path: Path) -> None:
    with pytest.raises(SeqbatchError, match=r": is a folder, not a checkpoint file"):
        checkpoint.load(tmp_path)
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)  # opening it for reading would block forever
    with pytest.raises(SeqbatchError, match=r"pipe\.safetensors: not a regular file"):
        checkpoint.load(fifo)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file of mode 000")
def test_an_unreadable_file_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    checkpoint.save(path, Checkpoint(CFG, random_params(CFG)))
    path.chmod(0)
    with pytest.raises(SeqbatchError, match=r"model\.safetensors: not readable \(permission denied\)"):
        checkpoint.load(path)


def test_an_os_error_while_reading_is_a_clean_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.safetensors"
    checkpoint.save(path, Checkpoint(CFG, random_params(CFG)))

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(checkpoint, "safe_open", denied)
    with pytest.raises(SeqbatchError, match=r"model\.safetensors: not a readable safetensors file \(PermissionError"):
        checkpoint.load(path)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_the_saved_file_gets_the_mode_of_any_new_file(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        checkpoint.save(tmp_path / "model.safetensors", Checkpoint(CFG, random_params(CFG)))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "model.safetensors").stat().st_mode) == 0o666 & ~umask


def test_save_syncs_the_file_before_the_rename_and_the_folder_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        real_fsync(fd)

    def replace(src: str, dst: object) -> None:
        events.append("rename")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    checkpoint.save(tmp_path / "model.safetensors", Checkpoint(CFG, random_params(CFG)))
    assert events == ["fsync-file", "rename", "fsync-dir"]


def test_save_casts_to_the_config_dtype_and_refuses_what_load_would(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    params = {k: v.astype(np.float64) for k, v in random_params(CFG).items()}
    checkpoint.save(path, Checkpoint(CFG, params))
    assert all(v.dtype == np.float32 for v in checkpoint.load(path).params.values())
    bad = random_params(CFG)
    bad["head.bias"][1] = np.nan
    with pytest.raises(SeqbatchError, match=r"head\.bias has 1 non-finite value.*not written"):
        checkpoint.save(tmp_path / "nan.safetensors", Checkpoint(CFG, bad))
    ints = random_params(CFG)
    ints["head.bias"] = np.zeros(3, np.int64)
    with pytest.raises(SeqbatchError, match=r"head\.bias has dtype int64"):
        checkpoint.save(tmp_path / "int.safetensors", Checkpoint(CFG, ints))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_a_float64_model_round_trips_in_float64(tmp_path: Path) -> None:
    """Digits past float32's precision survive: a float64 model is saved as float64, not rounded."""
    cfg = ModelConfig(vocab_size=6, num_classes=3, cell="lstm", hidden_size=4, dtype="float64")
    rng = np.random.default_rng(1)
    params = {k: rng.standard_normal(shape) for k, shape in parameter_shapes(cfg).items()}
    path = tmp_path / "model.safetensors"
    checkpoint.save(path, Checkpoint(cfg, params))
    back = checkpoint.load(path)
    assert back.config.dtype == "float64"
    for name, value in params.items():
        assert back.params[name].dtype == np.float64, name
        np.testing.assert_array_equal(back.params[name], value, err_msg=name)
