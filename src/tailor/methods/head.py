"""`head` (fine-tune route): a logistic-regression head trained on the frozen encoder's embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from ..backends.protocol import EncoderBackend
from ..contract import Context, MethodOptions
from ..costs.usage import NO_USAGE, Usage, total
from ..types import Example, Prediction, Split
from ._linear import LinearHead, scores_to_predictions


class HeadOptions(MethodOptions):
    C: float = Field(1.0, gt=0)
    """Inverse regularization strength of the logistic regression (smaller = stronger)."""
    max_iter: int = Field(1000, ge=10)
    """Iterations allowed to the solver."""


@dataclass
class HeadAdapted:
    encoder: EncoderBackend
    head: LinearHead
    adapt_usage: Usage = NO_USAGE
    """Embedding the training split (the head's own fit is a few matmuls on the embeddings)."""

    @property
    def truncated(self) -> int:
        """Inputs cut to fit the encoder so far (its running count; the runner reads the difference per split)."""
        return self.encoder.truncated

    @property
    def trainable_params(self) -> int:
        return self.head.n_params

    def predict(self, examples: Sequence[Example]) -> list[Prediction]:
        texts = [ex.text for ex in examples]
        x = self.encoder.embed(texts)
        ids = [ex.id for ex in examples]
        return scores_to_predictions(ids, self.head.probabilities(x), self.head.classes, self.encoder.usage_of(texts))

    def save(self, path: Path) -> None:
        self.head.save(path / "head.npz")


class Head:
    name: ClassVar[str] = "head"
    route: ClassVar[str] = "finetune"
    summary: ClassVar[str] = "Logistic-regression head on frozen sentence embeddings."
    Options: ClassVar[type[HeadOptions]] = HeadOptions
    task_kinds: ClassVar[frozenset[str]] = frozenset({"classification"})
    model_kinds: ClassVar[frozenset[str]] = frozenset({"encoder"})

    def check(self, options: HeadOptions, train: Split, ctx: Context) -> None:
        pass

    def variants(self, options: HeadOptions) -> dict[str, HeadOptions]:
        return {"": options}

    def adapt(self, options: HeadOptions, train: Split, dev: Split | None, ctx: Context) -> HeadAdapted:
        encoder: EncoderBackend = ctx.backend()
        texts = train.texts()
        x = encoder.embed(texts, ctx.progress, "embedding train")
        head = LinearHead.fit(x, train.labels(), C=options.C, max_iter=options.max_iter, seed=ctx.seed)
        return HeadAdapted(encoder, head, total(encoder.usage_of(texts)))

    def load(self, path: Path, ctx: Context) -> HeadAdapted:
        return HeadAdapted(ctx.backend(), LinearHead.load(path / "head.npz"))
