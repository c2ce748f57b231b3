"""Test doubles that ship with tailor: a tiny random causal LM with a locally trained tokenizer.

No generative pretrained weights can be fetched offline, yet the generative code paths (prompt
scoring, generation, LoRA) have to run for real in tests. :func:`build_tiny_lm` writes an ordinary
Hugging Face model folder — random Llama or Qwen2 weights, a byte-level BPE tokenizer trained on
generated English-ish text, a chat template — that ``AutoModelForCausalLM`` and ``AutoTokenizer``
load like any downloaded model, so the code under test is the code users run.

Everything is deterministic in ``seed``: the corpus, the tokenizer and the weights.

    path = tiny_lm_path(cache_dir)                      # 0.23M parameters, built once in well under a second
    big = build_tiny_lm(dir, hidden_size=512, num_layers=8, num_heads=8, vocab_size=8000)  # 33M, for benchmarks
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

__all__ = ["CHAT_TEMPLATE", "build_tiny_lm", "default_corpus", "tiny_lm_path"]

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")

# One turn per message, closed by EOS so a chat model learns (or is told) where its answer ends.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

# Bump when the folder layout or the corpus changes, so cached folders are rebuilt.
_FORMAT = 1

_POSITIVE = "great good wonderful excellent lovely delightful brilliant amazing superb charming fun moving".split()
_NEGATIVE = "terrible bad awful boring dull poor dreadful weak messy painful bland tedious".split()
_NOUNS = (
    "movie film story book meal dinner song album game show team city park house garden weather trip hotel "
    "teacher doctor river market school train coffee pizza garden letter question answer plan idea"
).split()
_PEOPLE = "Anna Ben Carla David Emma Farid Grace Hugo Ines Jonas Kemal Lena Maya Noah Omar Priya".split()
_VERBS = "liked saw watched read cooked visited found wrote played bought opened painted cleaned sold".split()
_TIMES = ("today", "yesterday", "last week", "this morning", "at night", "on Sunday", "after lunch", "in spring")
_QUESTIONS = ("What", "Where", "Why", "When", "How", "Who")
_REPLIES = (
    "Yes, I think so.",
    "No, not really.",
    "I am not sure.",
    "Sure, let me check.",
    "Thank you!",
    "Maybe later.",
)


def default_corpus(seed: int = 0, n: int = 3000) -> list[str]:
    """``n`` short generated lines: reviews with sentiment words, statements, questions and dialogue."""
    rng = random.Random(seed)
    syllables = "ka lo mi ren to sha vel dor ni qua bex tur il po zan ge fu ry om sel".split()
    # Invented words (one per line) give the BPE trainer enough distinct pairs to reach larger vocabularies.
    rare = ["".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(n)]

    def adj() -> tuple[str, str]:
        label = rng.choice(("positive", "negative"))
        return rng.choice(_POSITIVE if label == "positive" else _NEGATIVE), label

    lines = []
    for word in rare:
        noun, person = rng.choice(_NOUNS), rng.choice(_PEOPLE)
        kind = rng.randrange(6)
        if kind == 0:
            a, label = adj()
            lines.append(f"Review: The {noun} from {word.title()} was {a}. Sentiment: {label}")
        elif kind == 1:
            a, _ = adj()
            lines.append(f"{person} {rng.choice(_VERBS)} the {a} {noun} {rng.choice(_TIMES)} with {word}.")
        elif kind == 2:
            lines.append(f"{rng.choice(_QUESTIONS)} did {person} see the {noun} in {word.title()}?")
        elif kind == 3:
            a, _ = adj()
            lines.append(f"User: Is the {word} {noun} {a}?\nAssistant: {rng.choice(_REPLIES)}")
        elif kind == 4:
            lines.append(f"The {word} of {person} is {rng.randint(2, 99)} {noun}s, not {rng.randint(100, 999)}.")
        else:
            a, label = adj()
            lines.append(f'"It was {a}," said {person} {word}. "A {a} {noun}!"\n\nThat sounds {label}.')
    return lines


def _train_tokenizer(corpus: Sequence[str], vocab_size: int, add_bos_token: bool, max_length: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=UNK))
    # GPT-2's byte-level splitting, as many real tokenizers do: any text encodes, and merges across a
    # prompt boundary (" terr" + "ible") happen here just as they do with real models.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS, UNK, *ROLE_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens=list(ROLE_TOKENS),
        add_bos_token=add_bos_token,
        chat_template=CHAT_TEMPLATE,
        model_max_length=max_length,
    )


def build_tiny_lm(
    path: str | Path,
    *,
    arch: Literal["llama", "qwen2"] = "llama",
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int | None = None,
    vocab_size: int = 1000,
    max_position_embeddings: int = 1024,
    corpus: Sequence[str] | None = None,
    seed: int = 0,
    add_bos_token: bool | None = None,
) -> Path:
    """Write a random-weight causal LM and its trained tokenizer to ``path`` as a Hugging Face folder.

    Args:
        path: Folder to write (created if missing).
        arch: Model family; both load through ``AutoModelForCausalLM``.
        hidden_size: Width of the model.
        num_layers: Decoder layers.
        num_heads: Attention heads (``hidden_size`` must divide by it).
        intermediate_size: MLP width; default about 8/3 of ``hidden_size``, as Llama does.
        vocab_size: Tokenizer vocabulary to train. The model's embedding matches the trained tokenizer, which
            can come out smaller when the corpus runs out of merges.
        max_position_embeddings: Longest sequence the model accepts.
        corpus: Lines to train the tokenizer on; default :func:`default_corpus` of ``seed`` (at least
            ``vocab_size`` lines).
        seed: Seeds the default corpus and the weights: same arguments, same folder contents.
        add_bos_token: Whether encoding prepends BOS; default: yes for llama, no for qwen2 (as those families do).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig, Qwen2Config

    from .backends.hf import library_bars_off

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    lines = list(corpus) if corpus is not None else default_corpus(seed, n=max(3000, vocab_size))
    add_bos = arch == "llama" if add_bos_token is None else add_bos_token
    tokenizer = _train_tokenizer(lines, vocab_size, add_bos, max_position_embeddings)

    config_class = {"llama": LlamaConfig, "qwen2": Qwen2Config}[arch]
    config = config_class(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or -(-8 * hidden_size // 3 // 16) * 16,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    with library_bars_off():
        model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def tiny_lm_path(cache_dir: str | Path, **build_args) -> Path:
    """A folder built by :func:`build_tiny_lm` with ``build_args``, reused from ``cache_dir`` when already there.

    The folder name is a hash of the arguments, so different sizes sit side by side. The build goes to a
    temporary folder that is renamed into place, so concurrent callers never see half a model.
    """
    cache_dir = Path(cache_dir)
    described = dict(build_args)
    if described.get("corpus") is not None:
        described["corpus"] = hashlib.sha256("\n\x00".join(described["corpus"]).encode()).hexdigest()
    key = hashlib.sha256(json.dumps([_FORMAT, described], sort_keys=True).encode()).hexdigest()[:16]
    final = cache_dir / f"tiny-lm-{key}"
    if (final / "config.json").is_file():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    scratch = cache_dir / f".tiny-lm-{key}.{os.getpid()}.tmp"
    shutil.rmtree(scratch, ignore_errors=True)
    build_tiny_lm(scratch, **build_args)
    try:
        scratch.rename(final)
    except OSError:  # another process finished first; its folder is identical
        shutil.rmtree(scratch, ignore_errors=True)
    return final
