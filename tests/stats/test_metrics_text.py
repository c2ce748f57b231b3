"""Metrics of generated text: hand-computed QA and ROUGE cases, and BLEU/chrF pinned to sacrebleu.

The corpus metrics are checked twice: on the full set against ``corpus_bleu``/``corpus_chrf``, and on
bootstrap resamples against sacrebleu rerun on each resample's rows, which proves that summing the
per-sentence statistics gives sacrebleu's own corpus score.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import sacrebleu
from rouge_score.rouge_scorer import RougeScorer

from tailor.config.task import DEFAULT_METRICS
from tailor.stats.metrics import METRICS, compare_all, estimate, paired_bootstrap, point
from tailor.stats.text_metrics import normalize_answer


def _scores(metric: str, gold: list, pred: list) -> np.ndarray:
    """Each example's own score: the metric on one-example 'resamples'."""
    prep = METRICS[metric].prepare(gold, pred, None)
    return prep.values(np.arange(prep.n)[:, None])


# ---------------------------------------------------------------------------------------------- QA


def test_squad_normalization() -> None:
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("an apple, a pear and THE plum.") == "apple pear and plum"
    # Articles only as whole words; punctuation goes before articles, so "the-end" loses both.
    assert normalize_answer("theatre anthem") == "theatre anthem"
    assert normalize_answer("the-end") == "theend"
    assert normalize_answer("  \t\n ") == ""


@pytest.mark.parametrize(
    ("pred", "gold", "em", "f1"),
    [
        ("The Eiffel Tower!", "eiffel tower", 1.0, 1.0),
        ("an apple", "the apple.", 1.0, 1.0),
        # Two golds: EM on neither; F1 2/3 against each (precision 1/2, recall 1).
        ("Paris, France", ("France", "Paris"), 0.0, 2 / 3),
        # Stored records give golds back as lists.
        ("paris", ["Lyon", "Paris."], 1.0, 1.0),
        # Overlap {red, dog} = 2: precision 2/3, recall 2/4 → F1 = 4/7.
        ("the big red dog", "a red dog barked loudly", 0.0, 4 / 7),
        # Bag of tokens: "go" counts once in the overlap: precision 1/3, recall 1 → F1 = 1/2.
        ("go go go", "go", 0.0, 0.5),
        (None, "Paris", 0.0, 0.0),
        ("", "Paris", 0.0, 0.0),
        ("Paris", "", 0.0, 0.0),
        # Both empty after normalization: a match for EM, and F1 agrees.
        ("", "The", 1.0, 1.0),
        (None, ("a", "somewhere"), 1.0, 1.0),
    ],
)
def test_exact_match_and_f1_by_hand(pred, gold, em, f1) -> None:
    assert _scores("exact_match", [gold], [pred]) == pytest.approx([em])
    assert _scores("f1", [gold], [pred]) == pytest.approx([f1])


def test_per_example_metric_is_the_mean_over_resampled_rows() -> None:
    gold = ["eiffel tower", ("France", "Paris"), "a red dog barked loudly", "go", "x"]
    pred = ["The Eiffel Tower", "Paris, France", "the big red dog", "go go go", None]
    per = np.array([1.0, 2 / 3, 4 / 7, 0.5, 0.0])
    prep = METRICS["f1"].prepare(gold, pred, None)
    assert point(prep) == pytest.approx(per.mean())
    idx = np.random.default_rng(0).integers(0, 5, size=(50, 5))
    assert prep.values(idx) == pytest.approx(per[idx].mean(axis=1))


# ---------------------------------------------------------------------------------------------- ROUGE

SUMMARIES = [
    ("The cat sat on the mat near the door.", "A cat was sitting on the mat."),
    ("Stocks fell sharply on Monday after weak earnings reports.", "Stocks dropped on Monday due to weak earnings."),
    ("The council approved the new park budget.", "The new park budget was approved by the city council."),
    ("Heavy rain flooded several streets downtown.", ""),
    ("Researchers found a new species of frog in the rainforest.", "A new frog species was discovered."),
]


def test_rouge1_by_hand() -> None:
    # Stemmed tokens: pred [the, cat, sat], ref [the, cat, sat, on, the, mat] ("cats" → "cat").
    # Overlap 3: precision 3/3, recall 3/6 → F = 2/3.
    assert _scores("rouge1", ["The cat sat on the mat."], ["The cats sat"]) == pytest.approx([2 / 3])
    # Bigrams of pred: (the cat), (cat sat), both in the reference: precision 1, recall 2/5 → F = 4/7.
    assert _scores("rouge2", ["The cat sat on the mat."], ["The cats sat"]) == pytest.approx([4 / 7])


@pytest.mark.parametrize("rouge_type", ["rouge1", "rouge2", "rougeL"])
def test_rouge_matches_rouge_score(rouge_type: str) -> None:
    scorer = RougeScorer([rouge_type], use_stemmer=True)
    gold, pred = [g for g, _ in SUMMARIES], [p for _, p in SUMMARIES]
    expected = [scorer.score(g, p)[rouge_type].fmeasure for g, p in zip(gold, pred)]
    assert _scores(rouge_type, gold, pred) == pytest.approx(expected, abs=1e-12)
    assert point(METRICS[rouge_type].prepare(gold, pred, None)) == pytest.approx(np.mean(expected), abs=1e-12)

    # Several references: the best F-measure, as rouge_score's own score_multi picks it.
    refs = [(g, "The cat and the council approved rain.") for g in gold]
    expected = [scorer.score_multi(r, p)[rouge_type].fmeasure for r, p in zip(refs, pred)]
    assert _scores(rouge_type, refs, pred) == pytest.approx(expected, abs=1e-12)
    assert _scores(rouge_type, [gold[0]], [None]) == pytest.approx([0.0])


# ---------------------------------------------------------------------------------------------- BLEU and chrF

SOURCES = [
    ("The cat is on the mat.", "The cat sits on the mat.", "There is a cat on the mat."),
    ("He went to the market yesterday.", "Yesterday he went to the market.", "He visited the market yesterday."),
    ("It is raining heavily today.", "Today it rains a lot.", "It is pouring today."),
    ("We will meet at noon in the square.", "We meet at noon on the square.", "Let us meet in the square at noon."),
    ("Thank you very much!", "Thanks a lot!", "Many thanks!"),
    ("The results were better than expected.", "Results exceeded expectations.", "The results beat expectations."),
    ("Short.", "Short one.", "Brief."),
]
HYPS = [
    "The cat sat on the mat.",
    "He went to market yesterday.",
    "Today it is raining a lot.",
    "We meet at noon in the square.",
    "Thank you so much!",
    "Results were better than we expected.",
    "",
]
REF1 = [s[1] for s in SOURCES]
REF2 = [s[2] for s in SOURCES]


def _sacre(name: str, hyps: list[str], streams: list[list]) -> float:
    fn = sacrebleu.corpus_bleu if name == "bleu" else sacrebleu.corpus_chrf
    return fn(hyps, streams).score / 100


@pytest.mark.parametrize("name", ["bleu", "chrf"])
def test_corpus_metrics_equal_sacrebleu(name: str) -> None:
    one = point(METRICS[name].prepare(REF1, HYPS, None))
    assert one == pytest.approx(_sacre(name, HYPS, [REF1]), abs=1e-9)
    assert 0 < one < 1
    two = point(METRICS[name].prepare(list(zip(REF1, REF2)), HYPS, None))
    assert two == pytest.approx(_sacre(name, HYPS, [REF1, REF2]), abs=1e-9)
    assert two != pytest.approx(one)
    # None predictions are empty outputs.
    with_none = [None, *HYPS[1:]]
    assert point(METRICS[name].prepare(REF1, with_none, None)) == pytest.approx(
        _sacre(name, ["", *HYPS[1:]], [REF1]), abs=1e-9
    )


@pytest.mark.parametrize("name", ["bleu", "chrf"])
def test_uneven_reference_counts_pad_with_none(name: str) -> None:
    # Examples with one reference are scored against that one alone (sacrebleu's None = no reference).
    gold = [(a, b) if i % 2 else a for i, (a, b) in enumerate(zip(REF1, REF2))]
    second = [b if i % 2 else None for i, b in enumerate(REF2)]
    assert point(METRICS[name].prepare(gold, HYPS, None)) == pytest.approx(_sacre(name, HYPS, [REF1, second]), abs=1e-9)


@pytest.mark.parametrize("name", ["bleu", "chrf"])
@pytest.mark.parametrize("refs", [1, 2])
def test_bootstrap_values_equal_sacrebleu_on_each_resample(name: str, refs: int) -> None:
    gold = REF1 if refs == 1 else [list(r) for r in zip(REF1, REF2)]  # lists, as stored records give them
    prep = METRICS[name].prepare(gold, HYPS, None)
    idx = np.random.default_rng(3).integers(0, len(HYPS), size=(25, len(HYPS)))
    got = prep.values(idx)
    for row, value in zip(idx, got):
        streams = [[REF1[i] for i in row]] + ([[REF2[i] for i in row]] if refs == 2 else [])
        assert value == pytest.approx(_sacre(name, [HYPS[i] for i in row], streams), abs=1e-9)


def test_corpus_metric_chunks_large_resample_matrices(monkeypatch: pytest.MonkeyPatch) -> None:
    import tailor.stats.text_metrics as mt

    prep = METRICS["bleu"].prepare(REF1, HYPS, None)
    idx = np.random.default_rng(4).integers(0, len(HYPS), size=(40, len(HYPS)))
    whole = prep.values(idx)
    monkeypatch.setattr(mt, "_CELLS_PER_CHUNK", 3 * len(HYPS))  # three resamples per chunk
    assert prep.values(idx) == pytest.approx(whole, abs=0)


# ---------------------------------------------------------------------------------------------- statistics and registry


@pytest.mark.parametrize("name", ["f1", "rougeL", "bleu"])
def test_estimate_and_paired_tests_work_for_text_metrics(name: str) -> None:
    rng = np.random.default_rng(5)
    gold = REF1 * 6
    good = HYPS * 6
    bad = [h if rng.random() < 0.3 else "something else entirely" for h in good]
    prepared = {m: METRICS[name].prepare(gold, p, None) for m, p in (("good", good), ("bad", bad))}
    est = estimate(prepared["good"], resamples=300, seed=0)
    assert 0 <= est.ci_low <= est.value <= est.ci_high <= 1
    diff, lo, hi, _ = paired_bootstrap(prepared["good"], prepared["bad"], resamples=300)
    assert diff > 0 and lo <= diff <= hi
    (result,) = compare_all(prepared, None, name, resamples=300)
    assert result.p_mcnemar is None and result.diff == pytest.approx(diff)


def test_registry_kinds() -> None:
    expected = {
        "accuracy": {"classification"},
        "macro_f1": {"classification"},
        "exact_match": {"qa"},
        "f1": {"qa"},
        "rouge1": {"summarization"},
        "rouge2": {"summarization"},
        "rougeL": {"summarization"},
        "chrf": {"translation"},
        "bleu": {"translation"},
    }
    assert {k: set(m.kinds) for k, m in METRICS.items()} == expected
    assert all(m.name == k for k, m in METRICS.items())
    # Every kind's default metrics exist and accept that kind.
    for kind, names in DEFAULT_METRICS.items():
        assert all(kind in METRICS[n].kinds for n in names), kind


def test_bad_gold_is_refused() -> None:
    with pytest.raises(ValueError, match="2 gold targets for 1 predictions"):
        METRICS["bleu"].prepare(["a", "b"], ["a"], None)
    with pytest.raises(ValueError, match="at least one reference"):
        METRICS["f1"].prepare([()], ["a"], None)
    with pytest.raises(ValueError, match="at least one reference"):
        METRICS["rouge1"].prepare([None], ["a"], None)
    with pytest.raises(ValueError, match="no examples"):
        METRICS["chrf"].prepare([], [], None)


def test_text_metric_libraries_load_lazily() -> None:
    code = (
        "import sys, tailor.stats.metrics; print(sorted(m for m in ('sacrebleu', 'rouge_score') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
