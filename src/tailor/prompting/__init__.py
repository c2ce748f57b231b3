"""The prompt route: templates, prompt parts, demonstrations and the predictor, over any generative backend.

- :mod:`.jinja`: Jinja2 templates in a sandbox, checked against the data's fields before any model call.
- :mod:`.parts`: a prompt's named parts (:class:`PromptParts`), the options of prompting (:class:`PromptOptions`,
  the parts plus demonstrations and answering), the compiled prompt and the words standing for each label.
- :mod:`.demos`: choosing and ordering demonstrations.
- :mod:`.predictor`: :class:`PromptAdapted`, which builds each prompt, scores or generates through the backend
  and parses the answer; fine-tuned generative models predict through it too.
- :mod:`.record`: a prompt as it was used (:class:`UsedPrompt`), one schema for every prompt-route method, stored
  with the trial and saved in its folder with its demonstrations.

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
from .record import (
    DEMONSTRATIONS_FILE,
    PROMPT_FILE,
    UsedPrompt,
    check_saved_prompt,
    prompt_details,
    read_demonstrations,
    read_prompt,
    save_prompt,
)

__all__ = [
    "CONTENT_FREE",
    "DEFAULT_ORDER",
    "DEMONSTRATIONS_FILE",
    "PART_NAMES",
    "PROMPT_FILE",
    "CompiledPrompt",
    "DemoPool",
    "Order",
    "Part",
    "PromptAdapted",
    "PromptOptions",
    "PromptParts",
    "Selection",
    "Template",
    "UsedPrompt",
    "answer_text",
    "check_prompt_options",
    "check_saved_prompt",
    "compile_template",
    "content_free_bias",
    "first_token_clashes",
    "fixed_demos",
    "label_words",
    "order_demos",
    "parse_label",
    "parts_of",
    "prompt_details",
    "prompt_variants",
    "read_demonstrations",
    "read_prompt",
    "resolved_mode",
    "save_prompt",
    "shorten_to_fit",
    "similar_demos",
]
