"""LoRA fine-tuning throughput: tailor vs transformers' Trainer vs TRL's SFTTrainer, in one run, on one model and data.

What is compared (real tokens per second of training; a real token is a prompt or answer token of an example,
never padding):

  (a) tailor  — the ``lora`` method driven through the method contract (``METHODS["lora"].adapt`` with a
      ``Context``, a ``Split`` of train examples and no dev split, so nothing is evaluated while it trains):
      packed rows (several examples per row, each with its own position ids, so none attends to another),
      the decoder run on the rows and the output layer only on the positions that predict answer tokens.
      Time: ``details["training"]["train_seconds"]``, tailor's own clock around each step (batch building,
      forward, backward, clipping, optimizer).
  (b) Trainer — ``transformers.Trainer`` on a PEFT model, right-padded batches (``DataCollatorForSeq2Seq``),
      labels -100 on the prompt (answer-only loss), the model's own forward and loss (full-vocabulary logits at
      every position), its default optimizer (fused AdamW), ``use_cache`` off.
  (c) TRL     — ``trl.SFTTrainer`` with a pre-tokenized prompt/completion dataset (``input_ids`` +
      ``completion_mask``, so TRL builds the same answer-only labels), ``completion_only_loss=True``, no
      packing (its ``wrapped`` packing lets examples attend to each other), in two settings that keep
      examples separate: padded, and ``padding_free=True`` (the batch flattened into one row with per-example
      position ids; transformers then builds a block-diagonal mask for SDPA — checked here before timing).
      ``trl_tokens_per_s`` is the faster of the two; ``trl_setting`` says which.
  Peers' time: from the first step's start to the last step's end (``TrainerCallback`` on_step_begin /
  on_step_end), which includes their data loading and collation between steps as tailor's includes its
  batch building. Setup (model loading, PEFT wrapping, dataset preparation) is timed separately as wall time.

Setup shared by all three:
  * model: a random-weight Llama from ``tailor.testing.build_tiny_lm`` (hidden 512, 6 layers, 8 heads, vocab
    12,000, ~31M parameters), fp32; its BPE tokenizer trained on the default corpus plus the SST-2 train
    texts so English tokenizes about as densely as with a real model; built once into ``benchmarks/.models/``
    (git-ignored) and reused;
  * data: the first N examples of ``../shared/datasets/sst2/train.jsonl`` (train only), rendered and tokenized
    once by tailor's own code (``build_predictor`` + ``encode_examples``: completion prompt, answer
    " positive"/" negative" + EOS); the peers get exactly those token ids (checked against the ids tailor
    trained on). Every system trains the same whole epoch(s) over the same N examples, so all process the
    same tokens, in their own shuffled orders. N is sized by a short probe (padded forward/backward steps, not
    counted) so that a padded run would take about ``--seconds``; faster systems finish sooner;
  * LoRA r=8, alpha=16, dropout 0, all linear layers of the decoder; AdamW lr 2e-4, linear warm-up (10%) then
    linear decay, no weight decay, gradient clipping at 1.0; 16 examples per step, no accumulation; examples of
    at most 128 tokens; ``torch.set_num_threads(--threads)`` (default 2); CPU.

MFU: achieved training FLOPs per second over the machine's fp32 matmul peak, measured in the same run (best of
several 2048x2048 ``torch.matmul``, before and after the systems run; the larger is used). FLOPs per example of
L tokens, A of them answer tokens (frozen base, so no weight gradients outside LoRA):
    4·M·L             decoder linear layers: forward 2·M·L + input-gradient backward 2·M·L, M = Σ in·out of the
                      decoder's linear layers
  + 6·R·L             LoRA: forward, input gradient and weight gradient, R = Σ r·(in + out) over adapted layers
  + 12·n·d·L²         attention scores and values (forward 4·d·L², backward 8·d·L², per layer, full L×L)
  + 4·V·d·H           output layer forward + input gradient on H positions
``mfu`` / ``trainer_mfu`` / ``trl_mfu`` count H where each system runs the output layer on real tokens: the
answer-predicting positions for tailor (H = A), every position for Trainer and TRL (H = L; TRL's re-computation
of the logits in its backward is not counted). ``*_useful_mfu`` counts H = A for all (only those logits are
needed for the loss), so it ranks the systems as tokens/s does. Padding and the extra attention of packed or
flattened rows are not counted anywhere.

Run (from the repository root, alone on the machine):

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/finetune_speed.py [--seconds 75] [--threads 2]

Writes ``benchmarks/results/finetune_speed.json`` (``--out`` elsewhere). ``--examples N`` fixes the data size
instead of probing; ``--trl padded|padding_free`` times one TRL setting only (TRL padded is the slowest system
here, about twice the padded probe's time). ``--quick`` is a smoke check (4 steps each, written to a temporary
file unless ``--out`` is given). Timings depend on machine load: on a shared machine every parallel op waits for
descheduled threads, which swamps the differences measured; the load average before and after is recorded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import platform
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tailor.runner.record import repo_python

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "datasets" / "sst2"
OUT = ROOT / "benchmarks" / "results" / "finetune_speed.json"
MODELS = ROOT / "benchmarks" / ".models"

MODEL = {
    "arch": "llama",
    "hidden_size": 512,
    "num_layers": 6,
    "num_heads": 8,
    "vocab_size": 12000,
    "max_position_embeddings": 512,
}
PROMPT = {
    "chat": "completion",
    "instruction": "Is the sentiment of this movie review positive or negative?",
    "input": "Review: {{ text }}",
    "answer_prefix": "Sentiment:",
    "verbalizers": {"negative": "negative", "positive": "positive"},
}
LORA = {"rank": 8, "alpha": 16.0, "dropout": 0.0, "target_modules": "all-linear"}
LEARNING_RATE = 2e-4
BATCH = 16
MAX_LENGTH = 128
WARMUP = 0.1
MAX_GRAD_NORM = 1.0
SEED = 0


def log(msg: str) -> None:
    print(msg, flush=True)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ----------------------------------------------------------------------------------------------- setup


def train_examples(n: int | None = None) -> list[Any]:
    """The first ``n`` SST-2 train examples (the test split is never read)."""
    from tailor.types import Example

    out = []
    with open(DATA / "train.jsonl") as f:
        for line in f:
            row = json.loads(line)
            out.append(Example(row["id"], {"text": row["text"]}, row["label"]))
            if n is not None and len(out) == n:
                break
    return out


def task_info() -> Any:
    from tailor.contract import TaskInfo

    return TaskInfo("sst2", "classification", ("negative", "positive"), ("text",), ("accuracy",))


def model_folder() -> Path:
    """The benchmark model, built once (tokenizer trained on the default corpus plus the SST-2 train texts)."""
    from tailor.testing import default_corpus, tiny_lm_path

    corpus = default_corpus(SEED, max(3000, MODEL["vocab_size"])) + [ex.text for ex in train_examples()]
    return tiny_lm_path(MODELS, **MODEL, corpus=corpus, seed=SEED)


def encode(model_dir: Path, examples: list[Any]) -> tuple[list[Any], Any]:
    """Token ids of ``examples`` as tailor renders and tokenizes them for training, and the LanguageModel."""
    from tailor.backends.local.lm import LanguageModel
    from tailor.config.task import ModelSpec
    from tailor.prompting import PromptOptions
    from tailor.tuning.recipe import build_predictor
    from tailor.tuning.sft import encode_examples

    lm = LanguageModel.from_spec(ModelSpec(name=str(model_dir)))
    lm.cap_context(MAX_LENGTH)  # as tailor's recipe does
    # as tailor's recipe builds it (too_long: truncate, its default)
    predictor = build_predictor(lm, PromptOptions(**PROMPT, truncate=True), task_info())
    encoded = encode_examples(predictor, examples, max_length=lm.context_length)
    assert len(encoded.rows) == len(examples), "no example may be skipped"
    return encoded.rows, lm


def answer_labels(row: Any) -> list[int]:
    """Labels aligned with ``row.ids``: -100 on the prompt, the answer's ids after it (answer-only loss)."""
    return [-100] * len(row.prompt_ids) + list(row.answer_ids)


def lora_config() -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=LORA["rank"],
        lora_alpha=LORA["alpha"],
        lora_dropout=LORA["dropout"],
        target_modules=LORA["target_modules"],
        task_type="CAUSAL_LM",
    )


def load_model(model_dir: Path) -> Any:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    model.config.use_cache = False  # training: no KV cache (tailor and TRL pass use_cache=False too)
    return model


def matmul_peak(n: int = 2048, repeats: int = 8) -> float:
    """Best fp32 FLOP/s of an n×n by n×n ``torch.matmul`` on this machine, now."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def probe_seconds_per_example(model_dir: Path, rows: list[Any], pad_id: int) -> float:
    """Seconds per example of a padded LoRA forward/backward step (Trainer-like); also warms the process up."""
    from peft import get_peft_model

    model = get_peft_model(load_model(model_dir), lora_config())
    model.train()
    times = []
    for k in range(3):
        chunk = rows[k * BATCH : (k + 1) * BATCH]
        width = max(r.length for r in chunk)
        ids = torch.full((len(chunk), width), pad_id)
        mask = torch.zeros_like(ids)
        labels = torch.full_like(ids, -100)
        for i, r in enumerate(chunk):
            ids[i, : r.length] = torch.tensor(r.ids)
            mask[i, : r.length] = 1
            labels[i, : r.length] = torch.tensor(answer_labels(r))
        t = time.perf_counter()
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        model.zero_grad(set_to_none=True)
        times.append((time.perf_counter() - t) / len(chunk))
    del model
    gc.collect()
    return float(np.mean(times[1:]))  # the first is warm-up


# ----------------------------------------------------------------------------------------------- FLOPs


@dataclass(frozen=True)
class Shapes:
    """What the FLOPs formula needs from the model."""

    matmul: int  # Σ in·out over the decoder's linear layers
    lora: int  # Σ r·(in + out) over the adapted (all decoder linear) layers
    layers: int
    hidden: int
    vocab: int

    @classmethod
    def of(cls, model: Any, rank: int) -> Shapes:
        linears = [m for m in model.model.layers.modules() if isinstance(m, torch.nn.Linear)]
        config = model.config
        return cls(
            matmul=sum(m.in_features * m.out_features for m in linears),
            lora=sum(rank * (m.in_features + m.out_features) for m in linears),
            layers=config.num_hidden_layers,
            hidden=config.hidden_size,
            vocab=model.get_output_embeddings().out_features,
        )

    def flops(self, rows: list[Any], head: str) -> float:
        """Training FLOPs of one pass over ``rows``; the output layer on answer positions or on all of them."""
        total = 0.0
        for r in rows:
            n, a = r.length, len(r.answer_ids)
            total += 4 * self.matmul * n + 6 * self.lora * n + 12 * self.layers * self.hidden * n * n
            total += 4 * self.vocab * self.hidden * (a if head == "answer" else n)
        return total


# ----------------------------------------------------------------------------------------------- systems


def run_tailor(model_dir: Path, examples: list[Any], steps: int, workdir: Path) -> dict[str, Any]:
    """tailor's ``lora`` method through the method contract; no dev split, so the loop only trains."""
    from tailor.config.task import ModelSpec
    from tailor.contract import Context
    from tailor.methods import METHODS
    from tailor.tuning.sft import encode_examples
    from tailor.types import Split

    method = METHODS["lora"]
    options = method.Options.model_validate(
        {
            "prompt": PROMPT,
            **LORA,
            "learning_rate": LEARNING_RATE,
            "batch_size": BATCH,
            "gradient_accumulation": 1,
            "max_steps": steps,
            "max_length": MAX_LENGTH,
            "warmup_ratio": WARMUP,
            "max_grad_norm": MAX_GRAD_NORM,
            "weight_decay": 0.0,
            "patience": None,
        }
    )
    ctx = Context(task=task_info(), model=ModelSpec(name=str(model_dir)), seed=SEED, workdir=workdir)
    t = time.perf_counter()
    adapted = method.adapt(options, Split("train", tuple(examples)), None, ctx)
    wall = time.perf_counter() - t
    training = adapted.details["training"]
    # the ids tailor trained on, from the predictor it trained with
    lm = adapted.predictor.lm
    trained_rows = encode_examples(adapted.predictor, examples, max_length=lm.context_length).rows
    return {
        "steps": training["steps"],
        "examples": training["examples"],
        "tokens": training["tokens"],
        "train_seconds": training["train_seconds"],
        "wall_seconds": round(wall, 2),
        "tokens_per_s": training["tokens_per_s"],
        "trainable_params": adapted.trainable_params,
        "packing_audit": adapted.details["audits"]["packing"],
        "_rows": trained_rows,
    }


class StepClock:
    """A TrainerCallback timing the training steps: first step's start to last step's end."""

    def __new__(cls) -> Any:
        from transformers import TrainerCallback

        class _Clock(TrainerCallback):
            def __init__(self) -> None:
                self.begin: float | None = None
                self.end: float | None = None
                self.steps = 0

            def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                if self.begin is None:
                    self.begin = time.perf_counter()

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                self.end = time.perf_counter()
                self.steps += 1

            @property
            def seconds(self) -> float:
                return (self.end or 0.0) - (self.begin or 0.0)

        return _Clock()


class TokenCounter:
    """Counts the tokens the decoder is given in training forwards: real ones and all positions (with padding)."""

    def __init__(self, decoder: Any) -> None:
        self.real = 0
        self.positions = 0
        self.examples = 0
        self.forwards = 0
        self.handle = decoder.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module: Any, args: tuple, kwargs: dict) -> None:
        if not (module.training and torch.is_grad_enabled()):
            return
        ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask")
        self.forwards += 1
        self.positions += ids.numel()
        # padded batches carry a 0/1 mask and one example per row; a padding-free row carries no mask, holds no
        # padding, and each of its examples starts at position 0
        if mask is not None:
            self.real += int(mask.sum())
            self.examples += ids.shape[0]
        else:
            self.real += ids.numel()
            self.examples += int((kwargs["position_ids"] == 0).sum())


def common_args(output_dir: Path, steps: int, epochs: int) -> dict[str, Any]:
    return {
        "output_dir": str(output_dir),
        "per_device_train_batch_size": BATCH,
        "gradient_accumulation_steps": 1,
        "learning_rate": LEARNING_RATE,
        "lr_scheduler_type": "linear",
        "warmup_steps": WARMUP,  # a float below 1: a ratio of the steps
        "weight_decay": 0.0,
        "max_grad_norm": MAX_GRAD_NORM,
        "num_train_epochs": epochs,
        "max_steps": steps,
        "use_cpu": True,
        "bf16": False,
        "fp16": False,
        "gradient_checkpointing": False,
        "logging_strategy": "no",
        "save_strategy": "no",
        "eval_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": False,
        "seed": SEED,
    }


def run_trainer(model_dir: Path, rows: list[Any], steps: int, epochs: int, workdir: Path) -> dict[str, Any]:
    """transformers' Trainer, padded batches, labels -100 on the prompt."""
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    t = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = get_peft_model(load_model(model_dir), lora_config())
    data = Dataset.from_list(
        [{"input_ids": r.ids, "attention_mask": [1] * r.length, "labels": answer_labels(r)} for r in rows]
    )
    clock = StepClock()
    counter = TokenCounter(model.get_base_model().model)
    trainer = Trainer(
        model=model,
        args=TrainingArguments(**common_args(workdir, steps, epochs)),
        train_dataset=data,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
        callbacks=[clock],
    )
    quiet(trainer)
    trainer.train()
    wall = time.perf_counter() - t
    return _peer_result(clock, counter, wall, model, {"optimizer": trainer.args.optim})


def run_trl(model_dir: Path, rows: list[Any], steps: int, epochs: int, workdir: Path, padding_free: bool) -> dict:
    """TRL's SFTTrainer on pre-tokenized prompt/completion ids, completion-only loss, padded or padding-free."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    t = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    data = Dataset.from_list(
        [{"input_ids": r.ids, "completion_mask": [0] * len(r.prompt_ids) + [1] * len(r.answer_ids)} for r in rows]
    )
    clock = StepClock()
    config = SFTConfig(
        **common_args(workdir, steps, epochs),
        max_length=None,  # the ids are already at most MAX_LENGTH long (and padding_free requires None)
        packing=False,
        padding_free=padding_free,
        completion_only_loss=True,
        shuffle_dataset=False,
        dataset_num_proc=None,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = SFTTrainer(
            model=load_model(model_dir),
            args=config,
            train_dataset=data,
            processing_class=tokenizer,
            peft_config=lora_config(),
            callbacks=[clock],
        )
    model = trainer.model
    counter = TokenCounter(model.get_base_model().model)
    quiet(trainer)
    trainer.train()
    wall = time.perf_counter() - t
    extra = {"optimizer": trainer.args.optim, "padding_free": padding_free, "loss": "completion_only"}
    return _peer_result(clock, counter, wall, model, extra)


def quiet(trainer: Any) -> None:
    """No printing of the final metrics (``disable_tqdm`` swaps the progress bar for a printer)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)


def _peer_result(clock: Any, counter: TokenCounter, wall: float, model: Any, extra: dict) -> dict[str, Any]:
    counter.handle.remove()
    seconds = clock.seconds
    return {
        "steps": clock.steps,
        "examples": counter.examples,
        "forwards": counter.forwards,
        "tokens": counter.real,
        "positions_computed": counter.positions,
        "padding_fraction": round(1 - counter.real / counter.positions, 4) if counter.positions else None,
        "train_seconds": round(seconds, 3),
        "wall_seconds": round(wall, 2),
        "tokens_per_s": round(counter.real / seconds, 1) if seconds > 0 else 0.0,
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        **extra,
    }


def padding_free_keeps_examples_apart(model_dir: Path, rows: list[Any], pad_id: int) -> dict[str, Any]:
    """TRL's padding-free batch through the model vs the same examples padded: per-example logits must agree."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    model = load_model(model_dir).eval()
    feats = [{"input_ids": r.ids, "labels": answer_labels(r)} for r in rows]
    flat = DataCollatorForLanguageModeling(pad_token_id=pad_id, padding_free=True)(feats)
    padded = DataCollatorForLanguageModeling(pad_token_id=pad_id)(feats)
    with torch.no_grad():
        a = model(**{k: v for k, v in flat.items() if k != "labels"}, use_cache=False).logits[0]
        b = model(**{k: v for k, v in padded.items() if k != "labels"}, use_cache=False).logits
    at, diff = 0, 0.0
    for i, r in enumerate(rows):
        diff = max(diff, float((a[at : at + r.length] - b[i, : r.length]).abs().max()))
        at += r.length
    del model
    return {"examples": len(rows), "max_abs_logit_diff": diff, "separate": diff < 1e-3}


# ----------------------------------------------------------------------------------------------- main


def plan(args: argparse.Namespace, seconds_per_example: float, pool: int) -> tuple[int, int, int]:
    """(examples, epochs, steps): whole epochs over the first examples of train, sized to last about --seconds."""
    if args.quick:
        wanted = 4 * BATCH
    elif args.examples:
        wanted = args.examples
    else:
        wanted = int(args.seconds / seconds_per_example)
    epochs = max(1, math.ceil(wanted / pool))
    n = min(max(BATCH, round(wanted / epochs / BATCH) * BATCH), pool // BATCH * BATCH)
    return n, epochs, epochs * n // BATCH


def run_all(args: argparse.Namespace, model_dir: Path, examples: list, rows: list, epochs: int, steps: int) -> dict:
    """Each system in turn on the same data; the peers only after their data is checked against tailor's."""
    pad_id = rows_pad_id(model_dir)
    systems: dict[str, dict[str, Any]] = {}
    extra: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="finetune_speed_") as tmp:
        work = Path(tmp)
        log("(a) tailor lora …")
        systems["tailor"] = run_tailor(model_dir, examples, steps, work / "tailor")
        trained = [(r.prompt_ids, r.answer_ids) for r in systems["tailor"].pop("_rows")]
        if trained != [(r.prompt_ids, r.answer_ids) for r in rows]:
            raise SystemExit("the peers' token ids differ from the ones tailor trained on")
        extra["same_token_ids_as_tailor"] = True
        report("tailor", systems["tailor"])

        log("(b) transformers Trainer, padded …")
        systems["trainer"] = run_trainer(model_dir, rows, steps, epochs, work / "trainer")
        report("trainer", systems["trainer"])

        if args.trl in ("both", "padded"):
            log("(c) TRL SFTTrainer, padded …")
            systems["trl_padded"] = run_trl(model_dir, rows, steps, epochs, work / "trl_padded", False)
            report("trl_padded", systems["trl_padded"])
        if args.trl in ("both", "padding_free"):
            check = extra["trl_padding_free_check"] = padding_free_keeps_examples_apart(model_dir, rows[:8], pad_id)
            diff = check["max_abs_logit_diff"]
            log(f"    padding-free keeps examples apart: {check['separate']} (max |Δlogit| {diff:.1e})")
            if check["separate"]:
                log("(c) TRL SFTTrainer, padding_free …")
                systems["trl_padding_free"] = run_trl(model_dir, rows, steps, epochs, work / "trl_padding_free", True)
                report("trl_padding_free", systems["trl_padding_free"])
    return {"systems": systems, **extra}


def rows_pad_id(model_dir: Path) -> int:
    """The pad id the peers' collators use: the tokenizer's own (tailor's packed rows use the same)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir)).pad_token_id


def summarize(systems: dict, rows: list, epochs: int, n: int, shapes: Shapes, peak: float) -> dict[str, Any]:
    """Checks of what each system processed, its FLOPs and MFU, and the headline figures."""
    expected = int(epochs * sum(r.length for r in rows))
    for name, s in systems.items():
        s["tokens_match_expected"] = s["tokens"] == expected and s["examples"] == epochs * n
        if not s["tokens_match_expected"]:
            got, want = f"{s['examples']} examples, {s['tokens']} tokens", f"{epochs * n}, {expected}"
            log(f"warning: {name} processed {got}; expected {want}")
        s["train_flops"] = epochs * shapes.flops(rows, "answer" if name == "tailor" else "all")
        s["useful_train_flops"] = epochs * shapes.flops(rows, "answer")
        s["mfu"] = round(s["train_flops"] / s["train_seconds"] / peak, 4)
        s["useful_mfu"] = round(s["useful_train_flops"] / s["train_seconds"] / peak, 4)

    tailor, trainer = systems["tailor"], systems["trainer"]
    trl_runs = [k for k in systems if k.startswith("trl_")]
    trl_best = max(trl_runs, key=lambda k: systems[k]["tokens_per_s"]) if trl_runs else None
    trl = systems[trl_best] if trl_best else {}
    best_peer = max(trainer["tokens_per_s"], trl.get("tokens_per_s", 0.0))
    return {
        "tailor_tokens_per_s": tailor["tokens_per_s"],
        "trainer_tokens_per_s": trainer["tokens_per_s"],
        "trl_tokens_per_s": trl.get("tokens_per_s"),
        "trl_setting": trl_best and trl_best.removeprefix("trl_"),
        "ratio_vs_best_peer": round(tailor["tokens_per_s"] / best_peer, 3),
        "ratio_vs_trainer": round(tailor["tokens_per_s"] / trainer["tokens_per_s"], 3),
        "ratio_vs_trl": round(tailor["tokens_per_s"] / trl["tokens_per_s"], 3) if trl else None,
        "mfu": tailor["mfu"],
        "trainer_mfu": trainer["mfu"],
        "trl_mfu": trl.get("mfu"),
        "tailor_useful_mfu": tailor["useful_mfu"],
        "trainer_useful_mfu": trainer["useful_mfu"],
        "trl_useful_mfu": trl.get("useful_mfu"),
        "expected_tokens": expected,
        "mfu_definition": (
            "training FLOPs per second / peak_flops. FLOPs per example of L real tokens (A of them answer tokens): "
            "4·M·L (decoder linear layers: forward 2·M·L + input-gradient backward 2·M·L; the base is frozen so no "
            "weight gradients) + 6·R·L (LoRA forward, input and weight gradients) + 12·n_layers·d·L² (attention "
            "scores and values over the example's own L×L, forward 4·d·L² + backward 8·d·L² per layer) + 4·V·d·H "
            "(output layer forward + input gradient on H positions); M = Σ in·out of the decoder's linear layers "
            f"= {shapes.matmul}, R = Σ r·(in+out) = {shapes.lora}, d = {shapes.hidden}, V = {shapes.vocab}, "
            f"n_layers = {shapes.layers}. mfu / trainer_mfu / trl_mfu: H where each system runs the output layer on "
            "real tokens (tailor: the answer-predicting positions, H = A; Trainer and TRL: every position, H = L; "
            "TRL's recomputation of logits in its backward not counted). *_useful_mfu: H = A for all. Padding, "
            "norms, activations and the extra attention of packed or flattened rows are not counted."
        ),
        "timing_definition": (
            "tailor: details.training.train_seconds (its clock around each step: batch building, forward, backward, "
            "clipping, optimizer); Trainer and TRL: first on_step_begin to last on_step_end of a TrainerCallback "
            "(includes their data loading and collation between steps). wall_seconds: the whole call, with model "
            "loading, PEFT wrapping and data preparation. Real tokens: prompt + answer tokens of the examples "
            "processed (tailor's own count; for the peers, a forward pre-hook on the decoder summing the attention "
            "mask, or every position of a padding-free row)."
        ),
        "notes": [
            "Every system trains the same examples (same token ids) for the same number of epochs and steps, in its "
            "own shuffled order.",
            "TRL 1.16 computes its loss with a fused, chunked LM head; on CPU (no Triton) it scores every position, "
            "padding included, and recomputes the logits in its backward.",
            "Trainer and TRL use their default optimizer (fused AdamW); tailor uses torch.optim.AdamW's default.",
            "Tailor's time covers its steps only; the audits it runs before training (template, answer mask, "
            "packing) are in its wall_seconds.",
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=75, help="target training seconds per system (padded speed)")
    ap.add_argument("--examples", type=int, default=0, help="train examples per epoch (0: sized from --seconds)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--trl", choices=["both", "padded", "padding_free"], default="both", help="TRL settings to time")
    ap.add_argument("--quick", action="store_true", help="smoke check: 4 steps each, result to a temporary file")
    ap.add_argument("--out", type=Path, default=None, help=f"result file (default {OUT.relative_to(ROOT)})")
    args = ap.parse_args()
    out = args.out or (Path(tempfile.gettempdir()) / "finetune_speed_quick.json" if args.quick else OUT)

    import datasets
    import peft
    import transformers
    import trl
    from transformers.utils import logging as hf_logging

    import tailor

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    result: dict[str, Any] = {
        "command": " ".join(["HF_HUB_OFFLINE=1", repo_python(), *sys.argv]),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "threads": torch.get_num_threads(),
        "versions": {
            "tailor": tailor.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "trl": trl.__version__,
            "python": platform.python_version(),
        },
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "load_average_before": loadavg(),
    }

    # ---- model, peak, data size -------------------------------------------------------------------------
    t = time.perf_counter()
    model_dir = model_folder()
    log(f"model folder {model_dir} ({time.perf_counter() - t:.1f} s)")
    peak_before = matmul_peak()
    log(f"fp32 matmul peak {peak_before / 1e9:.1f} GFLOP/s ({torch.get_num_threads()} threads)")
    pool = train_examples()
    probe_rows, lm = encode(model_dir, pool[:64])
    shapes = Shapes.of(lm.model, LORA["rank"])
    per_example = probe_seconds_per_example(model_dir, probe_rows, lm.tokenizer.pad_token_id)
    n, epochs, steps = plan(args, per_example, len(pool))
    log(f"probe: {per_example * 1e3:.1f} ms per example padded → {n} examples × {epochs} epoch(s) = {steps} steps")

    # ---- data: tailor's rendering and tokenization --------------------------------------------------------
    examples = pool[:n]
    rows, lm = encode(model_dir, examples)
    lengths = np.array([r.length for r in rows])
    answers = np.array([len(r.answer_ids) for r in rows])
    result.update(
        model=str(model_dir.relative_to(ROOT)),
        model_config={**MODEL, "intermediate_size": lm.model.config.intermediate_size},
        model_params=sum(p.numel() for p in lm.model.parameters()),
        data={
            "dataset": "sst2 train.jsonl, first N rows (test never read)",
            "examples": n,
            "epochs": epochs,
            "steps": steps,
            "batch_size": BATCH,
            "tokens_per_epoch": int(lengths.sum()),
            "answer_tokens_per_example": round(float(answers.mean()), 2),
            "example_prompt": lm.tokenizer.decode(rows[0].prompt_ids),
        },
        seq_len={
            "max_length": MAX_LENGTH,
            "mean_tokens_per_example": round(float(lengths.mean()), 2),
            "max_tokens_per_example": int(lengths.max()),
            "min_tokens_per_example": int(lengths.min()),
        },
        prompt=PROMPT,
        lora={**LORA, "learning_rate": LEARNING_RATE, "warmup_ratio": WARMUP, "max_grad_norm": MAX_GRAD_NORM},
        probe_ms_per_example_padded=round(per_example * 1e3, 2),
    )
    log(
        f"{result['model_params'] / 1e6:.1f}M params; {n} examples, {lengths.mean():.1f} tokens each on average "
        f"(max {lengths.max()}), {answers.mean():.1f} answer tokens"
    )
    del lm, probe_rows
    gc.collect()

    # ---- the systems, then the peak again -----------------------------------------------------------------
    ran = run_all(args, model_dir, examples, rows, epochs, steps)
    peak_after = matmul_peak()
    peak = max(peak_before, peak_after)
    log(f"fp32 matmul peak after: {peak_after / 1e9:.1f} GFLOP/s")

    systems = ran.pop("systems")
    result.update(ran)
    result.update(summarize(systems, rows, epochs, n, shapes, peak))
    result.update(
        peak_flops=peak,
        peak_gflops_before=round(peak_before / 1e9, 1),
        peak_gflops_after=round(peak_after / 1e9, 1),
        peak_definition="best time of 8 fp32 torch.matmul of 2048x2048 by 2048x2048 (2·n³ FLOPs), measured before "
        "and after the systems run, in this process; the larger is used",
        systems=systems,
        load_average_after=loadavg(),
        threads_after=torch.get_num_threads(),
        note="quick smoke check: figures not meaningful" if args.quick else None,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    headline = (
        "tailor_tokens_per_s",
        "trainer_tokens_per_s",
        "trl_tokens_per_s",
        "trl_setting",
        "ratio_vs_best_peer",
        "mfu",
        "trainer_mfu",
        "trl_mfu",
        "model_params",
        "seq_len",
    )
    log(json.dumps({k: result[k] for k in headline}, indent=2))
    log(f"wrote {out}")


def report(name: str, s: dict[str, Any]) -> None:
    gc.collect()
    log(
        f"    {name}: {s['steps']} steps, {s['tokens']} tokens in {s['train_seconds']:.1f} s → "
        f"{s['tokens_per_s']:.0f} tokens/s (wall {s['wall_seconds']:.1f} s)"
    )


if __name__ == "__main__":
    main()
