"""Test doubles that ship with tailor: tiny random language models built offline, synthetic tasks, and a scripted
fake language model with no weights at all.

No generative pretrained weights can be fetched offline, yet the generative code paths (prompt scoring,
generation, fine-tuning) have to run for real in tests. :func:`build_tiny_lm` writes an ordinary Hugging Face
model folder — random Llama or Qwen2 weights with a chat template, or random T5 weights (encoder-decoder) without
one, and a byte-level BPE tokenizer trained on generated English-ish text — that ``AutoModelForCausalLM``
(``AutoModelForSeq2SeqLM`` for T5) and ``AutoTokenizer`` load like any downloaded model, so the code under test is
the code users run. Everything is deterministic in ``seed``: the corpus, the tokenizer and the weights.

    path = tiny_lm_path(cache_dir)                      # 0.23M parameters, built once in about a second
    t5 = tiny_lm_path(cache_dir, arch="t5")             # an encoder-decoder of the same width
    train, dev, test = sentiment_task(seed=0)           # synthetic data such a model can learn from scratch
    big = build_tiny_lm(dir, hidden_size=512, num_layers=8, num_heads=8, vocab_size=8000)  # 33M, for benchmarks

Where the answers themselves matter, :class:`~tailor.testing.scripted.ScriptedLM` is a generative backend that
answers and scores from a script (a table or a function), with configurable capabilities, recording every request;
the ``scripted`` model kind loads one from a JSON file (see :mod:`tailor.testing.scripted`).

Modules: :mod:`.tiny_lm` (the model folders), :mod:`.corpus` (the generated text), :mod:`.tasks` (the synthetic
tasks), :mod:`.scripted` (the fake).
"""

from __future__ import annotations

from .corpus import default_corpus
from .scripted import ScriptedLM
from .tasks import ROUTINE_ANSWERS, routine_task, sentiment_task
from .tiny_lm import BOS, CHAT_TEMPLATE, EOS, LEARNABLE, PAD, ROLE_TOKENS, UNK, build_tiny_lm, tiny_lm_path

__all__ = [
    "BOS",
    "CHAT_TEMPLATE",
    "EOS",
    "LEARNABLE",
    "PAD",
    "ROLE_TOKENS",
    "ROUTINE_ANSWERS",
    "UNK",
    "ScriptedLM",
    "build_tiny_lm",
    "default_corpus",
    "routine_task",
    "sentiment_task",
    "tiny_lm_path",
]
