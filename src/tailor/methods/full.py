"""`full` (fine-tune route): supervised fine-tuning of every weight of a generative (causal or seq2seq) model,
through :mod:`tailor.tuning` on the same prompt the prompt route uses. Saved as an ordinary Hugging Face folder.

An encoder with a classification head trained in full is `encoder-full` (:mod:`.encoder_full`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from ..contract import Context
from ..tuning.recipe import TUNE_FILE, TunedAdapted, TuneOptions, check_options, load_tuned, tune
from ..types import Split


class FullOptions(TuneOptions):
    learning_rate: float = Field(5e-5, gt=0)
    """Peak learning rate (AdamW, linear warm-up then linear decay)."""
    weight_decay: float = Field(0.01, ge=0)
    """AdamW weight decay (matrices only; not biases or norms)."""


def _every_weight(model: Any) -> Any:
    """The base model itself is what is trained (its weights all require gradients as loaded)."""
    return model


class Full:
    name: ClassVar[str] = "full"
    route: ClassVar[str] = "finetune"
    shares_model: ClassVar[bool] = False  # trains its own copy of the model; the run's shared one stays frozen
    files: ClassVar[tuple[str, ...]] = (TUNE_FILE, "config.json")  # an ordinary Hugging Face folder, and tune.json
    summary: ClassVar[str] = "Every weight of a generative model trained (supervised fine-tuning)."
    Options: ClassVar[type[FullOptions]] = FullOptions
    task_kinds: ClassVar[frozenset[str]] = frozenset({"classification", "qa", "summarization", "translation"})
    model_kinds: ClassVar[frozenset[str]] = frozenset({"causal", "seq2seq"})
    lr_range: ClassVar[tuple[float, float]] = (1e-8, 1e-2)

    def uses_examples(self, options: FullOptions) -> bool:
        return True

    def check(self, options: FullOptions, train: Split, ctx: Context) -> None:
        check_options(options, train, ctx, self.lr_range, self.name)

    def variants(self, options: FullOptions) -> dict[str, FullOptions]:
        return {"": options}

    def adapt(self, options: FullOptions, train: Split, dev: Split | None, ctx: Context) -> TunedAdapted:
        self.check(options, train, ctx)
        return tune(self.name, options, train, dev, ctx, _every_weight)

    def load(self, options: FullOptions, path: Path, ctx: Context) -> TunedAdapted:
        return load_tuned(self.name, options, path, ctx, "model")
