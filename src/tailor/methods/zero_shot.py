"""`zero-shot` (prompt route): no training. Each input is wrapped in an instruction template and
compared with words describing each label; the most similar label wins.

For a sentence encoder this is classification by embedding similarity. Several templates in one
entry become variants, each scored on dev and test, so the report shows what the wording did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from ..backends.protocol import EncoderBackend
from ..config.saved import ADAPTED_FILE
from ..contract import AdaptReport, Context, MethodOptions
from ..costs.usage import Usage, total
from ..errors import FolderError, MethodError
from ..prompting import (
    PROMPT_FILE,
    Template,
    UsedPrompt,
    check_saved_prompt,
    compile_template,
    label_words,
    prompt_details,
    read_prompt,
    save_prompt,
)
from ..types import Example, Prediction, Split
from ._linear import scores_to_predictions


class ZeroShotOptions(MethodOptions):
    templates: list[str] = Field(default_factory=lambda: ["{{ text }}"], min_length=1)
    """Jinja2 templates wrapping the input (`{{ text }}`, or any input field by name); each is a variant."""
    label_descriptions: dict[str, str | list[str]] | None = None
    """Words describing each label (several per label allowed); default: the label's own name."""
    aggregate: Literal["mean", "max"] = "mean"
    """How several descriptions of a label combine: similarity to their mean embedding, or the best one."""


def _spelled_out(label: str) -> str:
    """A label's default description: its name, underscores as spaces (an encoder reads words, not identifiers)."""
    return label.replace("_", " ")


@dataclass
class ZeroShotAdapted:
    encoder: EncoderBackend
    template: Template
    descriptions: dict[str, list[str]]
    """Each label's descriptions, defaults filled in, in the task's label order."""
    options: ZeroShotOptions
    seed: int = 0
    trainable_params: int = 0

    @property
    def truncated(self) -> int:
        """Inputs cut to fit the encoder so far (its running count; the runner reads the difference per split)."""
        return self.encoder.truncated

    def __post_init__(self) -> None:
        # Label descriptions are embedded once; predicting embeds only the prompts.
        self.label_vectors = {label: self.encoder.embed(d) for label, d in self.descriptions.items()}

    def used_prompt(self) -> UsedPrompt:
        return UsedPrompt(
            method="zero-shot",
            options=self.options.model_dump(mode="json"),
            seed=self.seed,
            template=self.template.source,
            labels=list(self.descriptions),
            label_words=self.descriptions,
        )

    @property
    def adapt_usage(self) -> Usage:
        """Embedding the label descriptions: the whole of adapting."""
        return total(self.encoder.usage_of([d for ds in self.descriptions.values() for d in ds]))

    def adapt_report(self) -> AdaptReport:
        return AdaptReport(usage=self.adapt_usage, examples_used=0, details=prompt_details(self.used_prompt(), []))

    def predict(self, examples: Sequence[Example]) -> list[Prediction]:
        prompts = [self.template.render_example(ex) for ex in examples]
        x = self.encoder.embed(prompts)
        labels = list(self.descriptions)
        cols = []
        for label in labels:
            d = self.label_vectors[label]
            if self.options.aggregate == "mean":
                centre = d.mean(axis=0)
                cols.append(x @ (centre / np.linalg.norm(centre)))
            else:
                cols.append((x @ d.T).max(axis=1))
        # The rendered template is what is embedded, so it is what the query costs.
        usages = self.encoder.usage_of(prompts)
        return scores_to_predictions([ex.id for ex in examples], np.stack(cols, axis=1), labels, usages, prompts)

    def save(self, path: Path) -> None:
        save_prompt(path, self.used_prompt())


class ZeroShot:
    name: ClassVar[str] = "zero-shot"
    route: ClassVar[str] = "prompt"
    summary: ClassVar[str] = "Instruction template + label descriptions; the most similar label wins. No training."
    Options: ClassVar[type[ZeroShotOptions]] = ZeroShotOptions
    task_kinds: ClassVar[frozenset[str]] = frozenset({"classification"})
    model_kinds: ClassVar[frozenset[str]] = frozenset({"encoder"})
    shares_model: ClassVar[bool] = True
    files: ClassVar[tuple[str, ...]] = (PROMPT_FILE,)

    def uses_examples(self, options: ZeroShotOptions) -> bool:
        """Never: a learning curve runs it at size 0 only."""
        return False

    def check(self, options: ZeroShotOptions, train: Split, ctx: Context) -> None:
        for i, source in enumerate(options.templates):
            template = compile_template(source, f"templates[{i}]", ctx.task.input_fields)
            if len(train):
                # Render once now: a template the sandbox refuses fails here, named by its place in the
                # task file, not mid-run under its variant's name.
                template.render_example(train.examples[0])
        labels = set(ctx.task.labels or ())
        for label, desc in (options.label_descriptions or {}).items():
            if label not in labels:
                raise MethodError(
                    f"label_descriptions names {label!r}, not a label (labels: {', '.join(sorted(labels))})",
                    key=f"label_descriptions.{label}",
                )
            if not desc or any(not str(d).strip() for d in ([desc] if isinstance(desc, str) else desc)):
                raise MethodError(f"empty description for label {label!r}", key=f"label_descriptions.{label}")

    def variants(self, options: ZeroShotOptions) -> dict[str, ZeroShotOptions]:
        if len(options.templates) == 1:
            return {"": options}
        return {f"v{i + 1}": options.model_copy(update={"templates": [t]}) for i, t in enumerate(options.templates)}

    def adapt(self, options: ZeroShotOptions, train: Split, dev: Split | None, ctx: Context) -> ZeroShotAdapted:
        template = compile_template(options.templates[0], "templates[0]", ctx.task.input_fields)
        assert ctx.task.labels is not None
        descriptions = label_words(ctx.task.labels, options.label_descriptions, _spelled_out)
        return ZeroShotAdapted(ctx.backend(), template, descriptions, options, ctx.seed)

    def load(self, options: ZeroShotOptions, path: Path, ctx: Context) -> ZeroShotAdapted:
        saved = read_prompt(path)
        if not ctx.task.labels:
            raise FolderError(str(path / ADAPTED_FILE), "task.labels", "zero-shot classifies: expected the labels")
        adapted = self.adapt(options, Split("train", ()), None, ctx)
        check_saved_prompt(path, saved, adapted.used_prompt())
        return adapted
