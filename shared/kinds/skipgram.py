"""The skip-gram kind (word2vec with negative sampling): two embedding tables, a loss per
(centre, context, K negatives) triple; batches come from shared/skipgram_data.py.

    in_embed.weight   [V, D]   v_w: the word as a centre ("input" vectors, the ones exported)
    out_embed.weight  [V, D]   u_w: the word as a context or a negative ("output" vectors)

    loss(c, o, n_1..n_K) = -log sigma(u_o . v_c) - sum_k log sigma(-u_{n_k} . v_c)   (mean over the batch)

Initialisation as word2vec's C tool and gensim: `in_embed` uniform on [-0.5/D, 0.5/D], `out_embed`
zeros (a uniform bound of 0), the same distribution on both backends.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from shared.config import DType, config_from_dict
from shared.errors import SeqbatchError
from shared.kinds import Kind
from shared.skipgram_data import SkipgramBatch

__all__ = ["KIND", "SkipgramBatch", "SkipgramConfig"]


@dataclass(frozen=True)
class SkipgramConfig:
    vocab_size: int
    embed_dim: int = 100
    dtype: DType = "float32"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "embed_dim"):
            if int(getattr(self, name)) < 1:
                raise SeqbatchError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.vocab_size < 2:
            raise SeqbatchError(f"vocab_size must be >= 2 (a word and a negative), got {self.vocab_size}")
        if self.dtype not in ("float32", "float64"):
            raise SeqbatchError(f"dtype must be float32 or float64, got {self.dtype!r}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SkipgramConfig:
        return config_from_dict(cls, d, {"vocab_size"})

    @classmethod
    def from_json(cls, text: str) -> SkipgramConfig:
        try:
            return cls.from_dict(json.loads(text))
        except (ValueError, RecursionError) as e:
            raise SeqbatchError(f"model config is not valid JSON: {e} (in {text[:200]!r})") from e


def skipgram_shapes(cfg: SkipgramConfig) -> dict[str, tuple[int, ...]]:
    return {"in_embed.weight": (cfg.vocab_size, cfg.embed_dim), "out_embed.weight": (cfg.vocab_size, cfg.embed_dim)}


def skipgram_init_bound(cfg: SkipgramConfig, name: str) -> float | None:
    return 0.5 / cfg.embed_dim if name == "in_embed.weight" else 0.0


KIND = Kind("skipgram", SkipgramConfig, skipgram_shapes, skipgram_init_bound, select_metric="loss",
            higher_is_better=False)
