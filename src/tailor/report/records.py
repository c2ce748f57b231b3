"""What a report reads from a run, read from its store in one go: the run's row, every trial's record, the rows the
data skipped, and the predictions the report needs (the compared trials' on test, for the paired tests and the
viewer; a prompt search's first prompt sent on dev).

Everything else in the report is computed from these records: a report never reads an adapted folder and never
reruns a model, so it can be rebuilt at any time from the run's store alone (:mod:`tailor.runner.store`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.task import DEFAULT_METRICS
from ..runner.folders import run_is_live
from ..runner.store import RunStore


@dataclass(frozen=True)
class Records:
    """One run's records, as its store keeps them.

    Attributes:
        run_dir: The run's folder.
        run: The run's row (task, status, times, seed, git revision, task file, ``config``, ``versions``, ``data``).
        trials: Every trial's record (:meth:`tailor.runner.store.RunStore.results`), in the order the run planned them.
        bad_rows: The rows the data skipped, each with its split, place and reason.
        live: Whether a process is writing the run now (its lock is held).
        compared: The trials the paired tests, the winner and the costs compare (:func:`compared_trials`).
        test_predictions: By trial, the test predictions of every compared trial that finished.
        first_prompts: By trial that searched its prompt, its first dev example's id and the prompt exactly as sent
            for it (when the method stores its prompts).
    """

    run_dir: Path
    run: dict[str, Any]
    trials: list[dict[str, Any]]
    bad_rows: list[dict[str, str]]
    live: bool
    compared: list[str]
    test_predictions: dict[str, list[dict[str, Any]]]
    first_prompts: dict[str, tuple[str, str]]

    @property
    def config(self) -> dict[str, Any]:
        """The run's resolved task spec."""
        return self.run["config"]

    @property
    def metrics(self) -> list[str]:
        """The metrics the run scored, the primary one first."""
        return list(self.config.get("metrics") or []) or list(DEFAULT_METRICS[self.config["kind"]])

    @property
    def labels(self) -> list[str] | None:
        """Classification: the label set the data had."""
        return self.run["data"].get("labels")


def searched(trial: dict[str, Any]) -> bool:
    """Whether a trial's record holds a prompt search (its details' ``search``)."""
    return isinstance((trial.get("details") or {}).get("search"), dict)


def curve_method(trial: dict[str, Any]) -> str:
    """A curve trial's method as the curve shows it: its family, and its variant when it has one."""
    return f"{trial['family']}/{trial['variant']}" if trial.get("variant") else trial["family"]


def compared_trials(trials: list[dict[str, Any]], config: dict[str, Any]) -> list[str]:
    """The trials the paired tests, the winner and the cost views compare, in the run's order: all of a run's; in a
    curve, each method's trial at its largest size and first seed (the others are the curve's business)."""
    if not config.get("curve"):
        return [t["trial"] for t in trials]
    order = {str(s): i for i, s in enumerate(config["curve"]["sizes"])}
    best: dict[str, dict[str, Any]] = {}
    for t in trials:
        if t["status"] != "ok" or t.get("size") is None:
            continue
        key = curve_method(t)
        rank = (order.get(t["size"], -1), -t["seed"])
        if key not in best or rank > (order.get(best[key]["size"], -1), -best[key]["seed"]):
            best[key] = t
    chosen = {t["trial"] for t in best.values()}
    return [t["trial"] for t in trials if t["trial"] in chosen]


def read_records(run_dir: Path) -> Records:
    """Everything a report of the run in ``run_dir`` reads, with the store opened once."""
    store = RunStore.open_existing(run_dir)
    try:
        run = store.run()
        trials = store.results()
        compared = compared_trials(trials, run["config"])
        finished = [t for t in trials if t["status"] == "ok"]
        test_predictions = {
            t["trial"]: store.predictions(t["trial"], "test") for t in finished if t["trial"] in compared
        }
        first_prompts = {}
        for t in filter(searched, finished):
            first = next((p for p in store.predictions(t["trial"], "dev") if p.get("prompt")), None)
            if first:
                first_prompts[t["trial"]] = (first["example_id"], first["prompt"])
        bad_rows = store.bad_rows()
    finally:
        store.close()
    # killed (SIGKILL, power cut) with no chance to say so: the store still says running, but no one holds the lock
    live = run["status"] == "running" and run_is_live(run_dir)
    return Records(run_dir, run, trials, bad_rows, live, compared, test_predictions, first_prompts)
