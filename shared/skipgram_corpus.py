"""Where a skip-gram corpus comes from (issue 13, item 3): all IMDB reviews, a UTF-8 text file, a
folder of `.txt` files, or, without `--data`, the language model's embedded default text.

Every source is tokenised as the IMDB word model's text is (shared/text.py: `<br />` tags and
control characters to spaces, lower-cased, regex word tokens, no truncation). Documents bound the
context windows, as sentences do in gensim and newlines in the word2vec C tool: an IMDB review, or
a non-blank line of a text file.
"""

from __future__ import annotations

from pathlib import Path

from shared.errors import SeqbatchError
from shared.skipgram_data import WordCorpus, build_corpus
from shared.text import TextConfig, tokenize

TEXT = TextConfig(level="word", lowercase=True, stop_words=False, max_len=None)


def corpus_documents(data: str | Path | None) -> tuple[list[list[str]], str]:
    """(token lists, one per document; a description of the source)."""
    from shared.lm_data import default_corpus, load_documents

    if data is None:
        text, source = default_corpus()
        docs = [line for line in text.split("\n") if line.strip()]
    else:
        path = Path(data)
        if not path.exists():
            raise SeqbatchError(f"--data {path}: no such file or folder")
        if path.is_dir() and _is_imdb(path):
            from shared.imdb import load_imdb

            train, test, source = load_imdb(path)
            docs = list(train.texts) + list(test.texts)
            source = f"{source} (all {len(docs):,} train and test reviews)"
        else:
            docs, source = load_documents(path, "line"), str(path)
    tokens = [toks for toks in (tokenize(d, TEXT) for d in docs) if toks]
    if not tokens:
        raise SeqbatchError(f"{source}: no words in the text")
    return tokens, source


def _is_imdb(folder: Path) -> bool:
    from shared.imdb import CSV_FILES, _acl_root

    return all((folder / name).is_file() for name in CSV_FILES.values()) or _acl_root(folder) is not None


def load_corpus(data: str | Path | None, min_count: int) -> tuple[WordCorpus, str]:
    """The corpus of `data` with words seen fewer than `min_count` times dropped, and its source."""
    docs, source = corpus_documents(data)
    return build_corpus(docs, min_count, source=source), source
