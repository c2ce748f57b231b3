"""`head` (fine-tune route): a logistic-regression head trained on the frozen encoder's embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from ..backends.protocol import EncoderBackend
from ..config.saved import check_labels
from ..contract import AdaptReport, Context, MethodOptions
from ..costs.usage import NO_USAGE, Usage, total
from ..types import Example, Prediction, Split
from ._linear import HEAD_FILE, LinearHead, scores_to_predictions


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

    def adapt_report(self) -> AdaptReport:
        return AdaptReport(usage=self.adapt_usage)

    def predict(self, examples: Sequence[Example]) -> list[Prediction]:
        texts = [ex.text for ex in examples]
        x = self.encoder.embed(texts)
        ids = [ex.id for ex in examples]
        return scores_to_predictions(ids, self.head.probabilities(x), self.head.classes, self.encoder.usage_of(texts))

    def save(self, path: Path) -> None:
        self.head.save(path / HEAD_FILE)


class Head:
    name: ClassVar[str] = "head"
    route: ClassVar[str] = "finetune"
    summary: ClassVar[str] = "Logistic-regression head on frozen sentence embeddings."
    Options: ClassVar[type[HeadOptions]] = HeadOptions
    task_kinds: ClassVar[frozenset[str]] = frozenset({"classification"})
    model_kinds: ClassVar[frozenset[str]] = frozenset({"encoder"})
    shares_model: ClassVar[bool] = True  # the head trains on the shared encoder's embeddings; the encoder stays frozen
    files: ClassVar[tuple[str, ...]] = (HEAD_FILE,)

    def uses_examples(self, options: HeadOptions) -> bool:
        return True

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

    def load(self, options: HeadOptions, path: Path, ctx: Context) -> HeadAdapted:
        head = LinearHead.load(path / HEAD_FILE)
        check_labels(head.classes, ctx.task.labels, path / HEAD_FILE, "classes")
        return HeadAdapted(ctx.backend(), head)
