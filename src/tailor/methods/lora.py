"""`lora` (fine-tune route): low-rank adapters on a generative model's linear layers (Hu et al. 2021), or their
weight-decomposed variant DoRA (Liu et al. 2024) with `dora: true`, through PEFT. The adapter merges into the
base weights, so it can also be exported as an ordinary model (`export_merged: true`)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from ..contract import Context
from ..errors import MethodError
from ..tuning.recipe import PeftMethod, TuneOptions, check_target_modules, peft_task_type


class LoraOptions(TuneOptions):
    learning_rate: float = Field(2e-4, gt=0)
    """Peak learning rate (AdamW, linear warm-up then linear decay)."""
    rank: int = Field(8, ge=1, le=1024)
    """Rank of each adapter's update (at most the model's width)."""
    alpha: float = Field(16.0, gt=0)
    """Scaling: the update is multiplied by alpha / rank."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on the adapter's input."""
    target_modules: str | list[str] = "all-linear"
    """Linear layers to adapt, by name (e.g. [q_proj, v_proj]), or all-linear (every one but the output layer)."""
    dora: bool = False
    """Weight-decomposed LoRA (DoRA): a learned magnitude per output plus a low-rank direction update."""
    export_merged: bool = False
    """Also save the adapter merged into the base weights, as an ordinary Hugging Face model folder."""


class Lora(PeftMethod):
    name: ClassVar[str] = "lora"
    summary: ClassVar[str] = "LoRA (or DoRA) adapters on a generative model's linear layers, through PEFT."
    Options: ClassVar[type[LoraOptions]] = LoraOptions
    lr_range: ClassVar[tuple[float, float]] = (1e-7, 5e-2)
    mergeable: ClassVar[bool] = True

    def check_more(self, options: LoraOptions, ctx: Context) -> None:
        check_target_modules(options.target_modules, ctx)
        from transformers import AutoConfig

        from ..backends.models import resolve_path

        config = AutoConfig.from_pretrained(resolve_path(ctx.model.name), trust_remote_code=ctx.model.trust_remote_code)
        width = getattr(config.get_text_config(decoder=True), "hidden_size", None) or getattr(config, "d_model", None)
        if width and options.rank > width:
            raise MethodError(f"rank {options.rank} is larger than the model's width ({width})", key="rank")

    def peft_config(self, options: LoraOptions, ctx: Context) -> Any:
        return lora_config(options, peft_task_type(ctx))


def lora_config(options: LoraOptions, task_type: str) -> Any:
    """PEFT's LoRA config from the options, for a PEFT task type (CAUSAL_LM, SEQ_2_SEQ_LM, SEQ_CLS)."""
    from peft import LoraConfig

    return LoraConfig(
        r=options.rank,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=options.target_modules,
        use_dora=options.dora,
        task_type=task_type,
    )
