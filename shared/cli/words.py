"""`seqbatch neighbors` and `seqbatch export` for skip-gram checkpoints (issue 13, item 4).

Both read the checkpoint's input vectors (`in_embed.weight`) through a backend (--backend torch|jax),
as `seqbatch eval` does, so that either backend reads a checkpoint and gives the same output; the
formats themselves are in shared/word_vectors.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from shared import checkpoint
from shared.backend import get_backend
from shared.cli.common import _backend_arg, _eval_dtype_arg, _load_model, _stderr
from shared.cli.lm import is_lm
from shared.cli.skipgram import is_skipgram, words_of
from shared.errors import SeqbatchError
from shared.runs import dumps as strict_json

FORMATS: dict[str, bool] = {"word2vec": False, "word2vec-binary": True}  # --format -> binary


def _skipgram_words(ckpt: checkpoint.Checkpoint, path: Path, command: str) -> tuple[str, ...]:
    """The checkpoint's words, or a one-line error when it is not a skip-gram checkpoint with words."""
    if not is_skipgram(ckpt):
        kind = "a language model" if is_lm(ckpt) else "a classifier"
        raise SeqbatchError(f"{path} is {kind} checkpoint; {command} needs a skip-gram checkpoint "
                            "(from `seqbatch train --task skipgram`)")
    return words_of(ckpt, path)


def _input_vectors(a: argparse.Namespace, ckpt: checkpoint.Checkpoint, dtype: str | None) -> np.ndarray:
    backend = get_backend(a.backend)
    model = _load_model(backend, ckpt, dtype)
    return np.asarray(backend.to_params(model)["in_embed.weight"])


def add_neighbors(sub: Any) -> None:
    p = sub.add_parser("neighbors", help="nearest words by cosine similarity in a skip-gram checkpoint",
                       description="For each WORD, print the --top words whose input vectors have the highest "
                                   "cosine similarity to its own (the word itself excluded), best first.")
    p.add_argument("--checkpoint", type=Path, required=True,
                   help="model.safetensors of a `seqbatch train --task skipgram` run")
    _backend_arg(p)
    p.add_argument("--top", type=int, default=10, metavar="N", help="neighbours to show per word (default 10)")
    p.add_argument("--json", action="store_true",
                   help='print one JSON object per word, {"word": ..., "neighbors": [[word, cosine], ...]}, '
                        "instead of text")
    _eval_dtype_arg(p)
    p.add_argument("words", nargs="+", metavar="WORD", help="words to look up (as in the vocabulary: case matters)")
    p.set_defaults(func=cmd_neighbors)


def cmd_neighbors(a: argparse.Namespace) -> int:
    from shared.word_eval import nearest

    if a.top < 1:
        raise SeqbatchError(f"--top must be >= 1, got {a.top}")
    ckpt = checkpoint.load(a.checkpoint)
    words = _skipgram_words(ckpt, a.checkpoint, "neighbors")
    known = set(words)
    unknown = list(dict.fromkeys(w for w in a.words if w not in known))
    if unknown:
        hints = [f"{w!r} (but {w.lower()!r} is)" if w.lower() in known else repr(w) for w in unknown]
        raise SeqbatchError(f"not in the vocabulary of {a.checkpoint} ({len(words):,} words): {', '.join(hints)}")
    vectors = _input_vectors(a, ckpt, a.dtype)
    for word in a.words:
        found = nearest(vectors, words, word, a.top)
        if a.json:
            print(strict_json({"word": word, "neighbors": [[w, cos] for w, cos in found]}))
        else:
            print(f"{word}: " + ", ".join(f"{w} {cos:.3f}" for w, cos in found))
    return 0


def add_export(sub: Any) -> None:
    p = sub.add_parser("export", help="write a skip-gram checkpoint's word vectors in the word2vec format",
                       description="Write the input vectors of a skip-gram checkpoint, most frequent word first, in "
                                   "the word2vec text or binary format that the word2vec C tool and gensim's "
                                   "KeyedVectors.load_word2vec_format read. Values are float32 (text: 9 "
                                   "significant digits, which read back exactly).")
    p.add_argument("--checkpoint", type=Path, required=True,
                   help="model.safetensors of a `seqbatch train --task skipgram` run")
    p.add_argument("--format", choices=sorted(FORMATS), default="word2vec",
                   help="word2vec: text, a `V D` line then `word v1 ... vD` per line (UTF-8); word2vec-binary: "
                        "`V D` then per word `word ` and D little-endian float32 (default word2vec)")
    _backend_arg(p)
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="keep only the N most frequent words (default: all)")
    p.add_argument("out", type=Path, metavar="OUT", help="file to write (replaced atomically if it exists)")
    p.set_defaults(func=cmd_export)


def cmd_export(a: argparse.Namespace) -> int:
    from shared.paths import writable_file
    from shared.word_vectors import write_word2vec

    if a.limit is not None and a.limit < 1:
        raise SeqbatchError(f"--limit must be >= 1, got {a.limit}")
    out = writable_file(a.out, "OUT")
    if out.exists() and out.resolve() == Path(a.checkpoint).expanduser().resolve():
        raise SeqbatchError(f"OUT {out} is the checkpoint itself; name another file")
    ckpt = checkpoint.load(a.checkpoint)
    words = _skipgram_words(ckpt, a.checkpoint, "export")
    vectors = _input_vectors(a, ckpt, None)
    n = len(words) if a.limit is None else min(a.limit, len(words))
    write_word2vec(out, words[:n], vectors[:n], binary=FORMATS[a.format])
    _stderr(f"wrote {out}: {n:,} words x {vectors.shape[1]} dimensions ({a.format})")
    return 0
