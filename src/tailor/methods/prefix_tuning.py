"""`prefix-tuning` (fine-tune route): trained keys and values for a few virtual tokens at every layer
(Li & Liang 2021), the model itself frozen, through PEFT. Per-sequence, so batches are padded."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from ..contract import Context
from ..tuning.recipe import PeftMethod, TuneOptions, peft_task_type


class PrefixTuningOptions(TuneOptions):
    learning_rate: float = Field(1e-2, gt=0)
    """Peak learning rate (AdamW, linear warm-up then linear decay)."""
    virtual_tokens: int = Field(20, ge=1, le=512)
    """Length of the prefix at every layer."""
    projection: bool = False
    """Reparametrize the prefix through a two-layer MLP (more stable, more parameters while training)."""


class PrefixTuning(PeftMethod):
    name: ClassVar[str] = "prefix-tuning"
    summary: ClassVar[str] = "Trained per-layer key/value prefixes (the model frozen), through PEFT."
    Options: ClassVar[type[PrefixTuningOptions]] = PrefixTuningOptions
    lr_range: ClassVar[tuple[float, float]] = (1e-5, 1.0)
    per_sequence: ClassVar[bool] = True

    def peft_config(self, options: PrefixTuningOptions, ctx: Context) -> Any:
        from peft import PrefixTuningConfig

        return PrefixTuningConfig(
            task_type=peft_task_type(ctx),
            num_virtual_tokens=options.virtual_tokens,
            prefix_projection=options.projection,
        )
