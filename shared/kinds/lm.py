"""The language-model kind: next-token logits at every step, loss over real positions only.

    inputs   [B, T] int32   the tokens read            h e l l o _ w o r
    targets  [B, T] int32   the next token, each step  e l l o _ w o r l
    lengths  [B]    int32   real steps per row (the mask is derived: arange(T) < lengths)
    reset    bool           start this batch from a zero state (else: the state the last batch left)

The carried state is torch's `h_n` (and `c_n` for an LSTM), `[layers, B, H]`, as NumPy between
calls. Which batch resets it is decided here, in shared/ (`shared/lm_data.py`), never in a backend.
Selected on validation loss (nats per character, lower is better).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from jaxtyping import Bool, Float, Int

from shared.batching import length_mask
from shared.config import GATES, Cell, DType, check_recurrent, config_from_dict
from shared.errors import SeqbatchError
from shared.kinds import Kind
from shared.layout import rnn_shapes, torch_default_bound

# (h,) or (h, c), each [layers, batch, hidden]: torch's layout of an RNN's state.
Carry = tuple[Float[np.ndarray, "layers batch hidden"], ...]


@dataclass(frozen=True)
class LMConfig:
    """Embedding (or one-hot) -> unidirectional RNN/LSTM/GRU stack -> linear head over the vocabulary.

    `dropout` acts between stacked layers and before the head, in training only.
    """

    vocab_size: int
    cell: Cell = "lstm"
    num_layers: int = 2
    hidden_size: int = 256
    embed_dim: int | None = None
    dropout: float = 0.0
    dtype: DType = "float32"

    def __post_init__(self) -> None:
        check_recurrent(self, ("vocab_size", "num_layers", "hidden_size"))

    bidirectional = False  # a language model reads left to right only
    directions = 1

    @property
    def gates(self) -> int:
        return GATES[self.cell]

    @property
    def input_size(self) -> int:
        return self.vocab_size if self.embed_dim is None else self.embed_dim

    @property
    def state_count(self) -> int:
        """Arrays in the carried state: (h, c) for an LSTM, (h,) otherwise."""
        return 2 if self.cell == "lstm" else 1

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LMConfig:
        return config_from_dict(cls, d, {"vocab_size"})

    @classmethod
    def from_json(cls, text: str) -> LMConfig:
        try:
            return cls.from_dict(json.loads(text))
        except (ValueError, RecursionError) as e:
            raise SeqbatchError(f"model config is not valid JSON: {e} (in {text[:200]!r})") from e


def lm_shapes(cfg: LMConfig) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    if cfg.embed_dim is not None:
        shapes["embedding.weight"] = (cfg.vocab_size, cfg.embed_dim)
    shapes |= rnn_shapes(gates=cfg.gates, hidden=cfg.hidden_size, layers=cfg.num_layers, directions=1,
                         input_size=cfg.input_size)
    shapes["head.weight"] = (cfg.vocab_size, cfg.hidden_size)
    shapes["head.bias"] = (cfg.vocab_size,)
    return shapes


def lm_init_bound(cfg: LMConfig, name: str) -> float | None:
    return torch_default_bound(name, cfg.hidden_size, cfg.hidden_size)


KIND = Kind("lm", LMConfig, lm_shapes, lm_init_bound, select_metric="nats_per_char", higher_is_better=False)


@dataclass(frozen=True)
class LMBatch:
    """One batch of next-token prediction (see the module docstring for the layout)."""

    inputs: Int[np.ndarray, "batch time"]
    targets: Int[np.ndarray, "batch time"]
    lengths: Int[np.ndarray, " batch"]
    reset: bool = True
    # Data parallel over processes (torch DDP): this rank's rows of a global batch that has this many
    # real tokens, so that the loss is the global batch's mean (`shard_rows`); None: the batch is whole.
    global_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.inputs.shape != self.targets.shape or self.lengths.shape != self.inputs.shape[:1]:
            raise SeqbatchError(f"LM batch shapes disagree: inputs {self.inputs.shape}, targets "
                                f"{self.targets.shape}, lengths {self.lengths.shape}")

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def mask(self) -> Bool[np.ndarray, "batch time"]:
        return length_mask(self.lengths, self.inputs.shape[1])

    @property
    def n_tokens(self) -> int:
        return int(np.asarray(self.lengths).sum())


def row_block(n: int, rank: int, world: int) -> np.ndarray:
    """The rows of `n` that rank `rank` of `world` holds: block `rank` of `world` contiguous, nearly
    equal ones (the batch's rows, and the carried state's)."""
    return np.array_split(np.arange(n), world)[rank]


def shard_rows(batch: LMBatch, rank: int, world: int) -> LMBatch:
    """Rank `rank`'s rows of a global batch: a contiguous block (block r of `world` nearly equal
    ones), so that a stream row keeps its place, and with it its carried state, window after window;
    marked with the global batch's real tokens."""
    if len(batch) < world:
        raise SeqbatchError(f"a batch of {len(batch)} rows cannot be shared by {world} ranks")
    rows = row_block(len(batch), rank, world)
    return LMBatch(batch.inputs[rows], batch.targets[rows], batch.lengths[rows], batch.reset,
                   global_tokens=batch.n_tokens)


def zero_carry(cfg: LMConfig, batch: int) -> Carry:
    dtype = np.float64 if cfg.dtype == "float64" else np.float32
    return tuple(np.zeros((cfg.num_layers, batch, cfg.hidden_size), dtype) for _ in range(cfg.state_count))


def lm_report(total_nats: float, n_tokens: int) -> dict[str, float | int]:
    """Loss per character in nats and bits, and perplexity, from a summed loss over `n_tokens`."""
    if n_tokens == 0:
        nan = float("nan")
        return {"nats_per_char": nan, "bits_per_char": nan, "perplexity": nan, "n": 0}
    nats = total_nats / n_tokens
    return {"nats_per_char": nats, "bits_per_char": nats / math.log(2), "perplexity": math.exp(nats),
            "n": n_tokens}
