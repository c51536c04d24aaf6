"""Word-vector scores (shared/word_eval.py): Spearman on pair sets, 3CosAdd analogies, out-of-vocabulary
counting, and the real evaluation files' format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared.errors import SeqbatchError
from shared.word_eval import analogies, read_analogies, read_pairs, similarity

WORD_EVAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "word-eval"


def planted() -> tuple[np.ndarray, list[str]]:
    """king - man + woman = queen exactly, among 200 random distractors."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal((3, 50))  # royalty, male, female directions
    vectors = {"man": base[1], "woman": base[2], "king": base[0] + base[1], "queen": base[0] + base[2]}
    words = list(vectors) + [f"w{i}" for i in range(200)]
    matrix = np.vstack([*vectors.values(), rng.standard_normal((200, 50))])
    return matrix, words


def test_3cosadd_finds_the_planted_answer_and_never_a_question_word() -> None:
    vectors, words = planted()
    score = analogies(vectors, words, [("man", "king", "woman", "queen"), ("man", "woman", "man", "woman"),
                                       ("man", "king", "woman", "unicorn")])
    assert score.used == 2 and score.oov == 1
    assert score.value == pytest.approx(0.5)  # the second question's answer is one of its own words: excluded


def test_the_vocabulary_restriction_skips_questions_with_rarer_words() -> None:
    vectors, words = planted()
    score = analogies(vectors, words, [("man", "king", "woman", "queen")], restrict=3)  # queen is 4th
    assert score.used == 0 and score.oov == 1 and np.isnan(score.value)


def test_spearman_is_one_for_a_monotone_match_and_counts_oov_pairs() -> None:
    words = ["a", "b", "c", "d"]
    vectors = np.array([[1.0, 0.0], [1.0, 0.1], [1.0, 1.0], [0.0, 1.0]])
    pairs = [("a", "b", 9.0), ("a", "c", 5.0), ("a", "d", 1.0), ("a", "zzz", 3.0), ("A", "B", 9.0)]
    score = similarity(vectors, words, [(x.lower(), y.lower(), s) for x, y, s in pairs])
    assert score.value == pytest.approx(1.0) and score.used == 4 and score.oov == 1
    reversed_scores = similarity(vectors, words, [("a", "b", 1.0), ("a", "c", 5.0), ("a", "d", 9.0)])
    assert reversed_scores.value == pytest.approx(-1.0)


def test_malformed_lines_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "pairs.tsv"
    bad.write_text("# comment\nlove\tsex\tmany\n")
    with pytest.raises(SeqbatchError, match=r"pairs\.tsv:2"):
        read_pairs(bad)
    bad.write_text(": section\na b c\n")
    with pytest.raises(SeqbatchError, match="four words"):
        read_analogies(bad)


def test_the_real_evaluation_files_read_completely() -> None:
    if not (WORD_EVAL / "questions-words.txt").is_file():
        pytest.skip(f"no word-eval data at {WORD_EVAL}")
    assert len(read_pairs(WORD_EVAL / "wordsim353.tsv")) == 353
    assert len(read_pairs(WORD_EVAL / "simlex999.txt")) == 999
    questions = read_analogies(WORD_EVAL / "questions-words.txt")
    assert len(questions) == 19_544 and questions[0] == ("athens", "greece", "baghdad", "iraq")


def test_the_scores_are_gensims_on_the_same_vectors() -> None:
    """Interop with the library people use (the optional `anchors` extra): gensim's KeyedVectors
    evaluate_word_pairs / evaluate_word_analogies give the same rho, accuracy and counts."""
    gensim = pytest.importorskip("gensim")
    if not (WORD_EVAL / "questions-words.txt").is_file():
        pytest.skip(f"no word-eval data at {WORD_EVAL}")
    questions = read_analogies(WORD_EVAL / "questions-words.txt")
    pairs = read_pairs(WORD_EVAL / "wordsim353.tsv")
    vocab = sorted({w for q in questions for w in q} | {w for p in pairs for w in p[:2]})
    rng = np.random.default_rng(0)
    words = [w for w in vocab if rng.random() < 0.9]  # some words missing: OOV counting is compared too
    base = rng.standard_normal((len(words), 20))
    vectors = base + 0.5 * base[rng.integers(0, len(words), len(words))]  # some structure, not only noise
    kv = gensim.models.KeyedVectors(20)
    kv.add_vectors(words, vectors.astype(np.float32))
    rho = similarity(vectors.astype(np.float32), words, pairs)
    g_rho = kv.evaluate_word_pairs(str(WORD_EVAL / "wordsim353.tsv"), dummy4unknown=False)
    assert rho.value == pytest.approx(g_rho[1].statistic, abs=1e-6)
    assert rho.oov / len(pairs) == pytest.approx(g_rho[2] / 100, abs=1e-3)
    acc = analogies(vectors.astype(np.float32), words, questions, restrict=len(words))
    g_acc, sections = kv.evaluate_word_analogies(str(WORD_EVAL / "questions-words.txt"), restrict_vocab=len(words))
    total = next(s for s in sections if s["section"] == "Total accuracy")
    assert acc.used == len(total["correct"]) + len(total["incorrect"])
    assert acc.value == pytest.approx(g_acc, abs=1e-9)
