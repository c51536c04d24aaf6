"""Tabular data for the MLP kind (shared/tabular.py): the wine set and CSV files, the stratified
60/20/20 split, standardisation with the train split's statistics, the MLP config and layout, and the
checkpoint's `seqbatch.features` entry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from shared import checkpoint
from shared.checkpoint import Checkpoint
from shared.config import ModelConfig
from shared.errors import SeqbatchError
from shared.kinds.mlp import MLPConfig
from shared.layout import parameter_shapes
from shared.tabular import Standardization, Table, read_csv, split_table, wine_table

CFG = MLPConfig(num_features=3, num_classes=2, hidden_sizes=(4,))
SCALING = Standardization(("a", "b", "c"), (1.0, -2.0, 300.0), (0.5, 2.0, 40.0))


def test_wine_splits_60_20_20_stratified_disjoint_and_seeded() -> None:
    table = wine_table()
    assert table.features.shape == (178, 13) and table.label_names == ["class_0", "class_1", "class_2"]
    data = split_table(table, seed=0)
    assert (len(data.train), len(data.val), len(data.test)) == (106, 36, 36)
    counts = np.bincount(table.labels)  # 59, 71, 48
    for part, share in ((data.train, 0.6), (data.val, 0.2), (data.test, 0.2)):
        assert np.abs(np.bincount(part.labels, minlength=3) - share * counts).max() <= 1
    # Disjoint and covering: every raw row lands in exactly one split (rows are distinct in wine).
    rows = data.scaling.apply(table.features)
    keys = {r.tobytes() for r in np.round(rows, 9)}
    parts = [{r.tobytes() for r in np.round(p.features, 9)} for p in (data.train, data.val, data.test)]
    assert len(keys) == 178 and parts[0] | parts[1] | parts[2] == keys
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    again, other = split_table(table, seed=0), split_table(table, seed=1)
    assert np.array_equal(again.test.features, data.test.features)
    assert not np.array_equal(other.test.features, data.test.features)


def test_standardisation_uses_the_train_split_only() -> None:
    data = split_table(wine_table(), seed=0)
    np.testing.assert_allclose(data.train.features.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(data.train.features.std(0), 1, atol=1e-12)
    assert np.abs(data.test.features.mean(0)).max() > 0.05  # held-out rows are not centred on themselves
    full = wine_table().features
    assert not np.allclose(data.scaling.mean, full.mean(0), rtol=1e-3)


def test_a_given_scaling_is_applied_as_it_is() -> None:
    rng = np.random.default_rng(0)
    table = Table(rng.standard_normal((40, 3)) * 10, np.repeat([0, 1], 20), ("a", "b", "c"), ["x", "y"], "t")
    data = split_table(table, seed=0, scaling=SCALING)
    assert data.scaling is SCALING
    raw = data.train.features * np.array(SCALING.std) + np.array(SCALING.mean)
    assert np.isin(np.round(raw, 9), np.round(table.features, 9)).all()
    with pytest.raises(SeqbatchError, match="differ from the ones the model was trained on"):
        split_table(table, seed=0, scaling=Standardization(("a", "b", "z"), (0, 0, 0), (1, 1, 1)))


def test_a_constant_column_gets_std_1_not_a_division_by_zero() -> None:
    x = np.c_[np.arange(10.0), np.full(10, 7.0)]
    s = Standardization.fit(("v", "k"), x)
    assert s.std[1] == 1.0 and np.isfinite(s.apply(x)).all() and (s.apply(x)[:, 1] == 0).all()


def test_csv_labels_are_the_target_values_sorted_numerically_when_numbers(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("\ufeffx, grade ,y\n1,10,2\n3,2,4\n\n5,10,6\n7,9,8\n")  # BOM, spaces, a blank line
    table = read_csv(path, "grade")
    assert table.label_names == ["2", "9", "10"] and table.labels.tolist() == [2, 0, 2, 1]
    assert table.feature_names == ("x", "y") and table.features.tolist() == [[1, 2], [3, 4], [5, 6], [7, 8]]
    path.write_text("x,kind\n1,b\n2,a\n3,B\n")
    assert read_csv(path, "kind").label_names == ["B", "a", "b"]


@pytest.mark.parametrize("content, message", [
    ("a,a,t\n1,2,x\n", "column 'a' appears more than once"),
    ("t\nx\ny\n", "only the target column 't'; no feature columns"),
    ("a,t\n1,\n2,y\n3,x\n", "target column 't' is empty on line 2"),
    ("a,t\n\"1,x\n", "not readable CSV"),
])
def test_malformed_csv_files_name_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(content)
    with pytest.raises(SeqbatchError, match=message) as e:
        read_csv(path, "t")
    assert str(path) in str(e.value)


def test_missing_and_folder_paths_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(SeqbatchError, match="does not exist"):
        read_csv(tmp_path / "none.csv", "t")
    with pytest.raises(SeqbatchError, match="is a folder"):
        read_csv(tmp_path, "t")


def test_the_mlp_layout_is_torch_s_module_list() -> None:
    cfg = MLPConfig(num_features=13, num_classes=3)
    assert list(parameter_shapes(cfg).items()) == [
        ("layers.0.weight", (10, 13)), ("layers.0.bias", (10,)), ("layers.1.weight", (10, 10)),
        ("layers.1.bias", (10,)), ("layers.2.weight", (3, 10)), ("layers.2.bias", (3,))]
    assert MLPConfig.from_dict(json.loads(cfg.to_json())) == cfg  # hidden_sizes: a JSON list back to a tuple


@pytest.mark.parametrize("bad", [{"num_features": 0, "num_classes": 3}, {"num_features": 2, "num_classes": 1},
                                 {"num_features": 2, "num_classes": 3, "hidden_sizes": [4, 0]},
                                 {"num_features": 2, "num_classes": 3, "hidden_sizes": "10,10"},
                                 {"num_features": 2, "num_classes": 3, "hidden_sizes": [4.5]},
                                 {"num_features": 2, "num_classes": 3, "dtype": "float16"}])
def test_mlp_config_validation(bad: dict) -> None:
    with pytest.raises(SeqbatchError):
        MLPConfig.from_dict(bad)


def params_of(cfg: MLPConfig) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in parameter_shapes(cfg).items()}


def test_an_mlp_checkpoint_round_trips_its_labels_split_and_standardisation(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    split = {"task": "tabular", "seed": 4, "target": "t"}
    checkpoint.save(path, Checkpoint(CFG, params_of(CFG), labels=["no", "yes"], split=split, features=SCALING))
    back = checkpoint.load(path)
    assert back.config == CFG and back.labels == ["no", "yes"] and back.split == split and back.features == SCALING
    checkpoint.save(path, Checkpoint(CFG, params_of(CFG)))  # without the optional entries: still a checkpoint
    assert checkpoint.load(path).features is None


@pytest.mark.parametrize("features, message", [
    ({"names": ["a", "b"], "mean": [0, 0], "std": [1, 1]}, "describes 2 features, the model reads 3"),
    ({"names": ["a", "b", "c"], "mean": [0, 0, 0], "std": [1, 0, 1]}, "std must be > 0"),
    ({"names": ["a", "b", "c"], "mean": [0, "x", 0], "std": [1, 1, 1]}, "mean must be a finite number"),
    ({"names": ["a", "b", "c"], "mean": [0, 0, 0]}, "lists `names`, `mean` and `std`"),
])
def test_bad_features_metadata_is_refused_naming_file_and_key(tmp_path: Path, features: dict, message: str) -> None:
    path = tmp_path / "m.safetensors"
    save_file(params_of(CFG), str(path), metadata={"seqbatch.format": "2", "seqbatch.kind": "mlp",
                                                   "seqbatch.model": CFG.to_json(),
                                                   "seqbatch.features": json.dumps(features)})
    with pytest.raises(SeqbatchError, match=message) as e:
        checkpoint.load(path)
    assert str(path) in str(e.value)


def test_features_metadata_belongs_to_an_mlp_only(tmp_path: Path) -> None:
    cls = ModelConfig(vocab_size=5, num_classes=2, hidden_size=3)
    params = {k: np.zeros(s, np.float32) for k, s in parameter_shapes(cls).items()}
    with pytest.raises(SeqbatchError, match="belongs to a model of numeric features"):
        checkpoint.save(tmp_path / "c.safetensors", Checkpoint(cls, params, features=SCALING))
