"""What each generative fine-tuning method learns, and at what cost, on one tiny random model and one synthetic task.

Setup (the same as ``tests/tuning/test_tuning_accuracy.py``, which asserts thresholds on these figures):

  * model: a random Llama from ``tailor.testing.tiny_lm_path(arch="llama", **LEARNABLE)`` — width 64, 2 layers,
    4 heads, a ~1,000-token BPE vocabulary, ~0.23M parameters, initialized with std 0.125 and the output layer
    doubled (``LEARNABLE``; at transformers' default initialization methods that freeze the output layer plateau,
    see ``build_tiny_lm``); built into ``benchmarks/.models/`` (git-ignored) and reused;
  * data: ``tailor.testing.sentiment_task(seed=0)`` — two labels, 400 train / 60 dev / 100 test sentences, each
    ending with one of 24 sentiment words, label-balanced, disjoint texts; chance is 0.5;
  * prompt: plain completion, no answer cue (``chat: completion, answer_prefix: ""``), labels scored by
    log-likelihood, for every method including the zero-shot baseline (``prompt``, nothing trained);
  * training: 4 epochs of batch 8 (200 steps), dev accuracy after each epoch, best epoch kept; learning rates
    from a sweep on this data (below); seeds 0, 1 and 2 (the adapter's initialization and the example order);
    the data is the same for every seed;
  * generation: LoRA on ``tailor.testing.routine_task(seed=0)`` (160 train / 24 dev / 48 test; a fixed answer of
    one to four words per question, ended by EOS only — no stop strings), exact match on test via greedy
    ``generate``, against the same model zero-shot.

Accuracy is measured on the adapted model after it is saved and loaded back. ``adapt_seconds`` is the wall time
of ``adapt`` (model load, training, dev evaluations, audits); ``train_seconds`` the optimizer steps alone.

Run (from the repository root):

    .venv/bin/python benchmarks/finetune_synthetic.py [--threads 2] [--seeds 0 1 2]

Writes ``benchmarks/results/finetune_synthetic.json``. Accuracies are deterministic on CPU for a given torch
build; timings depend on machine load (the load average before and after is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tailor.runner.record import repo_python

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "finetune_synthetic.json"
MODELS = ROOT / "benchmarks" / ".models"

COMPLETION = {"chat": "completion", "answer_prefix": ""}
TRAINING: dict[str, Any] = {"epochs": 4, "batch_size": 8, "prompt": COMPLETION}
# name in the record -> (registered method, options beyond TRAINING)
METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "prompt (zero-shot)": ("prompt", {}),
    "full": ("full", {"learning_rate": 1e-3}),
    "lora": ("lora", {"learning_rate": 1e-2}),
    "dora": ("lora", {"learning_rate": 1e-2, "dora": True}),
    "ia3": ("ia3", {"learning_rate": 1e-1}),
    "prompt-tuning": ("prompt-tuning", {"learning_rate": 1e-1}),
    "prefix-tuning": ("prefix-tuning", {"learning_rate": 3e-2}),
}


def run_one(
    method_name: str, settings: dict[str, Any], task: Any, model: Any, splits: tuple, seed: int, scratch: Path
) -> dict[str, Any]:
    from tailor.contract import Context
    from tailor.methods import METHODS as REGISTRY
    from tailor.types import adapting

    train, dev, test = splits
    method = REGISTRY[method_name]
    options = method.Options.model_validate(settings)
    workdir = scratch / f"{method_name}-{seed}-{time.time_ns()}"
    workdir.mkdir(parents=True)
    ctx = Context(task=task, model=model, seed=seed, workdir=workdir / "work")
    ctx.workdir.mkdir()
    method.check(options, train, ctx)
    start = time.perf_counter()
    with adapting(method_name):
        adapted = method.adapt(options, train, dev, ctx)
    adapt_seconds = time.perf_counter() - start
    (workdir / "saved").mkdir()
    adapted.save(workdir / "saved")
    loaded = method.load(workdir / "saved", Context(task=task, model=model, seed=seed, workdir=workdir / "saved"))
    start = time.perf_counter()
    preds = loaded.predict(test.examples)
    predict_seconds = time.perf_counter() - start
    if task.kind == "classification":
        score = sum(p.label == ex.label for p, ex in zip(preds, test.examples)) / len(test)
    else:
        score = sum(p.output in ex.target for p, ex in zip(preds, test.examples)) / len(test)
    training = (getattr(adapted, "details", None) or {}).get("training", {})
    return {
        "seed": seed,
        "test_score": round(score, 4),
        "best_dev": training.get("best_metric"),
        "dev_by_epoch": [round(e["metric"], 4) for e in training.get("evals", [])],
        "trainable_params": adapted.trainable_params,
        "steps": training.get("steps", 0),
        "tokens": training.get("tokens", 0),
        "train_flops": training.get("flops", 0.0),
        "train_seconds": training.get("train_seconds", 0.0),
        "adapt_seconds": round(adapt_seconds, 3),
        "predict_seconds": round(predict_seconds, 3),
        "sample_outputs": [p.output for p in preds[:4]] if task.kind != "classification" else None,
    }


def summarize(name: str, method_name: str, settings: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    scores = [r["test_score"] for r in runs]
    return {
        "method": name,
        "registered_method": method_name,
        "options": settings,
        "test_accuracy_mean": round(sum(scores) / len(scores), 4),
        "test_accuracy_min": min(scores),
        "test_accuracy_by_seed": scores,
        "trainable_params": runs[0]["trainable_params"],
        "steps": runs[0]["steps"],
        "adapt_seconds_mean": round(sum(r["adapt_seconds"] for r in runs) / len(runs), 2),
        "train_seconds_mean": round(sum(r["train_seconds"] for r in runs) / len(runs), 2),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()

    import peft
    import torch
    import transformers

    from tailor.config.task import ModelSpec
    from tailor.contract import TaskInfo
    from tailor.testing import LEARNABLE, routine_task, sentiment_task, tiny_lm_path

    torch.set_num_threads(args.threads)
    load_before = list(os.getloadavg())
    path = tiny_lm_path(MODELS, arch="llama", **LEARNABLE)
    model = ModelSpec(name=str(path))
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path)
    with torch.device("meta"):
        n_params = sum(p.numel() for p in transformers.AutoModelForCausalLM.from_config(config).parameters())

    sentiment = sentiment_task(seed=0)
    task = TaskInfo("sentiment", "classification", ("negative", "positive"), ("text",), ("accuracy",))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for name, (method_name, extra) in METHODS.items():
            settings = dict(COMPLETION) if method_name == "prompt" else TRAINING | extra
            seeds = args.seeds[:1] if method_name == "prompt" else args.seeds  # nothing random to vary
            runs = [run_one(method_name, settings, task, model, sentiment, s, scratch) for s in seeds]
            results.append(summarize(name, method_name, settings, runs))
            r = results[-1]
            print(
                f"{name:20s} acc {r['test_accuracy_by_seed']}  params {r['trainable_params']:>7d}  "
                f"adapt {r['adapt_seconds_mean']:.1f}s  steps {r['steps']}",
                file=sys.stderr,
            )

        routine = routine_task(seed=0)
        gen_task = TaskInfo("routine", "qa", None, ("question",), ("exact_match", "f1"))
        prompt = {"input": "{{ question }}", "stop": [], "max_new_tokens": 10}
        generation = []
        for name, method_name, settings, seeds in (
            ("prompt (zero-shot)", "prompt", prompt, args.seeds[:1]),
            ("lora", "lora", {"learning_rate": 1e-2, "epochs": 4, "batch_size": 8, "prompt": prompt}, args.seeds),
        ):
            runs = [run_one(method_name, settings, gen_task, model, routine, s, scratch) for s in seeds]
            summary = summarize(name, method_name, settings, runs)
            summary["exact_match_by_seed"] = summary.pop("test_accuracy_by_seed")
            summary["exact_match_mean"] = summary.pop("test_accuracy_mean")
            summary["exact_match_min"] = summary.pop("test_accuracy_min")
            generation.append(summary)
            print(f"generation {name:20s} exact match {summary['exact_match_by_seed']}", file=sys.stderr)

    record = {
        "command": f"{repo_python()} benchmarks/finetune_synthetic.py "
        + f"--threads {args.threads} --seeds {' '.join(map(str, args.seeds))}",
        "threads": args.threads,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "python": platform.python_version(),
        },
        "load_average_before": [round(x, 2) for x in load_before],
        "model": {
            "build": {"arch": "llama", **LEARNABLE},
            "params": n_params,
            "hidden_size": config.hidden_size,
            "layers": config.num_hidden_layers,
            "vocab_size": config.vocab_size,
        },
        "data": {
            "task": "tailor.testing.sentiment_task(seed=0)",
            "train": len(sentiment[0]),
            "dev": len(sentiment[1]),
            "test": len(sentiment[2]),
            "labels": list(task.labels or ()),
            "chance": 0.5,
        },
        "prompt": COMPLETION,
        "training": {k: v for k, v in TRAINING.items() if k != "prompt"},
        "seeds": args.seeds,
        "classification": results,
        "generation": {
            "task": "tailor.testing.routine_task(seed=0)",
            "train": len(routine[0]),
            "dev": len(routine[1]),
            "test": len(routine[2]),
            "metric": "exact_match",
            "results": generation,
        },
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
