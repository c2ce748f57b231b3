"""Small adapters between Hugging Face libraries and tailor: quiet loading, trainer progress."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def library_bars_off() -> Iterator[None]:
    """Turn transformers' own tqdm bars (loading weights, writing shards) off for the block; tailor draws its own."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


@contextmanager
def transformers_quiet() -> Iterator[None]:
    """Only errors from transformers' loggers for the block."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def advance_callback(bar: Any) -> Any:
    """A transformers trainer callback that advances a tailor progress ``bar`` by one per optimizer step."""
    from transformers import TrainerCallback

    class _Advance(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            bar.advance(1)

    return _Advance()


@contextmanager
def peft_quiet() -> Iterator[None]:
    """PEFT asks transformers 5 for ``is_gradient_checkpointing``, which warns that it is deprecated: a
    warning about PEFT's code, not the user's, repeated for every adapter; hidden for the block."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield
