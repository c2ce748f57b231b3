"""Test doubles that ship with tailor: a tiny random causal or encoder-decoder LM with a locally trained tokenizer.

No generative pretrained weights can be fetched offline, yet the generative code paths (prompt
scoring, generation, fine-tuning) have to run for real in tests. :func:`build_tiny_lm` writes an ordinary
Hugging Face model folder — random Llama or Qwen2 weights with a chat template, or random T5 weights
(encoder-decoder) without one, and a byte-level BPE tokenizer trained on generated English-ish text — that
``AutoModelForCausalLM`` (``AutoModelForSeq2SeqLM`` for T5) and ``AutoTokenizer`` load like any downloaded
model, so the code under test is the code users run.

Everything is deterministic in ``seed``: the corpus, the tokenizer and the weights.

    path = tiny_lm_path(cache_dir)                      # 0.23M parameters, built once in about a second
    t5 = tiny_lm_path(cache_dir, arch="t5")             # an encoder-decoder of the same width
    train, dev, test = sentiment_task(seed=0)           # synthetic data such a model can learn from scratch
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
from typing import Any, Literal

__all__ = [
    "CHAT_TEMPLATE",
    "LEARNABLE",
    "ROUTINE_ANSWERS",
    "build_tiny_lm",
    "default_corpus",
    "routine_task",
    "sentiment_task",
    "tiny_lm_path",
]

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")

# One turn per message, closed by EOS so a chat model learns (or is told) where its answer ends.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

# Settings of build_tiny_lm (with the default width, 64) for a random model that methods freezing most of it can
# still train: see build_tiny_lm's notes.
LEARNABLE: dict[str, float] = {"init_std": 0.125, "output_scale": 2.0}

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


def _train_tokenizer(
    corpus: Sequence[str],
    vocab_size: int,
    add_bos_token: bool,
    max_length: int,
    *,
    add_eos_token: bool = False,
    chat_template: str | None = CHAT_TEMPLATE,
):
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
        add_eos_token=add_eos_token,
        chat_template=chat_template,
        model_max_length=max_length,
    )


def build_tiny_lm(
    path: str | Path,
    *,
    arch: Literal["llama", "qwen2", "t5"] = "llama",
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int | None = None,
    vocab_size: int = 1000,
    max_position_embeddings: int = 1024,
    corpus: Sequence[str] | None = None,
    seed: int = 0,
    add_bos_token: bool | None = None,
    output_scale: float = 1.0,
    init_std: float | None = None,
) -> Path:
    """Write a random-weight language model and its trained tokenizer to ``path`` as a Hugging Face folder.

    Args:
        path: Folder to write (created if missing).
        arch: Model family: ``llama`` and ``qwen2`` are causal (``AutoModelForCausalLM``, with a chat template);
            ``t5`` is an encoder-decoder (``AutoModelForSeq2SeqLM``; T5 v1.1's gated-GELU layout, no dropout, no
            chat template; encoding appends EOS and the decoder starts from the pad token, as T5's tokenizers and
            configs do).
        hidden_size: Width of the model.
        num_layers: Decoder layers (t5: encoder layers too).
        num_heads: Attention heads (``hidden_size`` must divide by it).
        intermediate_size: MLP width; default about 8/3 of ``hidden_size``, as Llama does.
        vocab_size: Tokenizer vocabulary to train. The model's embedding matches the trained tokenizer, which
            can come out smaller when the corpus runs out of merges.
        max_position_embeddings: Longest sequence the model accepts.
        corpus: Lines to train the tokenizer on; default :func:`default_corpus` of ``seed`` (at least
            ``vocab_size`` lines).
        seed: Seeds the default corpus and the weights: same arguments, same folder contents.
        add_bos_token: Whether encoding prepends BOS; default: yes for llama, no for qwen2 and t5 (as those
            families do).
        output_scale: Multiplies the output layer's random weights.
        init_std: Llama and Qwen2: standard deviation of the random weights; default transformers' 0.02, sized
            for models hundreds of times wider (T5 already scales its initialization by width).

    The defaults make a stand-in for checking that code runs. For tests of what training *learns*,
    ``init_std=hidden_size ** -0.5, output_scale=2`` (see :data:`LEARNABLE`) suits a narrow model better: at
    0.02 and width 64 every logit stays within about ±2 of the others, so no token gets much over 1%
    probability whatever the layers below compute, and attention is nearly uniform. Full fine-tuning retrains
    the output layer anyway, but methods that freeze it (LoRA, IA3) then plateau (LoRA at 5.7 nats per answer
    token on :func:`sentiment_task`, where 0.1 is reachable), and soft prompts, which can only add keys and
    values to frozen attention, can hardly steer it.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        GenerationConfig,
        LlamaConfig,
        Qwen2Config,
        T5Config,
    )

    from .backends.hf import library_bars_off

    if arch not in ("llama", "qwen2", "t5"):
        raise ValueError(f"arch: expected llama, qwen2 or t5, got {arch!r}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    lines = list(corpus) if corpus is not None else default_corpus(seed, n=max(3000, vocab_size))
    add_bos = arch == "llama" if add_bos_token is None else add_bos_token
    seq2seq = arch == "t5"
    tokenizer = _train_tokenizer(
        lines,
        vocab_size,
        add_bos,
        max_position_embeddings,
        add_eos_token=seq2seq,
        chat_template=None if seq2seq else CHAT_TEMPLATE,
    )
    intermediate = intermediate_size or -(-8 * hidden_size // 3 // 16) * 16
    if init_std is not None and seq2seq:
        raise ValueError("init_std: t5 scales its initialization by width already; llama and qwen2 take init_std")
    init = {} if init_std is None else {"initializer_range": init_std}
    special = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if seq2seq:
        config = T5Config(
            vocab_size=len(tokenizer),
            d_model=hidden_size,
            d_kv=hidden_size // num_heads,
            d_ff=intermediate,
            num_layers=num_layers,
            num_decoder_layers=num_layers,
            num_heads=num_heads,
            feed_forward_proj="gated-gelu",
            dropout_rate=0.0,
            tie_word_embeddings=False,
            decoder_start_token_id=tokenizer.pad_token_id,
            **special,
        )
        auto = AutoModelForSeq2SeqLM
    else:
        config = {"llama": LlamaConfig, "qwen2": Qwen2Config}[arch](
            vocab_size=len(tokenizer),
            hidden_size=hidden_size,
            intermediate_size=intermediate,
            num_hidden_layers=num_layers,
            num_attention_heads=num_heads,
            num_key_value_heads=num_heads,
            max_position_embeddings=max_position_embeddings,
            tie_word_embeddings=False,
            **special,
            **init,
        )
        auto = AutoModelForCausalLM
    torch.manual_seed(seed)
    model = auto.from_config(config, dtype=torch.float32)
    if output_scale != 1.0:
        with torch.no_grad():
            model.get_output_embeddings().weight.mul_(output_scale)
    model.generation_config = GenerationConfig(
        **special, **({"decoder_start_token_id": tokenizer.pad_token_id} if seq2seq else {})
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


# ---------------------------------------------------------------------------------------------- synthetic tasks


def _split(name: str, examples: list[Any]) -> Any:
    from .types import Split

    return Split(name, tuple(examples))  # type: ignore[arg-type]


def _deal(rng: random.Random, make: Any, sizes: Sequence[int], balance: Sequence[Any]) -> list[list[Any]]:
    """Examples from ``make(target)`` dealt into splits of ``sizes``, each split cycling through ``balance`` (so
    every split is as balanced as its size allows), with no input text in two splits (or twice in one)."""
    seen: set[str] = set()
    out: list[list[Any]] = []
    for size in sizes:
        rows = []
        while len(rows) < size:
            target = balance[len(rows) % len(balance)]
            for _ in range(1000):
                inputs, answer = make(target)
                if inputs not in seen:
                    break
            else:  # pragma: no cover - the generators below have far more combinations than any test asks for
                raise ValueError("ran out of distinct synthetic examples; ask for fewer")
            seen.add(inputs)
            rows.append((inputs, answer))
        rng.shuffle(rows)
        out.append(rows)
    return out


def sentiment_task(seed: int = 0, train: int = 400, dev: int = 60, test: int = 100) -> tuple[Any, Any, Any]:
    """A two-class task (``positive``/``negative``) that a tiny random model can learn from scratch.

    Each input is a short sentence built from one of a few templates, with people, nouns and times as
    distractors and exactly one sentiment word (the same word lists as :func:`default_corpus`, so the
    tokenizer knows them), always the last word, deciding the label. Splits are label-balanced, disjoint in
    their texts and deterministic in ``seed``; an always-the-same-label guess scores 0.5.

    Returns:
        ``(train, dev, test)`` :class:`~tailor.types.Split` objects with ``text`` inputs.
    """
    from .types import Example

    rng = random.Random(seed)
    templates = (
        "the {noun} was {adj}",
        "I thought the {noun} and the {other} were {adj}",
        "{person} said the {noun} {time} was {adj}",
        "{person} found the {noun} {adj}",
        "honestly the {noun} from {time} looked {adj}",
    )

    def make(label: str) -> tuple[str, str]:
        words = _POSITIVE if label == "positive" else _NEGATIVE
        text = rng.choice(templates).format(
            noun=rng.choice(_NOUNS),
            other=rng.choice(_NOUNS),
            adj=rng.choice(words),
            person=rng.choice(_PEOPLE),
            time=rng.choice(_TIMES),
        )
        return text, label

    splits = _deal(rng, make, (train, dev, test), ("positive", "negative"))
    names = ("train", "dev", "test")
    return tuple(  # type: ignore[return-value]
        _split(n, [Example(f"{n}-{i}", {"text": t}, label) for i, (t, label) in enumerate(rows)])
        for n, rows in zip(names, splits)
    )


# What to do with each thing: answers of one to four words, so a generator must learn where each one stops.
ROUTINE_ANSWERS: dict[str, str] = {
    "movie": "watch it",
    "book": "read it slowly",
    "pizza": "eat",
    "song": "play it again tonight",
    "garden": "water the plants",
    "letter": "answer",
    "coffee": "drink it hot",
    "train": "run to the station",
}


def routine_task(seed: int = 0, train: int = 160, dev: int = 24, test: int = 48) -> tuple[Any, Any, Any]:
    """A generation task (``qa``) with a fixed answer per input: ``"Anna has a book on Sunday. What now?"`` →
    ``"read it slowly"`` (see :data:`ROUTINE_ANSWERS`; the person and the time are distractors).

    Answers differ in length, so reaching exact match by greedy generation means the model learned to end
    each answer (EOS) rather than run on. Splits are balanced over the things, disjoint in their texts and
    deterministic in ``seed``.

    Returns:
        ``(train, dev, test)`` :class:`~tailor.types.Split` objects with ``question`` inputs and one reference each.
    """
    from .types import Example

    rng = random.Random(seed)

    def make(thing: str) -> tuple[str, str]:
        person, time = rng.choice(_PEOPLE), rng.choice(_TIMES)
        return f"{person} has a {thing} {time}. What now?", ROUTINE_ANSWERS[thing]

    splits = _deal(rng, make, (train, dev, test), tuple(ROUTINE_ANSWERS))
    names = ("train", "dev", "test")
    return tuple(  # type: ignore[return-value]
        _split(n, [Example(f"{n}-{i}", {"question": q}, (a,)) for i, (q, a) in enumerate(rows)])
        for n, rows in zip(names, splits)
    )
