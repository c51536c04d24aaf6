"""Token vocabularies: id 0 pads, id 1 stands for anything unseen."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from shared.errors import SeqbatchError

PAD, UNK = 0, 1
PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"


@dataclass(frozen=True)
class Vocab:
    """An ordered token list (index = id). Characters for names; words or characters for reviews."""

    tokens: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.tokens[:2] != (PAD_TOKEN, UNK_TOKEN):
            raise SeqbatchError(f"a vocabulary starts with {PAD_TOKEN!r}, {UNK_TOKEN!r}; got {self.tokens[:2]!r:.80}")
        if len(set(self.tokens)) != len(self.tokens):
            twice = next(t for t, n in Counter(self.tokens).items() if n > 1)
            raise SeqbatchError(f"vocabulary has duplicate tokens ({twice[:40]!r} twice)")

    @classmethod
    def fit(
        cls, sequences: Iterable[Sequence[str]], *, min_freq: int = 1, max_size: int | None = None
    ) -> Vocab:
        """Tokens seen at least `min_freq` times, most frequent first (ties in code-point
        order), capped at `max_size` entries including pad and unk."""
        counts: Counter[str] = Counter()
        for seq in sequences:
            counts.update(seq)
        kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[: max(0, max_size - 2)]
        return cls((PAD_TOKEN, UNK_TOKEN, *kept))

    @cached_property
    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, seq: Sequence[str]) -> np.ndarray:
        """Token ids (int32); anything outside the vocabulary maps to UNK."""
        index = self.index
        return np.fromiter((index.get(t, UNK) for t in seq), dtype=np.int32, count=len(seq))

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens for ids; PAD ids are dropped."""
        return [self.tokens[i] for i in ids if i != PAD]

    def unknown_count(self, seq: Sequence[str]) -> int:
        index = self.index
        return sum(t not in index for t in seq)

