"""Word-vector quality, backend-neutral (issue 13, item 4): Spearman's rho on word-pair similarity sets
(WordSim-353, SimLex-999) and analogy accuracy with 3CosAdd, as gensim's `KeyedVectors`
`evaluate_word_pairs` and `evaluate_word_analogies` compute them (../shared/data/word-eval).

- **Pairs**: tab-separated `word1 word2 score` lines, `#` lines are comments. Words are
  lower-cased; a pair with a word outside the vocabulary is skipped and counted (`oov`). rho is
  scipy's Spearman correlation between the cosine similarities and the human scores.
- **Analogies** (`a b c d`: a is to b as c is to d), in sections headed `: name`: the vocabulary is
  restricted to the `restrict` most frequent words (30,000); a question with any word outside it
  is skipped and counted; the answer is the word w (not a, b or c) maximising cos(w, b - a + c)
  on unit vectors. Accuracy = correct / questions answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from jaxtyping import Float

from shared.errors import SeqbatchError

RESTRICT = 30_000


@dataclass(frozen=True)
class Score:
    value: float  # Spearman rho, or accuracy in [0, 1]; nan when nothing could be scored
    used: int  # pairs or questions scored
    oov: int  # skipped: a word outside the (restricted) vocabulary


def read_pairs(path: Path) -> list[tuple[str, str, float]]:
    pairs = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        try:
            pairs.append((parts[0].lower(), parts[1].lower(), float(parts[2])))
        except (IndexError, ValueError) as e:
            raise SeqbatchError(f"{path}:{n}: expected `word<TAB>word<TAB>score`, got {line[:80]!r}") from e
    return pairs


def read_analogies(path: Path) -> list[tuple[str, str, str, str]]:
    questions = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith(":"):
            continue
        words = line.lower().split()
        if len(words) != 4:
            raise SeqbatchError(f"{path}:{n}: expected four words, got {line[:80]!r}")
        questions.append((words[0], words[1], words[2], words[3]))
    return questions


def _unit(vectors: Float[np.ndarray, "vocab dim"]) -> Float[np.ndarray, "vocab dim"]:
    v = np.asarray(vectors, np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms == 0, 1, norms)


def similarity(vectors: Float[np.ndarray, "vocab dim"], words: list[str] | tuple[str, ...],
               pairs: list[tuple[str, str, float]]) -> Score:
    from scipy.stats import spearmanr

    index = {w: i for i, w in enumerate(words)}
    unit = _unit(vectors)
    cos, human = [], []
    for a, b, score in pairs:
        if a in index and b in index:
            cos.append(float(unit[index[a]] @ unit[index[b]]))
            human.append(score)
    oov = len(pairs) - len(cos)
    rho = float(spearmanr(cos, human).statistic) if len(cos) >= 2 else float("nan")
    return Score(rho, len(cos), oov)


def analogies(vectors: Float[np.ndarray, "vocab dim"], words: list[str] | tuple[str, ...],
              questions: list[tuple[str, str, str, str]], *, restrict: int = RESTRICT, chunk: int = 1024) -> Score:
    """3CosAdd over the first `restrict` words (`words` must be most frequent first)."""
    limit = min(restrict, len(words))
    index = {w: i for i, w in enumerate(words[:limit])}
    known = [q for q in questions if all(w in index for w in q)]
    if not known:
        return Score(float("nan"), 0, len(questions))
    ids = np.array([[index[w] for w in q] for q in known])
    unit = _unit(vectors[:limit])
    correct = 0
    for lo in range(0, len(ids), chunk):
        q = ids[lo:lo + chunk]
        target = unit[q[:, 1]] - unit[q[:, 0]] + unit[q[:, 2]]
        scores = target @ unit.T
        rows = np.arange(len(q))[:, None]
        scores[rows, q[:, :3]] = -np.inf  # the question's own words are never the answer
        correct += int(np.sum(np.argmax(scores, axis=1) == q[:, 3]))
    return Score(correct / len(known), len(known), len(questions) - len(known))


# -- the three standard sets, found in one folder

EVAL_FILES = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt", "analogy": "questions-words.txt"}
EVAL_ENV = "SEQBATCH_WORD_EVAL"


def find_eval_dir(given: Path | None = None) -> Path | None:
    """The folder holding EVAL_FILES: `given` (--word-eval; refused if it lacks them), else
    $SEQBATCH_WORD_EVAL, else the copy the gensim wheel ships (gensim/test/test_data, when gensim is
    installed), else None (scores are then not computed)."""
    import os

    if given is not None:
        missing = [f for f in EVAL_FILES.values() if not (given / f).is_file()]
        if missing:
            raise SeqbatchError(f"--word-eval {given}: missing {', '.join(missing)} (expected "
                                f"{', '.join(EVAL_FILES.values())}, e.g. ../shared/data/word-eval)")
        return given
    candidates = [Path(os.environ[EVAL_ENV])] if os.environ.get(EVAL_ENV) else []
    try:
        import importlib.util

        spec = importlib.util.find_spec("gensim")
        if spec is not None and spec.origin is not None:
            candidates.append(Path(spec.origin).parent / "test" / "test_data")
    except (ImportError, ValueError):
        pass
    for folder in candidates:
        if all((folder / f).is_file() for f in EVAL_FILES.values()):
            return folder
    return None


_READ_CACHE: dict[tuple[str, str], list] = {}


def _read(folder: Path, key: str) -> list:
    path = folder / EVAL_FILES[key]
    cache_key = (str(path.resolve()), key)
    if cache_key not in _READ_CACHE:
        _READ_CACHE[cache_key] = read_analogies(path) if key == "analogy" else read_pairs(path)
    return _READ_CACHE[cache_key]


def score_all(vectors: Float[np.ndarray, "vocab dim"], words: list[str] | tuple[str, ...],
              folder: Path) -> dict[str, float | int]:
    """`wordsim353`, `simlex999` (Spearman rho) and `analogy` (3CosAdd accuracy over the RESTRICT
    most frequent words), each with `<key>_used` and `<key>_oov` counts."""
    out: dict[str, float | int] = {}
    for key in EVAL_FILES:
        items = _read(folder, key)
        score = analogies(vectors, words, items) if key == "analogy" else similarity(vectors, words, items)
        out[key] = score.value
        out[f"{key}_used"] = score.used
        out[f"{key}_oov"] = score.oov
    return out


def nearest(vectors: Float[np.ndarray, "vocab dim"], words: list[str] | tuple[str, ...], query: str,
            k: int = 10) -> list[tuple[str, float]]:
    """The `k` words of highest cosine similarity to `query` (itself excluded), best first; ties by row."""
    index = {w: i for i, w in enumerate(words)}
    if query not in index:
        raise SeqbatchError(f"{query!r} is not in the vocabulary ({len(words):,} words)")
    unit = _unit(vectors)
    cos = unit @ unit[index[query]]
    cos[index[query]] = -np.inf
    k = min(k, len(words) - 1)
    top = np.argsort(-cos, kind="stable")[:k]
    return [(words[i], float(cos[i])) for i in top]
