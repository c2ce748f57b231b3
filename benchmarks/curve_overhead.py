"""The curve machinery's cost: one `tailor curve` against the same trials started as separate `tailor run`s.

    .venv/bin/python benchmarks/curve_overhead.py [--task benchmarks/curves_sst2.yaml] [--sizes 0,8] [--seeds 2]
        [--out benchmarks/results/curve_overhead.json]

Both sides run the same trials of the same task file (SST-2's curve, every method), on the same draws (a run with
``train_per_class: n`` and ``seed: s`` draws what the curve draws at size n and seed s) and the same dev and test:

  * curve: ``tailor curve TASK --sizes ... --seeds ...`` — one process; each model loaded once; a frozen encoder's
    dev and test embeddings computed once per run; a sample of 256 test examples timed cold per trial.
  * separate: one ``tailor run`` per method entry, size and seed (a zero-shot entry's wordings are variants of one
    run, as in the curve), each with that entry alone, ``train_per_class`` and ``seed`` set — what a user scripting
    a curve around ``tailor run`` would start.

Both are wall-clock times of whole processes (start-up, imports, loading, adapting, evaluating, reports), one after
the other on a quiet machine. ``ratio_vs_separate_runs`` = curve / separate; the goal is ≤ 0.5. The sizes are cut
to 0 and 8 per class and the seeds to 2 (the full curve's 175 trials twice over would take hours here): 14 trials
(10 separate runs) of every method; the ratio holds for the full grid to the extent that the mix of methods and
their trial lengths are alike (larger sizes lengthen the fine-tuning trials, which both sides pay alike).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DATA_KEYS = ("path", "train", "dev", "test")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def tailor(args: list[str]) -> float:
    """Run the tailor CLI to the end; its wall time in seconds (a failure stops the benchmark)."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tailor", *args], env=ENV, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"tailor {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return seconds


def separate_tasks(doc: dict, sizes: list[int], seeds: list[int], where: Path) -> list[Path]:
    """One task file per method entry, size and seed: the entry alone, with that training size and seed."""
    out = []
    base = {k: v for k, v in doc.items() if k not in ("curve", "summary", "methods")}
    for i, entry in enumerate(doc["methods"]):
        takes = [0] if entry["name"] == "zero-shot" else [s for s in sizes if s > 0]
        for size in takes:
            for seed in seeds:
                method = {**entry, "seed": seed, **({"train_per_class": size} if size else {})}
                path = where / f"m{i}-n{size}-s{seed}.yaml"
                path.write_text(yaml.safe_dump({**base, "methods": [method]}, sort_keys=False))
                out.append(path)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="benchmarks/curves_sst2.yaml")
    parser.add_argument("--sizes", default="0,8")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/curve_overhead.json")
    args = parser.parse_args()
    task = (REPO / args.task).resolve()
    doc = yaml.safe_load(task.read_text())
    # the task files written below live in a temporary folder: their data paths are made absolute
    doc["data"] = {k: str((task.parent / v).resolve()) if k in DATA_KEYS else v for k, v in doc["data"].items()}
    sizes = [int(s) for s in args.sizes.split(",")]
    seeds = list(range(doc.get("seed", 0), doc.get("seed", 0) + args.seeds))
    with tempfile.TemporaryDirectory(prefix="curve-overhead-") as tmp:
        where = Path(tmp)
        curve_doc = {k: v for k, v in doc.items() if k != "summary"}
        curve_file = where / "curve.yaml"
        curve_file.write_text(yaml.safe_dump(curve_doc, sort_keys=False))
        tailor(["--help"])  # warm the file cache for imports; timed neither side
        curve_seconds = tailor(
            [
                "curve",
                str(curve_file),
                "--sizes",
                args.sizes,
                "--seeds",
                str(args.seeds),
                "--out",
                str(where / "c"),
                "-q",
            ]
        )
        runs = separate_tasks(curve_doc, sizes, seeds, where)
        per_run = [tailor(["run", str(path), "--out", str(where / f"r-{path.stem}"), "--quiet"]) for path in runs]
        trials = len(json.loads((where / "c" / "report.json").read_text())["leaderboard"])
    separate_seconds = sum(per_run)
    result = {
        "ratio_vs_separate_runs": curve_seconds / separate_seconds,
        "goal": "<= 0.5",
        "curve_seconds": curve_seconds,
        "separate_seconds": separate_seconds,
        "separate_runs": len(runs),
        "separate_seconds_per_run_mean": separate_seconds / len(runs),
        "trials": trials,
        "task": args.task,
        "sizes": sizes,
        "seeds": seeds,
        "command": f"python benchmarks/curve_overhead.py --task {args.task} --sizes {args.sizes} --seeds {args.seeds}",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(terse=True)},
    }
    out = REPO / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
