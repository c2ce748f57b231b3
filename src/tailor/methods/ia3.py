"""`ia3` (fine-tune route): (IA)³, learned per-channel scalings of attention keys and values and of the
feed-forward activations (Liu et al. 2022), through PEFT — a few thousand parameters. Merges into the base
weights like LoRA."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from ..contract import Context
from ..errors import MethodError
from ..tuning.recipe import PeftMethod, TuneOptions, check_target_modules, peft_task_type


class IA3Options(TuneOptions):
    learning_rate: float = Field(3e-3, gt=0)
    """Peak learning rate (AdamW, linear warm-up then linear decay)."""
    target_modules: list[str] | None = None
    """Layers whose outputs are scaled; default PEFT's choice for the architecture (keys, values, MLP down)."""
    feedforward_modules: list[str] | None = None
    """Which of target_modules are feed-forward (their inputs are scaled instead); default PEFT's choice."""
    export_merged: bool = False
    """Also save the scalings merged into the base weights, as an ordinary Hugging Face model folder."""


class IA3(PeftMethod):
    name: ClassVar[str] = "ia3"
    summary: ClassVar[str] = "(IA)³: learned scalings of keys, values and feed-forward activations, through PEFT."
    Options: ClassVar[type[IA3Options]] = IA3Options
    lr_range: ClassVar[tuple[float, float]] = (1e-6, 1e-1)
    mergeable: ClassVar[bool] = True

    def check_more(self, options: IA3Options, ctx: Context) -> None:
        check_target_modules(options.target_modules, ctx)
        extra = sorted(set(options.feedforward_modules or ()) - set(options.target_modules or ()))
        if options.feedforward_modules and options.target_modules and extra:
            raise MethodError(
                f"feedforward_modules not in target_modules: {', '.join(extra)}", key="feedforward_modules"
            )
        if (options.feedforward_modules is None) != (options.target_modules is None):
            raise MethodError("give target_modules and feedforward_modules together (or neither)", key="target_modules")

    def peft_config(self, options: IA3Options, ctx: Context) -> Any:
        from peft import IA3Config

        return IA3Config(
            target_modules=options.target_modules,
            feedforward_modules=options.feedforward_modules,
            task_type=peft_task_type(ctx),
        )
