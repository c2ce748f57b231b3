"""tailor's `contrastive` against setfit 1.2 (its defaults): adapt time and accuracy on AG News, same draws.

    .venv/bin/python benchmarks/contrastive_speed.py [--sizes 8 64] [--seeds 5] [--systems tailor setfit]
        [--setfit-max-steps N] [--big 256] [--device cuda] [--model FOLDER] [--data JSONL] [--out JSON]
        [--weights TEXT] [--first-seed F]

Protocol (that of ``benchmarks/ag_news_8shot.py``): ``k`` examples per class drawn with seeds 0..4 from the first
half of ``../shared/datasets/ag_news/test.jsonl``; accuracy on the whole second half (3,800 examples). Both systems
get the same draw for each (size, seed) and run one after the other in this process, on all cores.

  * tailor: ``METHODS["contrastive"]`` with its defaults (only ``seed`` set); timed: ``adapt`` (loading the
    encoder, fine-tuning, embedding the training set, fitting the head).
  * setfit 1.2: ``SetFitModel.from_pretrained`` on the same local all-MiniLM-L6-v2 folder, ``Trainer`` with
    ``TrainingArguments()`` untouched but for the seed and the checkpoint folder (oversampled unique pairs,
    batch 16, 1 epoch, logistic-regression head);
    timed: loading the model and ``trainer.train()`` (body and head).
  * ``--setfit-max-steps N``: where setfit's defaults take more than N steps, it trains only N of them (its own
    ``max_steps``); its time for the full default run is then extrapolated from its measured seconds per step
    (``seconds_extrapolated``) and its accuracy is not reported (it would be that of a cut-short run). Used where
    setfit's defaults take hours here (64 per class: 3,072 steps, about an hour per draw on this machine).
  * ``--big K``: one tailor trial (seed 0) at K examples per class, timed with accuracy, against setfit's
    defaults at K extrapolated from setfit's seconds per step measured at the largest size run (the pair count
    setfit would train on is computed by setfit's own ``ContrastiveDataset``; nothing is trained for it).

  * ``--device D``: both systems on D (tailor's model spec ``device``, setfit's ``device``); default: each one's
    own choice (the best device present). ``--model``: the encoder for both (a local folder; default: the installed
    all-MiniLM-L6-v2). ``--data``: the AG News test file (default: the shared one). ``--out``: the results file
    (default ``benchmarks/results/contrastive_speed.json``). ``--weights TEXT``: recorded as ``weights`` (how the
    encoder's weights were stored, where they are not the package's own). Paths are recorded relative to the
    repository. On a GPU machine: ``--device cuda --out benchmarks/results/contrastive_speed_h200.json``.
    ``--first-seed F``: continue a run cut short (seeds F..N-1 only; the file's rows of earlier seeds are kept).

Per size: ``tailor_seconds_mean``, ``setfit_seconds_mean``, ``speedup`` (setfit / tailor), ``tailor_accuracy_mean``,
``setfit_accuracy_mean`` and every seed's figures. Results merge into ``benchmarks/results/contrastive_speed.json``
(a run with ``--sizes 64`` keeps the figures of earlier sizes). Before the first timed run, each system trains
two untimed steps (:func:`warm_up`), so that one-time costs of the process fall on neither.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ag_news_8shot
from ag_news_8shot import load_halves

from tailor.backends.models import best_device, resolve_path
from tailor.backends.pool import ModelPool
from tailor.config.task import ModelSpec
from tailor.contract import Context, TaskInfo
from tailor.methods import METHODS
from tailor.progress import RichProgress
from tailor.runner.evaluate import predict_all
from tailor.runner.plan import sample_per_class
from tailor.runner.record import repo_python
from tailor.types import Split, adapting

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "results" / "contrastive_speed.json"
ENCODER = "all-MiniLM-L6-v2"
# --model and --device: the encoder both systems load, and where both run (None: each system's own choice)
SETTINGS: dict[str, Any] = {"model": ENCODER, "device": None}
SCRATCH = Path(tempfile.gettempdir()) / "tailor-contrastive-speed"


def run_tailor(
    train: Split, evaluation: Split, labels: tuple[str, ...], seed: int, progress: Any, **given: Any
) -> dict:
    task = TaskInfo("ag_news", "classification", labels, ("text",), ("accuracy",))
    method = METHODS["contrastive"]
    options = method.Options(seed=seed, **given)
    ctx = Context(
        task=task,
        model=ModelSpec(name=SETTINGS["model"], device=SETTINGS["device"]),
        seed=seed,
        workdir=Path("/tmp/tailor-contrastive-speed") / f"s{seed}",
        progress=progress,
        models=ModelPool(),
    )
    t0 = time.perf_counter()
    with adapting("contrastive"):
        adapted = method.adapt(options, train, None, ctx)
    seconds = time.perf_counter() - t0
    predictions = predict_all(adapted, evaluation.examples, progress, f"tailor seed {seed}: evaluating")
    accuracy = sum(p.label == ex.label for p, ex in zip(predictions, evaluation.examples)) / len(evaluation)
    return {"seed": seed, "seconds": seconds, "accuracy": accuracy, "options": options.model_dump(exclude={"seed"})}


def warm_up(train: Split, evaluation: Split, labels: tuple[str, ...], progress: Any, systems: list[str]) -> None:
    """Two untimed training steps of each system, so that neither's first timed run pays the process's one-time
    costs (lazy imports in the trainers, torch's thread pool and allocator) for the other."""
    few = Split("evaluation", evaluation.examples[:8])
    if "tailor" in systems:
        run_tailor(train, few, labels, 0, progress, steps=2)
    if "setfit" in systems:
        run_setfit(train, few, 0, max_steps=2)


def setfit_pairs(texts: list[str], labels: list[str]) -> int:
    """How many pairs setfit's defaults train on (its own sampler, oversampling), without training."""
    from setfit import TrainingArguments
    from setfit.sampler import ContrastiveDataset

    args = TrainingArguments()
    data = ContrastiveDataset(texts, labels, False, args.num_iterations, args.sampling_strategy)
    return len(data)


def run_setfit(train: Split, evaluation: Split, seed: int, max_steps: int | None) -> dict:
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    texts, labels = [ex.text for ex in train.examples], [ex.label for ex in train.examples]
    pairs = setfit_pairs(texts, labels)
    full_steps = math.ceil(pairs / TrainingArguments().embedding_batch_size)
    if max_steps is not None and full_steps <= max_steps:
        max_steps = None  # its defaults fit in the cap: run them whole, accuracy measured
    # its defaults but two: the seed, and where its end-of-training checkpoint goes (else ./checkpoints)
    where = {"seed": seed, "output_dir": str(SCRATCH / "setfit-checkpoints")}
    args = TrainingArguments(**where) if max_steps is None else TrainingArguments(**where, max_steps=max_steps)
    t0 = time.perf_counter()
    model = SetFitModel.from_pretrained(resolve_path(SETTINGS["model"]), device=SETTINGS["device"])
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_dict({"text": texts, "label": labels}))
    # what trainer.train() does (no eval set), in its two public halves, so the body's steps are timed apart
    t1 = time.perf_counter()
    trainer.train_embeddings(texts, labels, args=args)
    t2 = time.perf_counter()
    trainer.train_classifier(texts, labels, args=args)
    seconds = time.perf_counter() - t0
    steps = full_steps if max_steps is None else min(max_steps, full_steps)
    out: dict[str, Any] = {"seed": seed, "seconds": seconds, "pairs": pairs, "steps": steps, "full_steps": full_steps}
    out["seconds_per_step"] = (t2 - t1) / steps  # the body's steps alone: no loading, no head
    if max_steps is None:
        predicted = model.predict([ex.text for ex in evaluation.examples], batch_size=64, show_progress_bar=False)
        out["accuracy"] = sum(str(p) == ex.label for p, ex in zip(predicted, evaluation.examples)) / len(evaluation)
    else:  # a cut-short run: its steps scaled to the full default run (loading and head as measured), no accuracy
        out["seconds_extrapolated"] = seconds + out["seconds_per_step"] * (full_steps - steps)
    return out


def summarize(size: dict) -> None:
    tailor, setfit = size.get("tailor", []), size.get("setfit", [])
    if tailor:
        size["tailor_seconds_mean"] = statistics.mean(r["seconds"] for r in tailor)
        size["tailor_accuracy_mean"] = statistics.mean(r["accuracy"] for r in tailor)
    if setfit:
        measured = all("accuracy" in r for r in setfit)
        key = "seconds" if measured else "seconds_extrapolated"
        size["setfit_seconds_mean"] = statistics.mean(r[key] for r in setfit)
        size["setfit_seconds_measured"] = measured
        if measured:
            size["setfit_accuracy_mean"] = statistics.mean(r["accuracy"] for r in setfit)
    if tailor and setfit:
        size["speedup"] = size["setfit_seconds_mean"] / size["tailor_seconds_mean"]
        if "setfit_accuracy_mean" in size:
            size["accuracy_gap_points"] = 100 * (size["tailor_accuracy_mean"] - size["setfit_accuracy_mean"])


def repo_path(path: Path) -> str:
    """``path`` as a results file names it: relative to the repository when inside it, never this machine's."""
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name


def versions() -> dict[str, str]:
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "sentence-transformers", "setfit", "datasets", "scikit-learn"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[8, 64], help="examples per class")
    parser.add_argument("--seeds", type=int, default=5, help="draws (seeds 0..N-1)")
    parser.add_argument(
        "--first-seed", type=int, default=0, help="run seeds F..N-1 only, keeping the file's rows of seeds below F"
    )
    parser.add_argument("--systems", nargs="+", choices=["tailor", "setfit"], default=["tailor", "setfit"])
    parser.add_argument("--setfit-max-steps", type=int, help="setfit: train only this many steps, extrapolate time")
    parser.add_argument("--big", type=int, help="one tailor trial at this many per class, setfit extrapolated")
    parser.add_argument("--device", help="both systems' device (cpu, cuda, ...); default: each one's own choice")
    parser.add_argument("--model", help="the encoder folder both systems load; default: the installed all-MiniLM-L6-v2")
    parser.add_argument("--data", type=Path, help="AG News test.jsonl; default: ../shared/datasets/ag_news/test.jsonl")
    parser.add_argument("--out", type=Path, default=OUT, help="results file (default: results/contrastive_speed.json)")
    parser.add_argument("--weights", help="recorded as `weights`: how the encoder's weights were stored")
    args = parser.parse_args()
    out_file: Path = args.out.resolve()
    if args.model:
        SETTINGS["model"] = str(Path(args.model).resolve()) if Path(args.model).exists() else args.model
    if args.device:
        SETTINGS["device"] = args.device
    if args.data:
        ag_news_8shot.DATA = args.data.resolve()  # load_halves reads the module's DATA when called

    result: dict[str, Any] = json.loads(out_file.read_text()) if out_file.exists() else {}
    result.update(
        protocol="k examples per class drawn from the first half of ag_news/test.jsonl (seeds 0..N-1); "
        "accuracy on the second half (3,800 examples); the same draw for both systems",
        model=ENCODER if not args.model else (repo_path(Path(args.model)) if Path(args.model).exists() else args.model),
        cpu_count=os.cpu_count(),
    )
    if args.device or args.model or args.data or args.weights:  # the default (CPU) run's file keeps its fields
        device = best_device(args.device)
        result["device"] = device
        if device.startswith("cuda"):
            import torch

            result["device_name"] = torch.cuda.get_device_name(torch.device(device))
        result["versions"] = versions()
        if args.data:
            result["data"] = repo_path(args.data)
        if args.weights:
            result["weights"] = args.weights
    result.setdefault("commands", []).append(shlex.join([repo_python(), *sys.argv]))
    pool, evaluation = load_halves()
    labels = tuple(sorted({ex.label for ex in pool}))
    progress = RichProgress()

    def save() -> None:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(json.dumps(result, indent=2) + "\n")

    warm_up(sample_per_class(pool, 8, 0), evaluation, labels, progress, args.systems)
    for k in args.sizes:
        size = result.setdefault("sizes", {}).setdefault(str(k), {})
        for system in args.systems:  # a run from --first-seed F continues one cut short: it keeps seeds < F
            size[system] = [r for r in size.get(system, []) if r["seed"] < args.first_seed]
        for seed in range(args.first_seed, args.seeds):
            train = sample_per_class(pool, k, seed)
            for system in args.systems:
                if system == "tailor":
                    row = run_tailor(train, evaluation, labels, seed, progress)
                else:
                    row = run_setfit(train, evaluation, seed, args.setfit_max_steps)
                size[system].append(row)
                shown = {key: round(v, 4) if isinstance(v, float) else v for key, v in row.items() if key != "options"}
                progress.log(f"{k}/class {system}: {shown}")
                summarize(size)
                save()

    if args.big:
        measured = [r for s in result.get("sizes", {}).values() for r in s.get("setfit", []) if r["steps"]]
        per_step = max(measured, key=lambda r: r["full_steps"]) if measured else None
        train = sample_per_class(pool, args.big, 0)
        row = run_tailor(train, evaluation, labels, 0, progress)
        big: dict[str, Any] = {"per_class": args.big, "tailor": row, "tailor_seconds": row["seconds"]}
        if per_step is not None:
            texts, names = [ex.text for ex in train.examples], [ex.label for ex in train.examples]
            pairs = setfit_pairs(texts, names)
            seconds_per_step = per_step["seconds_per_step"]
            big.update(
                setfit_pairs=pairs,
                setfit_steps=math.ceil(pairs / 16),
                setfit_seconds_per_step=seconds_per_step,
                setfit_seconds_extrapolated=seconds_per_step * math.ceil(pairs / 16),
                setfit_note="extrapolated: setfit's seconds per body step (loading and head excluded, so an "
                "underestimate of its whole time) measured at the largest size run, times its step count here",
            )
            big["fraction_of_setfit"] = row["seconds"] / big["setfit_seconds_extrapolated"]
        result["big"] = big
        progress.log(f"{args.big}/class: {json.dumps({k: v for k, v in big.items() if k != 'tailor'})}")
        save()
    print(json.dumps({k: {n: v for n, v in s.items() if not isinstance(v, list)} for k, s in result["sizes"].items()}))


if __name__ == "__main__":
    main()
