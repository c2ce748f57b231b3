"""The search's bookkeeping on optuna's trials: which sampler asks each trial, and the search's counters kept with
each told trial, so a resumed search asks and stops as an uninterrupted one would."""

from __future__ import annotations

from typing import Any

from .partition import seeded_rank


def sampler_for(kind: str, seed: int, finished: int, startup: int, explore_every: int = 0) -> Any:
    """The sampler for the trial after ``finished`` ones: seeded by the search's seed and that count (so a resumed
    search asks what an uninterrupted one would), and random on every ``explore_every``-th trial."""
    import optuna

    trial_seed = int(seeded_rank(seed, f"trial:{finished}")[:8], 16)
    if kind == "random" or (explore_every and finished % explore_every == explore_every - 1):
        return optuna.samplers.RandomSampler(seed=trial_seed)
    return optuna.samplers.TPESampler(seed=trial_seed, n_startup_trials=startup, constant_liar=False)


def tell(study: Any, trial: Any, value: float, stale: int, idle: int, best_seen: float) -> None:
    """Tell optuna a trial's value, keeping the search's counters with it (read back by :func:`counters`)."""
    best = best_seen if best_seen > float("-inf") else None
    trial.set_user_attr("counters", {"stale": stale, "idle": idle, "best_seen": best})
    study.tell(trial, value)


def counters(study: Any, best: float) -> tuple[int, int, float, int]:
    """Patience's count, idle trials in a row and the best seen, as the last finished trial left them (``best``, the
    search's best so far, before any trial), and the candidates refused since."""
    import optuna

    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    last = max(trials, key=lambda t: t.number) if trials else None
    kept = last.user_attrs.get("counters", {}) if last else {}
    kept_best = kept.get("best_seen")
    failed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
    in_row = sum(1 for t in failed if t.user_attrs.get("refused") and (last is None or t.number > last.number))
    best_seen = best if last is None else float("-inf") if kept_best is None else float(kept_best)
    return int(kept.get("stale", 0)), int(kept.get("idle", 0)), best_seen, in_row
