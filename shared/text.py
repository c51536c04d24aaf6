"""Review text to tokens: cleaning, a regex word tokenizer (or characters), stop words, truncation.

One frozen `TextConfig` says how; it travels inside the checkpoint (`seqbatch.text`) so that
`predict` turns new text into the same tokens the model was trained on.

Where the cut falls versus where PAD goes: a `Batch` always stores the real tokens first and PAD
after (the mask is derived from the lengths), so `truncate` decides only WHICH tokens of a long
review are kept ("post": the first `max_len`, "pre": the last `max_len`, as Keras'
`pad_sequences(truncating="pre")` in the seed notes), never where padding is placed. A kept
sequence's length is its real token count, so packing (torch) and masking (JAX) see no PAD.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from shared.errors import SeqbatchError

Level = Literal["word", "char"]
Truncate = Literal["pre", "post"]
PadSide = Literal["right", "left"]

# `<br />`, `<br/>`, `<BR>`: IMDB's paragraph breaks (58 % of reviews), not words.
_BREAK = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)
# C0 and C1 controls, exactly Unicode category Cc: tabs, U+0085 NEL, and the Windows-1252 dashes
# IMDB stores as U+0096/U+0097. They become a space rather than nothing, so that the words they
# separated stay apart.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"\s+")
# Words keep inner apostrophes ("don't", "director's"); "!" and "?" are tokens of their own because
# they carry sentiment, while other punctuation mostly lengthens the sequences the RNN must walk.
_WORD = re.compile(r"\w+(?:'\w+)*|[!?]")
# The most tokens one review may keep: `max_len` may not exceed it, and with `max_len=None` (keep
# all) a longer review is refused rather than turned into a batch as wide as itself (one 10 MB
# review at char level would be a 10-million-step batch). The longest real IMDB review has
# 13,704 characters.
MAX_TOKENS = 20_000


@dataclass(frozen=True)
class TextConfig:
    """How a review becomes tokens, and how the vocabulary is fitted on the training reviews.

    - `level`: "word" (regex tokens) or "char" (characters of the cleaned text, spaces included);
    - `lowercase`: fold case before tokenizing;
    - `stop_words`: drop scikit-learn's ENGLISH_STOP_WORDS (note: that list holds "not", "no",
      "nor", so negations go too); at char level, the words left are re-joined by single spaces;
    - `max_len`: keep at most this many tokens (None: all, up to MAX_TOKENS); `truncate` says
      which ones ("pre" keeps the end, "post" keeps the front);
    - `min_freq`, `max_vocab`: the vocabulary keeps tokens seen `min_freq` times in the training
      part, the `max_vocab` most frequent (pad and unk included); the rest read as <unk>;
    - `mask`, `pad_side`: how batches are padded. The default (mask True, right) is the masked
      model: padding after the real tokens, never read. `mask=False` is the padding study's
      unmasked model: every review padded to `max_len` (right or left) and read whole, padding
      included, the head on the last padded step (the lesson's recipe with left padding).
    """

    level: Level = "word"
    lowercase: bool = True
    stop_words: bool = False
    max_len: int | None = 400
    truncate: Truncate = "pre"
    min_freq: int = 2
    max_vocab: int | None = 20000
    mask: bool = True
    pad_side: PadSide = "right"

    def __post_init__(self) -> None:
        # Types first: the config also comes from a checkpoint's JSON, where 2.5 or "2" can stand.
        for name in ("lowercase", "stop_words", "mask"):
            if not isinstance(getattr(self, name), bool):
                raise SeqbatchError(f"text config: {name} must be bool, got {getattr(self, name)!r:.60}")
        for name, optional in (("max_len", True), ("min_freq", False), ("max_vocab", True)):
            value = getattr(self, name)
            if not (value is None and optional) and (not isinstance(value, int) or isinstance(value, bool)):
                raise SeqbatchError(f"text config: {name} must be int{' or None' if optional else ''}, "
                                    f"got {value!r:.60}")
        if self.level not in ("word", "char"):
            raise SeqbatchError(f"text level must be word or char, got {self.level!r}")
        if self.truncate not in ("pre", "post"):
            raise SeqbatchError(f"truncate must be pre or post, got {self.truncate!r}")
        if self.max_len is not None and not 1 <= self.max_len <= MAX_TOKENS:
            raise SeqbatchError(f"max_len must be in 1..{MAX_TOKENS} or None, got {self.max_len}")
        if self.pad_side not in ("right", "left"):
            raise SeqbatchError(f"pad_side must be right or left, got {self.pad_side!r}")
        if self.pad_side == "left" and self.mask:
            raise SeqbatchError("left padding only matters without the mask: a masked model reads the real tokens "
                                "wherever they sit (the unmasked left layout, --padding left, has mask false)")
        if not self.mask and self.max_len is None:
            raise SeqbatchError("an unmasked model pads every review to max_len: give a max_len")
        if self.min_freq < 1:
            raise SeqbatchError(f"min_freq must be >= 1, got {self.min_freq}")
        if self.max_vocab is not None and self.max_vocab < 3:
            raise SeqbatchError(f"max_vocab must be >= 3 (pad, unk and one token) or None, got {self.max_vocab}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Any) -> TextConfig:
        """From a JSON object; unknown keys are ignored, missing ones take their defaults."""
        if not isinstance(d, dict):
            raise SeqbatchError(f"text config must be a JSON object, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> TextConfig:
        try:
            d = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise SeqbatchError(f"text config is not valid JSON: {e}") from e
        return cls.from_dict(d)


def clean(text: str, cfg: TextConfig, *, squeeze: bool = True) -> str:
    """`<br />` tags and control characters to spaces, runs of whitespace to one, optional lower-case.

    `squeeze=False` leaves whitespace runs alone: the word tokenizer skips them anyway, and on
    50,000 reviews the extra pass costs seconds.
    """
    text = _CONTROL.sub(" ", text)
    while (unbroken := _BREAK.sub(" ", text)) != text:  # "<<br />br />" hides a second tag
        text = unbroken
    if squeeze:
        text = _SPACES.sub(" ", text).strip()
    return text.lower() if cfg.lowercase else text


def words(text: str) -> list[str]:
    """Regex word tokens of already-cleaned text."""
    return _WORD.findall(text)


def tokenize(text: str, cfg: TextConfig) -> list[str]:
    """Clean, then split into words or characters, dropping stop words if asked. No truncation."""
    text = clean(text, cfg, squeeze=cfg.level == "char")
    if cfg.stop_words:
        kept = [w for w in words(text) if w.lower() not in ENGLISH_STOP_WORDS]
        return kept if cfg.level == "word" else list(" ".join(kept))
    return words(text) if cfg.level == "word" else list(text)


def truncate(tokens: list[str], cfg: TextConfig) -> list[str]:
    """At most `max_len` tokens: the last ones for "pre", the first ones for "post"."""
    if cfg.max_len is None or len(tokens) <= cfg.max_len:
        return tokens
    return tokens[-cfg.max_len :] if cfg.truncate == "pre" else tokens[: cfg.max_len]


def text_tokens(text: str, cfg: TextConfig) -> list[str]:
    """The full pipeline for one review: clean, tokenize, truncate. SeqbatchError for a review
    longer than MAX_TOKENS tokens when `max_len` is None (quoting the review's start)."""
    tokens = truncate(tokenize(text, cfg), cfg)
    if len(tokens) > MAX_TOKENS:
        raise SeqbatchError(f"a review of {len(tokens):,} {cfg.level} tokens (it starts {text[:40]!r}) is longer "
                            f"than the {MAX_TOKENS:,} a review may keep; set max_len (--max-len) to truncate")
    return tokens
