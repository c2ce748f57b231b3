"""`prompt-tuning` (fine-tune route): a soft prompt — trained embeddings of a few virtual tokens put in front of
every input, the model itself frozen (Lester et al. 2021) — through PEFT. Virtual tokens belong to one sequence
each, so batches are padded rather than packed."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from ..backends.models import resolve_path
from ..contract import Context
from ..tuning.recipe import PeftMethod, TuneOptions, peft_task_type


class PromptTuningOptions(TuneOptions):
    learning_rate: float = Field(3e-2, gt=0)
    """Peak learning rate (AdamW, linear warm-up then linear decay); soft prompts want high ones."""
    virtual_tokens: int = Field(20, ge=1, le=512)
    """Length of the soft prompt."""
    init_text: str | None = None
    """Start the soft prompt from the embeddings of this text (e.g. the task's instruction); default random."""


class PromptTuning(PeftMethod):
    name: ClassVar[str] = "prompt-tuning"
    summary: ClassVar[str] = "A trained soft prompt in front of every input (the model frozen), through PEFT."
    Options: ClassVar[type[PromptTuningOptions]] = PromptTuningOptions
    lr_range: ClassVar[tuple[float, float]] = (1e-5, 1.0)
    per_sequence: ClassVar[bool] = True

    def peft_config(self, options: PromptTuningOptions, ctx: Context) -> Any:
        from peft import PromptTuningConfig, PromptTuningInit

        text = options.init_text
        return PromptTuningConfig(
            task_type=peft_task_type(ctx),
            num_virtual_tokens=options.virtual_tokens,
            prompt_tuning_init=PromptTuningInit.TEXT if text else PromptTuningInit.RANDOM,
            prompt_tuning_init_text=text,
            tokenizer_name_or_path=resolve_path(ctx.model.name) if text else None,
        )
