"""The checkpoint file: safetensors, PyTorch state_dict names, config and vocabulary in metadata.

Metadata (all strings): `seqbatch.format` = "2"; `seqbatch.kind` = the model kind (`classifier`, `lm`;
see shared/kinds); `seqbatch.model` = that kind's config JSON;
`seqbatch.vocab` = token list JSON (index = id); `seqbatch.labels` = class names JSON;
`seqbatch.text` = the TextConfig JSON (how raw text became tokens; text tasks only, a names
checkpoint has none); `seqbatch.data` = the LMDataConfig JSON (language models: how the text was
batched, which the generator needs); `seqbatch.split` = a JSON object of the split parameters
the run used (seed, fractions, subsample sizes, a hash of the data: whatever the trainer records,
so that an evaluation can re-create the same split); `seqbatch.features` = the feature names and
the train split's mean and std per feature (MLP on tabular data: how raw rows became inputs,
shared/tabular.py `Standardization`). All but the first three are optional:
without vocab and labels a file still gives logits, but not predictions. Format "1" (written
before model kinds existed) had no `seqbatch.kind` and is read as a classifier.

Tensors: every one holds the config's dtype (float32 or float64; never integers, bool, float16 or
bfloat16, which no backend computes in), all finite. `save` casts floating tensors to the config's
dtype (the backends compute in it anyway) and refuses what `load` would refuse, so that no run
ends by writing a file nothing can read.

`load` treats the file as hostile. safetensors holds tensors and a string map only: reading runs
no code (no pickle). Every way a file can be wrong (missing, a folder, truncated, random bytes,
metadata that is not JSON or not of the documented types, duplicate labels or tokens, tensors of
another name, shape or dtype, NaN or infinite values) ends in one SeqbatchError whose message
starts with the file's path; the tensors are read only after the header has passed.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from shared.errors import SeqbatchError
from shared.kinds import get_kind, kind_of
from shared.layout import parameter_shapes
from shared.lm_data import LMDataConfig
from shared.tabular import Standardization
from shared.text import TextConfig
from shared.vocab import Vocab

FORMAT = "2"
READABLE_FORMATS = ("1", "2")  # 1: classifier only, no seqbatch.kind
DTYPE_TAGS: dict[str, str] = {"float32": "F32", "float64": "F64"}  # config dtype -> safetensors dtype


@dataclass(frozen=True)
class Checkpoint:
    config: Any  # the config of its kind: ModelConfig (classifier), LMConfig (lm), ...
    params: dict[str, np.ndarray]
    vocab: Vocab | None = None
    labels: list[str] | None = None
    text: TextConfig | None = None
    data: LMDataConfig | None = None
    split: dict[str, Any] | None = None  # the split parameters the run used (a JSON object)
    words: tuple[str, ...] | None = None  # skip-gram: the word of each embedding row (no pad or unk)
    features: Standardization | None = None  # MLP: feature names, train means and stds (shared/tabular.py)


def check_shapes(cfg: Any, shapes: dict[str, tuple[int, ...]], where: str) -> None:
    """Raise SeqbatchError naming the first missing, extra or mis-shaped tensor."""
    want = parameter_shapes(cfg)
    missing = sorted(want.keys() - shapes.keys())
    extra = sorted(shapes.keys() - want.keys())
    if missing or extra:
        raise SeqbatchError(f"{where}: tensors do not match the config (missing {missing[:8]}, "
                            f"unexpected {extra[:8]}{' ...' if len(missing) > 8 or len(extra) > 8 else ''})")
    for name, shape in want.items():
        if tuple(shapes[name]) != shape:
            raise SeqbatchError(f"{where}: {name} has shape {tuple(shapes[name])}, config wants {shape}")


def check_params(cfg: Any, params: dict[str, np.ndarray], where: str) -> None:
    """Raise SeqbatchError naming the first missing, extra or mis-shaped tensor."""
    check_shapes(cfg, {k: tuple(np.shape(v)) for k, v in params.items()}, where)


def check_finite(params: dict[str, np.ndarray], where: str) -> None:
    """Raise SeqbatchError naming the first tensor with NaN or infinite values, and how many."""
    for name, value in params.items():
        bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
        if bad:
            raise SeqbatchError(f"{where}: {name} has {bad} non-finite value(s) (NaN or infinity) of {np.size(value)}")


def save(path: str | Path, ckpt: Checkpoint) -> None:
    """Write atomically: a temp file in the same folder, synced, then renamed over the target.

    The file gets the mode any new file of the user's gets (0o666 less the umask), not the
    temp file's 0600; the folder is synced after the rename where the system allows it.
    """
    path = Path(path)
    check_params(ckpt.config, ckpt.params, str(path))
    tensors = _tensors_to_write(ckpt, str(path))
    meta = _metadata(ckpt, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())  # the data on disk before the name points at it
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _fsync_dir(path.parent)


def _tensors_to_write(ckpt: Checkpoint, where: str) -> dict[str, np.ndarray]:
    dtype = np.dtype(ckpt.config.dtype)
    out: dict[str, np.ndarray] = {}
    for name, value in ckpt.params.items():
        arr = np.asarray(value)
        if not np.issubdtype(arr.dtype, np.floating):
            raise SeqbatchError(f"{where}: {name} has dtype {arr.dtype}; a checkpoint holds float32 or float64")
        out[name] = np.ascontiguousarray(arr, dtype=dtype)
    try:
        check_finite(out, where)
    except SeqbatchError as e:
        raise SeqbatchError(f"{e}; not written: `load` would refuse it (did training diverge?)") from e
    return out


def _metadata(ckpt: Checkpoint, where: str) -> dict[str, str]:
    meta = {"seqbatch.format": FORMAT, "seqbatch.kind": kind_of(ckpt.config).name,
            "seqbatch.model": ckpt.config.to_json()}
    if ckpt.vocab is not None:
        meta["seqbatch.vocab"] = json.dumps(list(ckpt.vocab.tokens), ensure_ascii=False)
    if ckpt.words is not None:
        if len(ckpt.words) != ckpt.config.vocab_size:
            raise SeqbatchError(f"{where}: {len(ckpt.words)} words for a model of {ckpt.config.vocab_size} rows")
        meta["seqbatch.words"] = json.dumps(list(ckpt.words), ensure_ascii=False)
    if ckpt.labels is not None:
        meta["seqbatch.labels"] = json.dumps(list(ckpt.labels), ensure_ascii=False)
    if ckpt.text is not None:
        meta["seqbatch.text"] = ckpt.text.to_json()
    if ckpt.features is not None:
        _check_feature_count(ckpt.features, ckpt.config, where)
        meta["seqbatch.features"] = ckpt.features.to_json()
    if ckpt.data is not None:
        meta["seqbatch.data"] = ckpt.data.to_json()
    if ckpt.split is not None:
        if not isinstance(ckpt.split, dict) or not all(isinstance(k, str) for k in ckpt.split):
            raise SeqbatchError(f"{where}: the split parameters must be a dict with str keys, got {ckpt.split!r:.80}")
        try:
            meta["seqbatch.split"] = json.dumps(ckpt.split, ensure_ascii=False, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise SeqbatchError(f"{where}: the split parameters are not JSON ({e})") from e
    return meta


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (other threads may be
    creating files); else by the classic set-and-restore."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable; best effort (some systems cannot open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path: str | Path) -> Checkpoint:
    """Read and validate a checkpoint; SeqbatchError starting with the path for anything amiss."""
    path = Path(path)
    where = str(path)
    _check_file(path)
    meta, header = _read_header(path)
    fmt = meta.get("seqbatch.format")
    if fmt not in READABLE_FORMATS or "seqbatch.model" not in meta:
        raise SeqbatchError(f"{where}: not a seqbatch checkpoint (format {fmt!r:.40})")
    cfg = _config(path, meta, fmt, len(header))
    check_shapes(cfg, {name: shape for name, (_, shape) in header.items()}, where)
    want = DTYPE_TAGS[cfg.dtype]
    for name, (dtype, _) in header.items():
        if dtype not in DTYPE_TAGS.values():
            raise SeqbatchError(f"{where}: tensor {name} has dtype {dtype}; a checkpoint holds float32 (F32) or "
                                "float64 (F64) only")
        if dtype != want:
            raise SeqbatchError(f"{where}: tensor {name} is {dtype}, but the config's dtype is {cfg.dtype} "
                                f"({want}); every tensor must be")
    vocab = _vocab(path, meta, cfg)
    labels = _labels(path, meta, cfg)
    text = _optional(path, meta, "seqbatch.text", TextConfig.from_dict)
    data = _optional(path, meta, "seqbatch.data", LMDataConfig.from_dict)
    split = _optional(path, meta, "seqbatch.split", _split)
    words = _words(path, meta, cfg)
    features = _optional(path, meta, "seqbatch.features", Standardization.from_dict)
    if features is not None:
        _check_feature_count(features, cfg, where)
    params = _read_tensors(path, list(header))
    check_finite(params, where)
    return Checkpoint(cfg, params, vocab, labels, text, data, split, words, features)


def _check_file(path: Path) -> None:
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise SeqbatchError(f"{path}: checkpoint does not exist") from None
    except (OSError, ValueError) as e:  # permission denied on a folder above; a NUL in the name
        raise SeqbatchError(f"{path}: cannot be read ({getattr(e, 'strerror', None) or e})") from e
    if stat.S_ISDIR(st.st_mode):
        raise SeqbatchError(f"{path}: is a folder, not a checkpoint file")
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block the reader forever
        raise SeqbatchError(f"{path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise SeqbatchError(f"{path}: not readable (permission denied)")


def _read_header(path: Path) -> tuple[dict[str, str], dict[str, tuple[str, tuple[int, ...]]]]:
    """The metadata and each tensor's (safetensors dtype, shape), reading no tensor data.

    safetensors checks the header (its JSON, and that every tensor's bytes lie within the file)
    and raises SafetensorError, or OSError for a file it cannot open; any other exception from
    the parser on hostile bytes means the same thing, so all become one SeqbatchError.
    """
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = dict(f.metadata() or {})
            header = {}
            for name in f.keys():  # noqa: SIM118 - a safe_open handle is not a dict
                s = f.get_slice(name)
                header[name] = (str(s.get_dtype()), tuple(int(d) for d in s.get_shape()))
    except Exception as e:  # see the docstring
        raise SeqbatchError(f"{path}: not a readable safetensors file ({_one_line(e)})") from e
    return meta, header


def _read_tensors(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    try:
        with safe_open(str(path), framework="numpy") as f:
            return {name: f.get_tensor(name) for name in names}
    except Exception as e:  # as in _read_header: the file changed or is damaged
        raise SeqbatchError(f"{path}: tensor data is not readable ({_one_line(e)})") from e


def _one_line(e: BaseException) -> str:
    """A third-party exception as a short line: users get errors as one line."""
    return f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"


def _json(path: Path, meta: dict[str, str], key: str) -> Any:
    """A metadata entry parsed as strict JSON (no NaN or Infinity); SeqbatchError naming file and key."""
    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(meta[key], parse_constant=no_constant)
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError; RecursionError: [[[[...
        raise SeqbatchError(f"{path}: {key} metadata is not valid JSON ({str(e)[:200]})") from e


def _config(path: Path, meta: dict[str, str], fmt: str, n_tensors: int) -> Any:
    try:
        kind = get_kind(meta.get("seqbatch.kind", "classifier") if fmt == "2" else "classifier")
    except SeqbatchError as e:
        raise SeqbatchError(f"{path}: seqbatch.kind metadata: {e}") from e
    d = _json(path, meta, "seqbatch.model")
    if not isinstance(d, dict):
        raise SeqbatchError(f"{path}: seqbatch.model metadata must be a JSON object, got {type(d).__name__}")
    try:
        cfg = kind.config.from_dict(d)  # field types checked there (shared.config.check_field_types)
    except SeqbatchError as e:
        raise SeqbatchError(f"{path}: seqbatch.kind/seqbatch.model metadata: {e}") from e
    except (ValueError, TypeError, AttributeError, ArithmeticError) as e:
        raise SeqbatchError(f"{path}: seqbatch.model metadata is not a valid config ({str(e)[:200]})") from e
    # The layout loops over layers: a config of 10**9 layers must fail here, not after minutes.
    if getattr(cfg, "num_layers", 0) > n_tensors:
        raise SeqbatchError(f"{path}: seqbatch.model says {cfg.num_layers} layers; the file holds {n_tensors} tensors")
    return cfg


def _string_list(path: Path, meta: dict[str, str], key: str) -> list[str]:
    """A metadata entry that must be a JSON list of distinct strings."""
    value = _json(path, meta, key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SeqbatchError(f"{path}: {key} metadata must be a JSON list of strings")
    twice = [v for v, n in Counter(value).items() if n > 1]
    if twice:
        raise SeqbatchError(f"{path}: {key} metadata lists {twice[0][:40]!r} more than once")
    return value


def _vocab(path: Path, meta: dict[str, str], cfg: Any) -> Vocab | None:
    if "seqbatch.vocab" not in meta:
        return None
    tokens = _string_list(path, meta, "seqbatch.vocab")
    try:
        vocab = Vocab(tuple(tokens))
    except SeqbatchError as e:  # pad and unk are not the first two tokens
        raise SeqbatchError(f"{path}: seqbatch.vocab metadata: {e}") from e
    if len(vocab) != cfg.vocab_size:
        raise SeqbatchError(f"{path}: seqbatch.vocab has {len(vocab)} tokens, the model expects {cfg.vocab_size}")
    return vocab


def _words(path: Path, meta: dict[str, str], cfg: Any) -> tuple[str, ...] | None:
    if "seqbatch.words" not in meta:
        return None
    words = _string_list(path, meta, "seqbatch.words")
    if len(words) != cfg.vocab_size:
        raise SeqbatchError(f"{path}: seqbatch.words has {len(words)} words, the model has {cfg.vocab_size} rows")
    return tuple(words)


def _labels(path: Path, meta: dict[str, str], cfg: Any) -> list[str] | None:
    if "seqbatch.labels" not in meta:
        return None
    labels = _string_list(path, meta, "seqbatch.labels")
    if len(labels) != getattr(cfg, "num_classes", len(labels)):
        raise SeqbatchError(f"{path}: seqbatch.labels has {len(labels)} names, the model has {cfg.num_classes} classes")
    return labels


def _check_feature_count(features: Standardization, cfg: Any, where: str) -> None:
    want = getattr(cfg, "num_features", None)
    if want is None:
        raise SeqbatchError(f"{where}: seqbatch.features belongs to a model of numeric features (mlp), not "
                            f"{kind_of(cfg).name}")
    if len(features.names) != want:
        raise SeqbatchError(f"{where}: seqbatch.features describes {len(features.names)} features, the model "
                            f"reads {want}")


def _split(d: Any) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise SeqbatchError(f"must be a JSON object, got {type(d).__name__}")
    return d


def _optional(path: Path, meta: dict[str, str], key: str, parse: Any) -> Any:
    """`parse(JSON value)` of an optional metadata entry, or None; errors name the file and key."""
    if key not in meta:
        return None
    try:
        return parse(_json(path, meta, key))
    except SeqbatchError as e:
        if str(e).startswith(str(path)):
            raise
        raise SeqbatchError(f"{path}: {key} metadata: {e}") from e
