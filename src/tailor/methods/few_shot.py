"""`few-shot` (prompt route): k labelled demonstrations per class from train; an input takes the
class it is most similar to (class centroids, or a similarity-weighted vote of nearest demonstrations).

Nothing is trained: the demonstrations are the whole adaptation, as in in-context learning.
Demonstrations come from train only, and never include the very text being predicted.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from ..backends.protocol import EncoderBackend
from ..config.saved import check_labels
from ..contract import AdaptReport, Context, MethodOptions
from ..costs.usage import NO_USAGE, Usage, total
from ..errors import FolderError, MethodError
from ..prompting import (
    DEMONSTRATIONS_FILE,
    PROMPT_FILE,
    UsedPrompt,
    check_saved_prompt,
    prompt_details,
    read_demonstrations,
    read_prompt,
    save_prompt,
)
from ..types import Example, Prediction, Split
from ._linear import scores_to_predictions


class FewShotOptions(MethodOptions):
    k: int | Literal["all"] = 8
    """Demonstrations per class (so k × classes in all); `all`: every training example (in a learning curve,
    the whole draw of each size)."""
    select: Literal["random", "balanced", "nearest"] = "balanced"
    """How demonstrations are chosen: at random from train, k at random from each class, or, for each
    input, the k × classes training examples nearest to it."""
    classify: Literal["centroid", "knn"] = "centroid"
    """Class by similarity to each class's mean demonstration, or by a similarity-weighted vote of the
    `neighbors` most similar demonstrations."""
    neighbors: int | None = Field(None, ge=1)
    """Demonstrations that vote with `classify: knn`; default: k."""

    @field_validator("k")
    @classmethod
    def _positive(cls, k: int | str) -> int | str:
        if k != "all" and k < 1:
            raise ValueError(f"expected a whole number greater than or equal to 1, or `all`; got {k}")
        return k


@dataclass
class FewShotAdapted:
    encoder: EncoderBackend
    demos: list[Example]  # the demonstrations (or, for `nearest`, the candidates they are drawn from)
    classes: list[str]
    """The labels it chooses among: those of the training examples it was given, sorted."""
    options: FewShotOptions
    seed: int = 0
    trainable_params: int = 0
    adapt_usage: Usage = NO_USAGE
    """Embedding the demonstrations (for `nearest`, every candidate)."""

    @property
    def truncated(self) -> int:
        """Inputs cut to fit the encoder so far (its running count; the runner reads the difference per split)."""
        return self.encoder.truncated

    def __post_init__(self) -> None:
        self.texts = [d.text for d in self.demos]
        self.labels = [d.label for d in self.demos]
        # Demonstrations are embedded once, when adapted or loaded; predicting embeds only the inputs.
        self.demo = self.encoder.embed(self.texts)

    def used_prompt(self) -> UsedPrompt:
        options = self.options.model_dump(mode="json")
        return UsedPrompt(method="few-shot", options=options, seed=self.seed, labels=list(self.classes))

    def adapt_report(self) -> AdaptReport:
        details = prompt_details(self.used_prompt(), self.demos)
        return AdaptReport(usage=self.adapt_usage, examples_used=len(self.demos), details=details)

    def predict(self, examples: Sequence[Example]) -> list[Prediction]:
        o = self.options
        inputs = [ex.text for ex in examples]
        x = self.encoder.embed(inputs)
        demo = self.demo
        sims = x @ demo.T  # (n_inputs, n_demos)
        # Never demonstrate an input with itself.
        position = {t: i for i, t in enumerate(self.texts)}
        for row, ex in enumerate(examples):
            if (j := position.get(ex.text)) is not None:
                sims[row, j] = -np.inf
        label_idx = np.array([self.classes.index(lb) for lb in self.labels])
        n_classes = len(self.classes)
        if o.select == "nearest":
            pool = np.argsort(-sims, axis=1)[:, : None if o.k == "all" else o.k * n_classes]
        else:
            pool = np.tile(np.arange(len(self.texts)), (len(examples), 1))
        scores = np.full((len(examples), n_classes), -np.inf)
        for row in range(len(examples)):
            members = pool[row][np.isfinite(sims[row, pool[row]])]
            if o.classify == "centroid":
                for c in range(n_classes):
                    sel = members[label_idx[members] == c]
                    if len(sel):
                        centre = demo[sel].mean(axis=0)
                        scores[row, c] = float(x[row] @ centre / np.linalg.norm(centre))
            else:
                top = members[np.argsort(-sims[row, members])[: o.neighbors or (None if o.k == "all" else o.k)]]
                votes = np.bincount(label_idx[top], weights=np.maximum(sims[row, top], 0) + 1e-6, minlength=n_classes)
                scores[row] = np.where(votes > 0, votes, -np.inf)
        return scores_to_predictions([ex.id for ex in examples], scores, self.classes, self.encoder.usage_of(inputs))

    def save(self, path: Path) -> None:
        save_prompt(path, self.used_prompt(), self.demos)


class FewShot:
    name: ClassVar[str] = "few-shot"
    route: ClassVar[str] = "prompt"
    summary: ClassVar[str] = "k demonstrations per class from train; class by similarity to them. No training."
    Options: ClassVar[type[FewShotOptions]] = FewShotOptions
    task_kinds: ClassVar[frozenset[str]] = frozenset({"classification"})
    model_kinds: ClassVar[frozenset[str]] = frozenset({"encoder"})
    shares_model: ClassVar[bool] = True
    files: ClassVar[tuple[str, ...]] = (PROMPT_FILE, DEMONSTRATIONS_FILE)

    def uses_examples(self, options: FewShotOptions) -> bool:
        """Always: its demonstrations are training examples."""
        return True

    def check(self, options: FewShotOptions, train: Split, ctx: Context) -> None:
        counts: dict[str, int] = defaultdict(int)
        for ex in train:
            counts[ex.label] += 1
        if options.k == "all":
            return
        if options.select == "balanced":
            short = {c: n for c, n in counts.items() if n < options.k}
            if short:
                listed = ", ".join(f"{c!r} has {n}" for c, n in sorted(short.items()))
                raise MethodError(f"k={options.k} demonstrations per class, but in train {listed}", key="k")
        else:
            need = options.k * len(counts)
            if need > len(train):
                raise MethodError(
                    f"k={options.k} × {len(counts)} classes = {need} demonstrations, "
                    f"but train has only {len(train)} examples",
                    key="k",
                )

    def variants(self, options: FewShotOptions) -> dict[str, FewShotOptions]:
        return {"": options}

    def adapt(self, options: FewShotOptions, train: Split, dev: Split | None, ctx: Context) -> FewShotAdapted:
        self.check(options, train, ctx)  # a caller's own pool (a search's bootstrapped one) may be short of a class
        rng = random.Random(ctx.seed)
        examples = list(train)
        classes = sorted({ex.label for ex in examples})
        if options.k == "all":
            chosen = examples
        elif options.select == "balanced":
            by_class: dict[str, list[Example]] = defaultdict(list)
            for ex in examples:
                by_class[ex.label].append(ex)
            chosen = [ex for c in classes for ex in rng.sample(by_class[c], options.k)]
        elif options.select == "random":
            chosen = rng.sample(examples, options.k * len(classes))
        else:
            chosen = examples  # candidates; each input picks its nearest at predict time
        encoder: EncoderBackend = ctx.backend()
        texts = [ex.text for ex in chosen]
        encoder.embed(texts, ctx.progress, "embedding demonstrations")  # fills the cache, with a bar
        return FewShotAdapted(encoder, chosen, classes, options, ctx.seed, adapt_usage=total(encoder.usage_of(texts)))

    def load(self, options: FewShotOptions, path: Path, ctx: Context) -> FewShotAdapted:
        saved = read_prompt(path)
        if saved.labels is None:
            raise FolderError(str(path / PROMPT_FILE), "labels", "expected the labels its demonstrations cover")
        check_labels(saved.labels, ctx.task.labels, path / PROMPT_FILE, "labels")
        demos = read_demonstrations(path, saved.labels)
        adapted = FewShotAdapted(ctx.backend(), demos, saved.labels, options, ctx.seed)
        check_saved_prompt(path, saved, adapted.used_prompt())
        return adapted
