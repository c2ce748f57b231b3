"""Metrics for generated text: QA (exact match, token F1), summarization (ROUGE), translation (BLEU, chrF).

Every metric here is on a 0–1 scale like the classification ones, so sacrebleu's 0–100 BLEU and chrF
are divided by 100. A ``None`` prediction (no valid output) is scored as the empty string. Gold is one
reference (``str``) or several (``tuple`` or ``list`` of ``str``, as stored records give them back).

Two shapes of metric, both scoring a whole matrix of bootstrap resamples at once:

- *Per-example* metrics (EM, F1, ROUGE) score each example once; a resample is the mean of its rows.
- *Corpus* metrics (BLEU, chrF) are not means of sentence scores. sacrebleu computes them from
  sufficient statistics (n-gram counts, lengths) summed over the corpus, so each example's statistics
  are extracted once and a resample's corpus score comes from the sum over its rows: the same numbers
  sacrebleu would compute on that resample, without re-tokenizing anything.

sacrebleu and rouge_score are imported only when a metric is prepared, so ``import tailor`` stays fast.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import numpy as np

from .outcomes import Prepared

Gold = str | Sequence[str]

# Bound on the (resamples × examples) count matrix built at once, so a large test set stays in memory.
_CELLS_PER_CHUNK = 4_000_000


def _texts(pred: Sequence[str | None]) -> list[str]:
    return ["" if p is None else p for p in pred]


def _references(gold: Sequence[Gold], n_pred: int) -> list[list[str]]:
    if len(gold) != n_pred:
        raise ValueError(f"{len(gold)} gold targets for {n_pred} predictions")
    if n_pred == 0:
        raise ValueError("no examples to score")
    out = []
    for i, g in enumerate(gold):
        refs = [g] if isinstance(g, str) else list(g or ())
        if not refs or not all(isinstance(r, str) for r in refs):
            raise ValueError(f"example {i} needs at least one reference text, got {g!r}")
        out.append(refs)
    return out


# ---------------------------------------------------------------------------------------------- per example


_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 answer normalization: lowercase, drop ASCII punctuation, drop a/an/the, collapse whitespace."""
    kept = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", kept).split())


def exact_match(pred: str, refs: Sequence[str]) -> float:
    """1.0 if the normalized prediction equals any normalized reference, else 0.0."""
    p = normalize_answer(pred)
    return float(any(p == normalize_answer(r) for r in refs))


def token_f1(pred: str, refs: Sequence[str]) -> float:
    """SQuAD token F1 (bag-of-tokens overlap of the normalized texts), best over the references.

    When a normalized side is empty the score is 1.0 if both are empty, else 0.0. (The v1.1 script gives
    0.0 even when both are empty, which would rank a prediction's F1 below its exact match.)
    """
    p = normalize_answer(pred).split()
    return max(_f1(p, normalize_answer(r).split()) for r in refs)


def _f1(pred: list[str], gold: list[str]) -> float:
    if not pred or not gold:
        return float(pred == gold)
    overlap = sum((Counter(pred) & Counter(gold)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(gold)
    return 2 * precision * recall / (precision + recall)


@cache
def _rouge_scorer(rouge_type: str) -> Any:
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer([rouge_type], use_stemmer=True)


def rouge_f(rouge_type: str, pred: str, refs: Sequence[str]) -> float:
    """ROUGE F-measure from ``rouge_score`` (Porter stemming), best over the references.

    rouge_score's tokenizer keeps only ASCII letters and digits: text in other scripts scores 0.
    """
    scorer = _rouge_scorer(rouge_type)
    return max(scorer.score(r, pred)[rouge_type].fmeasure for r in refs)


@dataclass(frozen=True)
class _MeanPrepared:
    scores: np.ndarray  # one score per example

    @property
    def n(self) -> int:
        return len(self.scores)

    def values(self, idx: np.ndarray) -> np.ndarray:
        return self.scores[idx].mean(axis=1)


@dataclass(frozen=True)
class PerExampleMetric:
    """A metric that is the mean over examples of ``score(prediction, references)``."""

    name: str
    kinds: frozenset[str]
    score: Callable[[str, Sequence[str]], float]

    def prepare(self, gold: Sequence[Any], pred: Sequence[Any], labels: Sequence[str] | None) -> Prepared:
        refs = _references(gold, len(pred))
        return _MeanPrepared(np.array([self.score(p, r) for p, r in zip(_texts(pred), refs)], dtype=float))


# ---------------------------------------------------------------------------------------------- corpus level


@dataclass(frozen=True)
class _CorpusPrepared:
    stats: np.ndarray  # (n, d): each example's sufficient statistics
    scorer: Any  # the sacrebleu metric object that turns summed statistics into a corpus score

    @property
    def n(self) -> int:
        return len(self.stats)

    def values(self, idx: np.ndarray) -> np.ndarray:
        out = []
        step = max(1, _CELLS_PER_CHUNK // max(1, self.n))
        stats = self.stats.astype(float)
        for start in range(0, len(idx), step):
            chunk = idx[start : start + step]
            # How often each example occurs in each resample; then one matrix product sums the statistics
            # of every resample. Float products of integer counts stay exact far beyond any corpus size.
            offset = (np.arange(len(chunk)) * self.n)[:, None]
            counts = np.bincount((chunk + offset).ravel(), minlength=len(chunk) * self.n).reshape(len(chunk), self.n)
            sums = np.rint(counts @ stats).astype(np.int64)
            # sacrebleu's own formula from the summed statistics (plain ints, as in its corpus_score): a few
            # microseconds per resample, and exactly its numbers with every smoothing and option.
            out.extend(self.scorer._compute_score_from_stats(row).score / 100 for row in sums.tolist())
        return np.array(out, dtype=float)


def _sacrebleu(name: Literal["bleu", "chrf"]) -> Any:
    from sacrebleu.metrics import BLEU, CHRF

    return BLEU() if name == "bleu" else CHRF()


@dataclass(frozen=True)
class CorpusMetric:
    """sacrebleu's corpus BLEU or chrF with its default settings (as ``corpus_bleu``/``corpus_chrf``), / 100.

    Several references per example are several reference streams for sacrebleu. Examples with fewer
    references than the most any example has are padded with ``None``, sacrebleu's marker for a
    missing reference, so each example is scored against exactly its own references.
    """

    name: Literal["bleu", "chrf"]
    kinds: frozenset[str]

    def prepare(self, gold: Sequence[Any], pred: Sequence[Any], labels: Sequence[str] | None) -> Prepared:
        refs = _references(gold, len(pred))
        width = max(len(r) for r in refs)
        streams = [[r[j] if j < len(r) else None for r in refs] for j in range(width)]
        scorer = _sacrebleu(self.name)
        # The per-sentence statistics of sacrebleu's corpus_score (a private method: the tests pin it
        # against corpus_bleu/corpus_chrf, so a sacrebleu release that changes it fails loudly).
        stats = scorer._extract_corpus_statistics(_texts(pred), streams)
        return _CorpusPrepared(np.array(stats, dtype=np.int64), scorer)
