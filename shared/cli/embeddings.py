"""`seqbatch train`'s pre-trained word-vector flags: --init-embeddings FILE and --freeze-embeddings.

`check_flags` runs with the other flag checks, before the run folder is made: which task and token
level, the file's header line, --embed-dim against the file's dimension (which it becomes when not
given). `prepare` reads the vectors once the vocabulary is fitted, and only for a fresh run: a
resumed run restores its own weights and keeps only the freezing (its recorded flags come back).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared.config import TrainConfig
from shared.errors import SeqbatchError
from shared.init_embeddings import EMBEDDING, apply, match, vectors_dim
from shared.text import TextConfig
from shared.vocab import Vocab

Initial = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def add_embedding_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("pre-trained word vectors (imdb, word level)")
    g.add_argument("--init-embeddings", type=Path, default=None, metavar="FILE",
                   help="start the embedding table from these word vectors (word2vec text or binary format, "
                        "e.g. exported from a skip-gram run or by gensim): each vocabulary token found in FILE "
                        "gets its vector, the others (and <pad>) keep the seeded random init; words match "
                        "exactly (the vocabulary is lower-cased unless --keep-case). --embed-dim defaults to "
                        "the file's dimension")
    g.add_argument("--freeze-embeddings", action="store_true",
                   help="with --init-embeddings: the embedding table does not change during training (no "
                        "gradient, no optimizer state, not counted in --clip-norm's global norm)")


def check_flags(a: argparse.Namespace, pick: dict[str, Any]) -> None:
    """Refuse the flags where they cannot apply; read FILE's header and set pick["embed_dim"] to its
    dimension (SeqbatchError if --embed-dim says otherwise)."""
    path = a.init_embeddings
    if path is None:
        if a.freeze_embeddings:
            raise SeqbatchError("--freeze-embeddings needs --init-embeddings FILE (it freezes the pre-trained "
                                "table; a random one would never learn)")
        return
    if a.task != "imdb":
        what = "reads characters (one-hot input unless --embed-dim)" if a.task == "names" else "has no word embedding"
        raise SeqbatchError(f"--init-embeddings applies to --task imdb at --level word; --task {a.task} {what}")
    level = a.level or TextConfig().level
    if level != "word":
        raise SeqbatchError(f"--init-embeddings needs word tokens; --level {level} embeds characters")
    dim = vectors_dim(path)
    if a.embed_dim is not None and a.embed_dim != dim:
        raise SeqbatchError(f"--embed-dim {a.embed_dim} differs from the dimension of --init-embeddings {path} "
                            f"({dim}); leave --embed-dim out to take the file's")
    pick["embed_dim"] = dim


@dataclass(frozen=True)
class Embedded:
    """What the flags change in a run: `initial` for `fit` (the file's rows put into the seeded init's
    table; None without --init-embeddings or when resuming), and the freezing."""

    initial: Initial | None
    freeze: bool

    def train_config(self, cfg: TrainConfig) -> TrainConfig:
        return dataclasses.replace(cfg, freeze=(EMBEDDING,)) if self.freeze else cfg


def prepare(a: argparse.Namespace, vocab: Vocab, log: Callable[[str], Any]) -> Embedded:
    """Read and match the vectors (a fresh run with --init-embeddings), logging how many tokens were found."""
    if a.init_embeddings is None or a.resume is not None:  # a resumed run restores its own weights
        return Embedded(None, bool(a.freeze_embeddings))
    from shared.word_vectors import read_word2vec

    words, vectors = read_word2vec(a.init_embeddings)
    pretrained = match(vocab, words, vectors, str(a.init_embeddings))
    log(pretrained.describe())
    return Embedded(lambda params: apply(params, pretrained), bool(a.freeze_embeddings))
