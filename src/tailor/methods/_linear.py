"""A logistic-regression head on fixed features, fitted with scikit-learn and saved as plain arrays.

Saved as ``.npz`` (not a pickle) so loading an exported model runs no code. Prediction applies the
fitted coefficients directly, which gives exactly scikit-learn's decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..costs.usage import Usage
from ..types import Prediction

HEAD_FILE = "head.npz"
"""Where a method with a linear head saves it."""


@dataclass(frozen=True)
class LinearHead:
    coef: np.ndarray  # (n_classes, dim), or (1, dim) for two classes
    intercept: np.ndarray
    classes: tuple[str, ...]

    @classmethod
    def fit(cls, x: np.ndarray, y: Sequence[str], *, C: float = 1.0, max_iter: int = 1000, seed: int = 0) -> LinearHead:
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
        clf.fit(x, list(y))
        return cls(clf.coef_.astype(np.float64), clf.intercept_.astype(np.float64), tuple(str(c) for c in clf.classes_))

    @property
    def n_params(self) -> int:
        return int(self.coef.size + self.intercept.size)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        z = x.astype(np.float64) @ self.coef.T + self.intercept
        if len(self.classes) == 2 and z.shape[1] == 1:
            p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.stack([1 - p1, p1], axis=1)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def save(self, path: Path) -> None:
        np.savez(path, coef=self.coef, intercept=self.intercept, classes=np.array(self.classes, dtype=str))

    @classmethod
    def load(cls, path: Path) -> LinearHead:
        with np.load(path, allow_pickle=False) as f:
            return cls(f["coef"], f["intercept"], tuple(str(c) for c in f["classes"]))


def scores_to_predictions(
    ids: Sequence[str],
    scores: np.ndarray,
    classes: Sequence[str],
    usages: Sequence[Usage] | None = None,
    prompts: Sequence[str] | None = None,
) -> list[Prediction]:
    """One label prediction per row of ``scores`` (argmax), keeping each class's score, with each query's usage
    and rendered prompt when given."""
    out = []
    for i, (ex_id, row) in enumerate(zip(ids, scores)):
        best = classes[int(np.argmax(row))]
        out.append(
            Prediction(
                id=ex_id,
                output=best,
                label=best,
                scores={c: float(s) for c, s in zip(classes, row)},
                prompt=prompts[i] if prompts is not None else None,
                usage=usages[i] if usages is not None else None,
            )
        )
    return out
