"""Prediction speed of fine-tuned causal LMs against prompting the same model: seconds per 1,000 test queries.

A fine-tuned model predicts through the prompt route's scorer (``LanguageModel.score``: the prompts' shared prefix
run once, its KV cache reused for every example), so once trained it should answer as fast as the prompted model
does. This measures that on one real model and one task:

  * model: a local causal LM folder (``--model``; measured with SmolLM2-135M-Instruct, dequantized to an ordinary
    fp32 Llama folder, see ``../shared/OFFLINE.md``), on the CPU;
  * task: SST-2 (``../shared/datasets/sst2``). Timed queries: the first ``--n`` (200) examples of ``dev.jsonl``;
    training: the first ``--train`` (64) examples of ``train.jsonl``; the dev sample evaluated while training:
    the next 16 dev examples (disjoint from the timed ones). The test split is not read;
  * methods: ``prompt`` zero-shot (the baseline), then ``lora``, ``full`` and ``prompt-tuning`` (8 virtual
    tokens), each trained for ``--steps`` (3) steps of 8 examples on the same prompt (instruction, ``Review:``
    input, ``Sentiment:`` answer prefix; the model's chat template). The speed does not depend on how well a
    method learned; accuracy on the timed examples is recorded only to show each predicts sensibly;
  * timing: every method is adapted first (not timed) and warmed up on 4 examples; then ``--repeats`` (3)
    rounds, each predicting every timed example cold with every method, in chunks of ``--chunk`` (50) queries
    that the methods take in turn (the order rotating), so a change of load on a shared machine falls on all of
    them alike. Per method: wall seconds and the process's CPU seconds per round, their medians per 1,000
    queries, and the ratio to ``prompt`` in the same round (median over rounds). The scorer's counts say how
    many queries were scored on top of the cached prefix and how many fell back to full sequences.

Run (from the repository root):

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/finetune_predict_speed.py --model /tmp/smol/folder \\
        --model-name SmolLM2-135M-Instruct [--methods prompt lora full prompt-tuning] [--n 200] [--repeats 3] \\
        [--chunk 50] [--threads 2]

Writes ``benchmarks/results/finetune_predict_speed.json`` (``--out``); paths in it are relative to the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from tailor.config.task import ModelSpec  # noqa: E402
from tailor.contract import Context, TaskInfo  # noqa: E402
from tailor.methods import METHODS  # noqa: E402
from tailor.types import Example, Split, adapting  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "datasets" / "sst2"
OUT = ROOT / "benchmarks" / "results" / "finetune_predict_speed.json"
TASK = TaskInfo("sst2", "classification", ("negative", "positive"), ("text",), ("accuracy",))
PROMPT = {
    "instruction": "Is the sentiment of this movie review positive or negative?",
    "input": "Review: {{ text }}",
    "answer_prefix": "Sentiment:",
}


def examples(split: str, start: int, n: int) -> list[Example]:
    with open(DATA / f"{split}.jsonl") as f:
        rows = [json.loads(line) for line in f][start : start + n]
    return [Example(r["id"], {"text": r["text"]}, r["label"]) for r in rows]


def options(name: str, steps: int) -> dict:
    if METHODS[name].route != "finetune":
        return dict(PROMPT)
    tuned = {"prompt": PROMPT, "max_steps": steps, "batch_size": 8, "eval_examples": 16, "max_length": 256}
    return tuned | ({"virtual_tokens": 8} if name == "prompt-tuning" else {})


def relative(path: Path) -> str:
    return os.path.relpath(path.resolve(), ROOT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="a local causal LM folder")
    ap.add_argument("--model-name", help="what the results call the model (default: the folder's name)")
    ap.add_argument("--methods", nargs="+", default=["prompt", "lora", "full", "prompt-tuning"])
    ap.add_argument("--n", type=int, default=200, help="timed queries (the first N dev examples)")
    ap.add_argument("--train", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=50, help="queries per predict call (methods take turns per chunk)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.methods[0] != "prompt":
        ap.error("the first method is the baseline: prompt")
    torch.set_num_threads(args.threads)

    timed = examples("dev", 0, args.n)
    train = Split("train", tuple(examples("train", 0, args.train)))
    dev = Split("dev", tuple(examples("dev", args.n, 16)))
    spec = ModelSpec(name=args.model)
    load_before = os.getloadavg()

    adapted, record = {}, {}
    for name in args.methods:
        method = METHODS[name]
        opts = method.Options.model_validate(options(name, args.steps))
        ctx = Context(task=TASK, model=spec, seed=0, workdir=Path(tempfile.mkdtemp(prefix="tailor-bench-")))
        t0 = time.perf_counter()
        with adapting(name):
            adapted[name] = method.adapt(opts, train, dev, ctx)
        record[name] = {"adapt_seconds": round(time.perf_counter() - t0, 1)}
        record[name] |= {k: [] for k in ("seconds", "cpu_seconds", "ratio_to_prompt", "cpu_ratio_to_prompt")}
        adapted[name].predict(timed[:4])  # warm-up (first-call allocations), not timed
        print(f"{name}: adapted in {record[name]['adapt_seconds']} s", flush=True)

    chunks = [timed[i : i + args.chunk] for i in range(0, len(timed), args.chunk)]
    for round_ in range(args.repeats):
        wall = dict.fromkeys(args.methods, 0.0)
        cpu = dict.fromkeys(args.methods, 0.0)
        preds: dict[str, list] = {name: [] for name in args.methods}
        counts: dict[str, tuple[int, int]] = {}
        for i, chunk in enumerate(chunks):
            # every chunk goes to every method in turn, the order rotating: a change of load on a shared machine
            # falls on all of them alike
            for name in args.methods[i % len(args.methods) :] + args.methods[: i % len(args.methods)]:
                lm = adapted[name].predictor.lm if hasattr(adapted[name], "predictor") else adapted[name].lm
                before = lm.prefix_cached, lm.prefix_fallbacks
                t0, c0 = time.perf_counter(), time.process_time()
                preds[name] += adapted[name].predict(chunk)
                wall[name] += time.perf_counter() - t0
                cpu[name] += time.process_time() - c0
                got = lm.prefix_cached - before[0], lm.prefix_fallbacks - before[1]
                counts[name] = tuple(a + b for a, b in zip(counts.get(name, (0, 0)), got))
        for name in args.methods:
            r = record[name]
            r["seconds"].append(round(wall[name], 2))
            r["cpu_seconds"].append(round(cpu[name], 2))
            r["ratio_to_prompt"].append(round(wall[name] / wall["prompt"], 3))
            r["cpu_ratio_to_prompt"].append(round(cpu[name] / cpu["prompt"], 3))
            r["accuracy"] = sum(p.label == ex.label for p, ex in zip(preds[name], timed)) / len(timed)
            r["prefix_cached"], r["prefix_fallbacks"] = counts[name]
            print(f"round {round_}: {name} {1000 * wall[name] / len(timed):.1f} s per 1k", flush=True)

    for r in record.values():
        r["seconds_per_1k"] = round(1000 * statistics.median(r["seconds"]) / len(timed), 1)
        r["cpu_seconds_per_1k"] = round(1000 * statistics.median(r["cpu_seconds"]) / len(timed), 1)
        r["ratio_to_prompt_median"] = statistics.median(r["ratio_to_prompt"])
        r["cpu_ratio_to_prompt_median"] = statistics.median(r["cpu_ratio_to_prompt"])
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    result = {
        "what": "seconds per 1,000 SST-2 queries, fine-tuned vs prompted, same model, same examples",
        "model": args.model_name or Path(args.model).name,
        "parameters": adapted["prompt"].lm.parameters,
        "data": {"timed": relative(DATA / "dev.jsonl") + f"[:{args.n}]", "train": relative(DATA / "train.jsonl")},
        "settings": {k: v for k, v in vars(args).items() if k not in ("model", "out")},
        "methods": record,
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": args.threads,
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "git": commit,
            "src_modified": subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "src"], cwd=ROOT).returncode != 0,
            "command": "python " + " ".join(relative(Path(a)) if Path(a).exists() else a for a in sys.argv),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    summary = ("seconds_per_1k", "ratio_to_prompt_median", "cpu_ratio_to_prompt_median", "prefix_fallbacks")
    print(json.dumps({n: [r[k] for k in summary] for n, r in record.items()}))


if __name__ == "__main__":
    main()
