"""A tiny random causal or encoder-decoder LM with a locally trained tokenizer, written as a Hugging Face folder.

:func:`build_tiny_lm` writes random Llama or Qwen2 weights with a chat template, or random T5 weights
(encoder-decoder) without one, and a byte-level BPE tokenizer trained on :func:`~tailor.testing.corpus.default_corpus`;
``AutoModelForCausalLM`` (``AutoModelForSeq2SeqLM`` for T5) and ``AutoTokenizer`` load it like any downloaded model.
:func:`tiny_lm_path` builds one once per argument set and reuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from .corpus import default_corpus

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

    from ..backends.local.hf import library_bars_off

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
