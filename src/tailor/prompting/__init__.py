"""The prompt route: templates, prompt parts, demonstrations and the predictor, over any generative backend.

- :mod:`.jinja`: Jinja2 templates in a sandbox, checked against the data's fields before any model call.
- :mod:`.parts`: a prompt's named parts (:class:`PromptParts`), the options of prompting (:class:`PromptOptions`,
  the parts plus demonstrations and answering), the compiled prompt and the words standing for each label.
- :mod:`.demos`: choosing and ordering demonstrations.
- :mod:`.predictor`: :class:`PromptAdapted`, which builds each prompt, scores or generates through the backend
  and parses the answer; fine-tuned generative models predict through it too.

The ``prompt`` method (:mod:`tailor.methods.prompt`) only checks options and wires these together.
"""

from __future__ import annotations

from .demos import DemoPool, Order, Selection, fixed_demos, order_demos, similar_demos
from .jinja import Template, compile_template
from .parts import (
    DEFAULT_ORDER,
    PART_NAMES,
    CompiledPrompt,
    Part,
    PromptOptions,
    PromptParts,
    answer_text,
    check_prompt_options,
    label_words,
    parts_of,
    prompt_variants,
    resolved_mode,
)
from .predictor import (
    CONTENT_FREE,
    PromptAdapted,
    content_free_bias,
    first_token_clashes,
    parse_label,
    shorten_to_fit,
)

__all__ = [
    "CONTENT_FREE",
    "DEFAULT_ORDER",
    "PART_NAMES",
    "CompiledPrompt",
    "DemoPool",
    "Order",
    "Part",
    "PromptAdapted",
    "PromptOptions",
    "PromptParts",
    "Selection",
    "Template",
    "answer_text",
    "check_prompt_options",
    "compile_template",
    "content_free_bias",
    "first_token_clashes",
    "fixed_demos",
    "label_words",
    "order_demos",
    "parse_label",
    "parts_of",
    "prompt_variants",
    "resolved_mode",
    "shorten_to_fit",
    "similar_demos",
]
