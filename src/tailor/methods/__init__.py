"""The method registry: every adaptation method tailor knows, in one plain dict.

Adding a method is adding a file that implements :class:`tailor.contract.Method` and a row here.
Method modules import their heavy libraries (torch, transformers) inside functions, so importing
this registry stays fast.
"""

from __future__ import annotations

from ..contract import Method
from .contrastive import Contrastive
from .encoder_full import EncoderFull
from .few_shot import FewShot
from .full import Full
from .head import Head
from .ia3 import IA3
from .lora import Lora
from .prefix_tuning import PrefixTuning
from .prompt import Prompt
from .prompt_search import PromptSearch
from .prompt_tuning import PromptTuning
from .seq_cls import SeqCls
from .zero_shot import ZeroShot

METHODS: dict[str, Method] = {
    "zero-shot": ZeroShot(),
    "few-shot": FewShot(),
    "head": Head(),
    "contrastive": Contrastive(),
    "encoder-full": EncoderFull(),
    "full": Full(),
    "prompt": Prompt(),
    "prompt-search": PromptSearch(),
    "lora": Lora(),
    "ia3": IA3(),
    "prompt-tuning": PromptTuning(),
    "prefix-tuning": PrefixTuning(),
    "seq-cls": SeqCls(),
}


def get_method(name: str) -> Method:
    from ..errors import TailorError

    try:
        return METHODS[name]
    except KeyError:
        raise TailorError(f"unknown method {name!r}; registered: {', '.join(METHODS)}") from None
