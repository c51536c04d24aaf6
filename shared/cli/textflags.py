"""The text flags of `seqbatch train --task imdb`: tokenization, truncation, vocabulary, subsampling
and the padding study's unmasked layouts, as a TextConfig (shared/text.py)."""

from __future__ import annotations

import argparse

from shared.errors import SeqbatchError
from shared.text import TextConfig

__all__ = ["PADDINGS", "TEXT_FLAGS", "add_text_args", "reject_text_flags", "text_config"]

TEXT_FLAGS: dict[str, str] = {"level": "--level", "max_len": "--max-len", "truncate": "--truncate",
                              "min_freq": "--min-freq", "max_vocab": "--max-vocab", "stop_words": "--stop-words",
                              "keep_case": "--keep-case", "max_train": "--max-train", "max_test": "--max-test",
                              "padding": "--padding"}
PADDINGS: tuple[str, ...] = ("masked", "right", "left")


def add_text_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("text and subsampling (imdb only)")
    t = TextConfig()
    g.add_argument("--level", choices=("word", "char"), default=None, help=f"token level (default {t.level})")
    g.add_argument("--max-len", type=int, default=None,
                   help=f"keep at most N tokens per review; 0 keeps all (default {t.max_len})")
    g.add_argument("--truncate", choices=("pre", "post"), default=None,
                   help=f"which tokens a long review keeps: pre drops the front (keeps the end), post drops the "
                        f"end; with the mask, padding always follows the real tokens (default {t.truncate})")
    g.add_argument("--min-freq", type=int, default=None,
                   help=f"vocabulary: tokens seen at least N times in the train part (default {t.min_freq})")
    g.add_argument("--max-vocab", type=int, default=None,
                   help=f"vocabulary: at most N entries incl. <pad> and <unk>; 0: no cap (default {t.max_vocab})")
    g.add_argument("--stop-words", action="store_true",
                   help="drop scikit-learn's English stop words (that list includes 'not' and 'no')")
    g.add_argument("--keep-case", action="store_true", help="do not lower-case the text")
    g.add_argument("--max-train", type=int, default=None,
                   help="use a stratified sample of N reviews of the original train set (before the 90:10 "
                        "train/validation split); default: all")
    g.add_argument("--max-test", type=int, default=None,
                   help="evaluate on a stratified sample of N test reviews; default: all")
    g.add_argument("--padding", choices=PADDINGS, default=None,
                   help="masked: padding after the review, never read (mask and packing; the default); right: "
                        "every review padded to --max-len after its tokens and the RNN reads the padding, the head "
                        "on the last padded step (no mask, no packing); left: the same with the padding in front "
                        "(the lesson's features[i, -len(row):] recipe). right and left are the padding study's")


def text_config(a: argparse.Namespace) -> TextConfig:
    """The TextConfig from the flags; flags left out keep TextConfig's defaults."""
    base = TextConfig()
    return TextConfig(
        level=a.level or base.level, lowercase=not a.keep_case, stop_words=a.stop_words,
        max_len=base.max_len if a.max_len is None else (a.max_len or None),
        truncate=a.truncate or base.truncate, min_freq=base.min_freq if a.min_freq is None else a.min_freq,
        max_vocab=base.max_vocab if a.max_vocab is None else (a.max_vocab or None),
        mask=(a.padding or "masked") == "masked", pad_side="left" if a.padding == "left" else "right",
    )


def reject_text_flags(a: argparse.Namespace) -> None:
    given = [flag for key, flag in TEXT_FLAGS.items() if getattr(a, key, None) not in (None, False)]
    if given:
        raise SeqbatchError(f"{', '.join(given)} apply to --task imdb only, not names")
