"""The checkpoint file: safetensors, PyTorch state_dict names, config and vocabulary in metadata.

Metadata (all strings): `seqbatch.format` = "2"; `seqbatch.kind` = the model kind (`classifier`, `lm`;
see shared/kinds); `seqbatch.model` = that kind's config JSON;
`seqbatch.vocab` = token list JSON (index = id); `seqbatch.labels` = class names JSON;
`seqbatch.text` = the TextConfig JSON (how raw text became tokens; text tasks only, a names
checkpoint has none); `seqbatch.data` = the LMDataConfig JSON (language models: how the text was
batched, which the generator needs). The last four are optional: without vocab and labels a file still gives
logits, but not predictions. Format "1" (written before model kinds existed) had no
`seqbatch.kind` and is read as a classifier.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from shared.errors import SeqbatchError
from shared.kinds import get_kind, kind_of
from shared.layout import parameter_shapes
from shared.lm_data import LMDataConfig
from shared.text import TextConfig
from shared.vocab import Vocab

FORMAT = "2"
READABLE_FORMATS = ("1", "2")  # 1: classifier only, no seqbatch.kind


@dataclass(frozen=True)
class Checkpoint:
    config: Any  # the config of its kind: ModelConfig (classifier), LMConfig (lm), ...
    params: dict[str, np.ndarray]
    vocab: Vocab | None = None
    labels: list[str] | None = None
    text: TextConfig | None = None
    data: LMDataConfig | None = None


def check_params(cfg: Any, params: dict[str, np.ndarray], where: str) -> None:
    """Raise SeqbatchError naming the first missing, extra or mis-shaped tensor."""
    want = parameter_shapes(cfg)
    missing = sorted(want.keys() - params.keys())
    extra = sorted(params.keys() - want.keys())
    if missing or extra:
        raise SeqbatchError(f"{where}: tensors do not match the config (missing {missing}, unexpected {extra})")
    for name, shape in want.items():
        if tuple(params[name].shape) != shape:
            raise SeqbatchError(f"{where}: {name} has shape {tuple(params[name].shape)}, config wants {shape}")


def save(path: str | Path, ckpt: Checkpoint) -> None:
    """Write atomically: a temp file in the same folder, then rename over the target."""
    path = Path(path)
    check_params(ckpt.config, ckpt.params, str(path))
    meta = {"seqbatch.format": FORMAT, "seqbatch.kind": kind_of(ckpt.config).name,
            "seqbatch.model": ckpt.config.to_json()}
    if ckpt.vocab is not None:
        meta["seqbatch.vocab"] = json.dumps(list(ckpt.vocab.tokens), ensure_ascii=False)
    if ckpt.labels is not None:
        meta["seqbatch.labels"] = json.dumps(list(ckpt.labels), ensure_ascii=False)
    if ckpt.text is not None:
        meta["seqbatch.text"] = ckpt.text.to_json()
    if ckpt.data is not None:
        meta["seqbatch.data"] = ckpt.data.to_json()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in ckpt.params.items()}, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load(path: str | Path) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise SeqbatchError(f"checkpoint {str(path)!r} does not exist")
    try:
        params = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise SeqbatchError(f"{path}: not a readable safetensors file ({e})") from e
    fmt = meta.get("seqbatch.format")
    if fmt not in READABLE_FORMATS or "seqbatch.model" not in meta:
        raise SeqbatchError(f"{path}: not a seqbatch checkpoint (format {fmt!r})")
    try:
        kind = get_kind(meta.get("seqbatch.kind", "classifier") if fmt == "2" else "classifier")
        cfg = kind.config.from_json(meta["seqbatch.model"])
    except SeqbatchError as e:
        raise SeqbatchError(f"{path}: seqbatch.kind/seqbatch.model metadata: {e}") from e
    check_params(cfg, params, str(path))
    vocab = Vocab(tuple(_json_list(path, meta, "seqbatch.vocab"))) if "seqbatch.vocab" in meta else None
    labels = _json_list(path, meta, "seqbatch.labels") if "seqbatch.labels" in meta else None
    if vocab is not None and len(vocab) != cfg.vocab_size:
        raise SeqbatchError(f"{path}: seqbatch.vocab has {len(vocab)} tokens, the model expects {cfg.vocab_size}")
    if labels is not None and len(labels) != getattr(cfg, "num_classes", len(labels)):
        raise SeqbatchError(f"{path}: seqbatch.labels has {len(labels)} names, the model has {cfg.num_classes} classes")
    try:
        text = TextConfig.from_json(meta["seqbatch.text"]) if "seqbatch.text" in meta else None
    except SeqbatchError as e:
        raise SeqbatchError(f"{path}: seqbatch.text metadata: {e}") from e
    try:
        data = LMDataConfig.from_json(meta["seqbatch.data"]) if "seqbatch.data" in meta else None
    except SeqbatchError as e:
        raise SeqbatchError(f"{path}: seqbatch.data metadata: {e}") from e
    return Checkpoint(cfg, params, vocab, labels, text, data)


def _json_list(path: Path, meta: dict[str, str], key: str) -> list[str]:
    """A metadata entry that must be a JSON list of strings; SeqbatchError naming file and key if not."""
    try:
        value = json.loads(meta[key])
    except json.JSONDecodeError as e:
        raise SeqbatchError(f"{path}: {key} metadata is not valid JSON ({e})") from e
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SeqbatchError(f"{path}: {key} metadata must be a JSON list of strings")
    return value
