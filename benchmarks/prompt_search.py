"""prompt-search against the hand-written prompts, and against random search over the same choices.

    .venv/bin/python benchmarks/prompt_search.py [--tasks sst2,ag_news,trec] [--budgets 50,150,300] [--seeds 3]
        [--out benchmarks/results/prompt_search.json] [--runs runs/prompt_search] [--workers 1]

For each task, one `tailor run` of a task file made from ``benchmarks/TASK.yaml`` (same data, splits, limits and
seed) holding:

  * the task file's hand-written prompt-route entries as they are (zero-shot with its wordings as variants, and
    few-shot) — the row dev prefers among them is the one to beat;
  * `prompt-search` with TPE and with random search, at every budget (in dev evaluations: candidate scorings on one
    minibatch) and every seed, each starting from the same hand-written wordings.

Nothing is chosen on test: each search chooses on dev (its held-out part), the hand-written row by its dev score.
Reported per task: the dev-preferred hand-written row's test score, the TPE search's at the largest budget and the
first seed, the paired-bootstrap 95% interval of their difference on test, the evaluations the search used, and per
budget the mean test score over seeds of TPE and of random search, with best-so-far dev curves. The run folders are
kept (``--runs``), so a stopped benchmark continues where it stopped (`tailor run --resume`). Tasks may run as
separate invocations at once (one per core, same ``--out``): each adds its own entry, with its own command. Per
budget, ``diff_mean`` and ``diff_se`` are TPE minus random search paired by seed; with three seeds they are mostly
noise, so ``--budgets 150 --seeds 10 --out benchmarks/results/prompt_search_150x10.json --runs
runs/prompt_search_150x10`` gives the comparison more seeds (seeds 0-2 are the same runs as the main table's).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
DATA_KEYS = ("path", "train", "dev", "test")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
HANDWRITTEN = ("zero-shot", "few-shot")


def task_file(task: str, budgets: list[int], seeds: list[int], where: Path) -> Path:
    """The benchmark's task file for ``task``: its hand-written prompts and every search."""
    source = REPO / "benchmarks" / f"{task}.yaml"
    doc = yaml.safe_load(source.read_text())
    doc["data"] = {k: str((source.parent / v).resolve()) if k in DATA_KEYS else v for k, v in doc["data"].items()}
    doc.pop("summary", None)
    hand = [m for m in doc["methods"] if m["name"] in HANDWRITTEN]
    zero = next(m for m in hand if m["name"] == "zero-shot")
    searches = [
        {
            "name": "prompt-search",
            "label": f"search-{sampler}-{budget}-s{seed}",
            "budget": {"evaluations": budget},
            "sampler": sampler,
            "seed": seed,
            "templates": zero.get("templates", ["{{ text }}"]),
            "label_descriptions": zero.get("label_descriptions"),
        }
        for budget in budgets
        for seed in seeds
        for sampler in ("tpe", "random")
    ]
    doc["methods"] = hand + searches
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"{task}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run(task: Path, out: Path, workers: int = 1) -> None:
    args = [sys.executable, "-m", "tailor", "run", str(task), "--workers", str(workers)]
    args += ["--resume", str(out)] if (out / "run.sqlite").exists() else ["--out", str(out)]
    done = subprocess.run(args, env=ENV)
    if done.returncode not in (0, 3):  # 3: some trial failed; it is reported below
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode})")


def _test(store: Any, method: str) -> tuple[list[str], list[Any], list[Any]]:
    """A row's test predictions: example ids, gold labels, predicted labels."""
    preds = store.predictions(method, "test")
    return [p["example_id"] for p in preds], [p["target"] for p in preds], [p["label"] for p in preds]


def paired_by_seed(tpe: list[float], rand: list[float]) -> dict[str, float | None]:
    """TPE minus random search, seed by seed: the mean difference and its standard error (None with one seed) — how
    far apart the two samplers are, measured against how much a seed alone moves them."""
    d = np.asarray(tpe) - np.asarray(rand)
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else None
    return {"diff_mean": round(float(d.mean()), 10), "diff_se": None if se is None else round(se, 10)}


def summarize(run_dir: Path, budgets: list[int], seeds: list[int]) -> dict[str, Any]:
    from tailor.runner.store import RunStore
    from tailor.stats.metrics import METRICS, paired_bootstrap

    store = RunStore.open_existing(run_dir)
    try:
        rows = {r["trial"]: r for r in store.results() if r["status"] == "ok"}
        primary = "accuracy"
        hand = [r for r in rows.values() if r["family"] in HANDWRITTEN]
        best = max(hand, key=lambda r: (r["dev"][primary], -r["position"]))
        lead = f"search-tpe-{max(budgets)}-s{seeds[0]}"
        ids_a, gold, a = _test(store, lead)
        ids_b, _, b = _test(store, best["trial"])
        assert ids_a == ids_b, "the two rows were scored on different test examples"
        labels = sorted(set(gold))
        prep = METRICS[primary].prepare
        diff, lo, hi, p = paired_bootstrap(prep(gold, a, labels), prep(gold, b, labels), 2000, 0.95, 0)
        vs_random, curves = {}, {}
        for budget in budgets:
            means = {}
            for sampler in ("tpe", "random"):
                tests = [rows[f"search-{sampler}-{budget}-s{s}"]["test"][primary]["value"] for s in seeds]
                means[sampler] = tests
            vs_random[str(budget)] = {  # rounded: equal numbers right must read as equal means, not differ in an ulp
                "search_test_mean": round(float(np.mean(means["tpe"])), 10),
                "random_test_mean": round(float(np.mean(means["random"])), 10),
                "search_test": means["tpe"],
                "random_test": means["random"],
                **paired_by_seed(means["tpe"], means["random"]),
            }
        for sampler in ("tpe", "random"):
            for s in seeds:
                trace = rows[f"search-{sampler}-{max(budgets)}-s{s}"]["details"]["search"]["trace"]
                curves[f"{sampler}-s{s}"] = [  # from the first leader on: the best on the whole search part
                    [t["spent"]["evaluations"], t["best_so_far"]]
                    for t in trace
                    if t["part"] == "search" and t["best_so_far"] is not None
                ]
        search = rows[lead]["details"]["search"]
        return {
            "best_handwritten": {"method": best["trial"], "dev": best["dev"][primary]},
            "best_handwritten_test": best["test"][primary]["value"],
            "search": {"method": lead, "winner": search["winner"], "select_score": search["select_score"]},
            "search_test": rows[lead]["test"][primary]["value"],
            "diff": diff,
            "diff_ci_low": lo,
            "diff_ci_high": hi,
            "p_bootstrap": p,
            "evaluations_used": search["spent"]["evaluations"],
            "vs_random": vs_random,
            "best_so_far_curves": curves,
            "n_test": len(a),
            "run_dir": os.path.relpath(run_dir, REPO),
        }
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="sst2,ag_news,trec")
    parser.add_argument("--budgets", default="50,150,300")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/prompt_search.json")
    parser.add_argument("--runs", default="runs/prompt_search")
    parser.add_argument("--workers", type=int, default=1, help="searches side by side (tailor run --workers)")
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    seeds = list(range(args.seeds))
    out = REPO / args.out
    for task in args.tasks.split(","):
        runs = REPO / args.runs
        path = task_file(task, budgets, seeds, runs / "tasks")
        run(path, runs / task, args.workers)
        summary = summarize(runs / task, budgets, seeds)
        # read just before writing: tasks run as separate invocations at once (one per core) each add their own
        result: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
        summary["command"] = (
            f"python benchmarks/prompt_search.py --tasks {task} --budgets {args.budgets} --seeds {args.seeds}"
        ) + (f" --workers {args.workers}" if args.workers > 1 else "")
        result[task] = summary
        result.pop("command", None)  # each task keeps its own
        result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(terse=True)}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({k: v for k, v in result[task].items() if k != "best_so_far_curves"}, indent=2))


if __name__ == "__main__":
    main()
