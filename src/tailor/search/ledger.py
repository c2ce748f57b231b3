"""The search's ledger: every scoring of every candidate, kept in the trial's folder so that a killed search resumes
without scoring anything twice.

One row per scoring: a candidate (by its key, the canonical JSON of its choices) on one batch of one part of dev
(``search`` minibatches, or the ``select`` part the final choice is made on), with the predictions' labels and
outputs, the metric on that batch, and what the scoring cost. ``step`` numbers rows in the order they were scored,
``trial`` ties a row to the optuna trial that asked for it and ``lead`` a leader's scoring to the point it was made
at (both None for the finalists'), which is how a resumed search replays the trial or the leader's scoring it was
killed in instead of scoring something else.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .budget import Cost

SCHEMA = """
CREATE TABLE IF NOT EXISTS candidate (
    key TEXT PRIMARY KEY,      -- canonical JSON of the candidate's choices
    method TEXT NOT NULL,      -- the ordinary prompt method it is (zero-shot, few-shot, prompt)
    options_json TEXT NOT NULL,
    seed INTEGER NOT NULL,
    first_step INTEGER NOT NULL,
    pool TEXT NOT NULL DEFAULT 'train'  -- where its demonstrations come from (train, bootstrapped)
);
CREATE TABLE IF NOT EXISTS scoring (
    step INTEGER PRIMARY KEY,  -- order of scoring, from 0
    key TEXT NOT NULL REFERENCES candidate(key),
    part TEXT NOT NULL,        -- search | select
    batch INTEGER NOT NULL,
    trial INTEGER,             -- the optuna trial (counted in finished trials) that asked for it; NULL otherwise
    lead INTEGER,              -- a leader's scoring: the number of finished trials it followed; NULL otherwise
    metric REAL NOT NULL,      -- the primary metric on this batch
    n INTEGER NOT NULL,
    labels_json TEXT NOT NULL, -- per example: the predicted label (or null)
    outputs_json TEXT NOT NULL,
    cost_json TEXT NOT NULL,
    UNIQUE (key, part, batch)
);
"""


@dataclass(frozen=True)
class Scoring:
    step: int
    key: str
    part: str
    batch: int
    trial: int | None
    lead: int | None
    metric: float
    n: int
    labels: list[str | None]
    outputs: list[str]
    cost: Cost


class Ledger:
    """Scorings in ``path`` (SQLite); every write is committed at once."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path)
        self.db.executescript(SCHEMA)
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(candidate)")}
        if "pool" not in columns:  # a ledger from before bootstrapped demonstrations: every candidate drew from train
            self.db.execute("ALTER TABLE candidate ADD COLUMN pool TEXT NOT NULL DEFAULT 'train'")
        self.db.commit()

    def close(self) -> None:
        self.db.close()

    def add_candidate(self, key: str, method: str, options: dict[str, Any], seed: int, pool: str = "train") -> None:
        step = self.next_step()
        self.db.execute(
            "INSERT OR IGNORE INTO candidate VALUES (?, ?, ?, ?, ?, ?)",
            (key, method, json.dumps(options), seed, step, pool),
        )
        self.db.commit()

    def candidates(self) -> dict[str, dict[str, Any]]:
        rows = self.db.execute(
            "SELECT key, method, options_json, seed, first_step, pool FROM candidate ORDER BY first_step"
        )
        return {
            k: {"method": m, "options": json.loads(o), "seed": s, "first_step": f, "pool": pl}
            for k, m, o, s, f, pl in rows
        }

    def next_step(self) -> int:
        (n,) = self.db.execute("SELECT COUNT(*) FROM scoring").fetchone()
        return int(n)

    def add(
        self,
        key: str,
        part: str,
        batch: int,
        trial: int | None,
        metric: float,
        labels: list[str | None],
        outputs: list[str],
        cost: Cost,
        lead: int | None = None,
    ) -> Scoring:
        step = self.next_step()
        self.db.execute(
            "INSERT INTO scoring VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                step,
                key,
                part,
                batch,
                trial,
                lead,
                metric,
                len(labels),
                json.dumps(labels),
                json.dumps(outputs),
                json.dumps(cost.to_dict()),
            ),
        )
        self.db.commit()
        return Scoring(step, key, part, batch, trial, lead, metric, len(labels), labels, outputs, cost)

    def scorings(self, key: str | None = None, part: str | None = None) -> list[Scoring]:
        sql, args = "SELECT * FROM scoring WHERE 1=1", []
        if key is not None:
            sql, args = sql + " AND key = ?", [*args, key]
        if part is not None:
            sql, args = sql + " AND part = ?", [*args, part]
        return [_row(r) for r in self.db.execute(sql + " ORDER BY step", args)]

    def of_trial(self, trial: int) -> Scoring | None:
        r = self.db.execute("SELECT * FROM scoring WHERE trial = ?", (trial,)).fetchone()
        return _row(r) if r else None

    def leader(self, lead: int) -> str | None:
        """The candidate scored as the leader after ``lead`` finished trials, if any of its scorings was written."""
        r = self.db.execute("SELECT key FROM scoring WHERE lead = ? LIMIT 1", (lead,)).fetchone()
        return r[0] if r else None

    def spent(self) -> Cost:
        out = Cost()
        for (c,) in self.db.execute("SELECT cost_json FROM scoring"):
            out = out + Cost.from_dict(json.loads(c))
        return out


def _row(r: tuple) -> Scoring:
    step, key, part, batch, trial, lead, metric, n, labels, outputs, cost = r
    return Scoring(
        step,
        key,
        part,
        batch,
        trial,
        lead,
        metric,
        n,
        json.loads(labels),
        json.loads(outputs),
        Cost.from_dict(json.loads(cost)),
    )
