"""The run store: one SQLite file per run directory holding everything a report needs.

A method's result and all of its predictions are written in one transaction, so a run stopped
at any moment (Ctrl-C, a crash) leaves the store consistent: each method is either fully there
or not there at all, and the run's status says how it ended.

A run stopped without a chance to say so (SIGKILL, a power cut) keeps the status ``running``;
``tailor run --resume`` reopens it (:meth:`RunStore.reopen_run`) and reruns what is not ``ok``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .types import Example, Prediction

STORE_FILE = "run.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS run (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    task TEXT NOT NULL,
    status TEXT NOT NULL,            -- running | finished | interrupted | failed
    started_at TEXT NOT NULL,
    finished_at TEXT,
    seed INTEGER NOT NULL,
    git_rev TEXT,
    task_file TEXT,
    config_json TEXT NOT NULL,       -- the resolved task spec, overrides applied
    versions_json TEXT NOT NULL,     -- python and package versions
    data_json TEXT NOT NULL,         -- split sizes, labels, notes, overlaps
    resumed_at TEXT                  -- when the run was last continued with `tailor run --resume`
);
CREATE TABLE IF NOT EXISTS result (
    method TEXT PRIMARY KEY,         -- unique display name, e.g. "zero-shot/v2"
    family TEXT NOT NULL,            -- the method entry it came from (variants share it)
    variant TEXT,
    registered TEXT NOT NULL,        -- the registry name
    route TEXT NOT NULL,             -- prompt | finetune
    status TEXT NOT NULL,            -- ok | failed
    options_json TEXT NOT NULL,
    dev_json TEXT,                   -- metrics on dev (point values)
    test_json TEXT,                  -- metrics on test with confidence intervals
    costs_json TEXT,
    n_train INTEGER,
    adapted_dir TEXT,
    error TEXT,
    position INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    details_json TEXT                -- what the method reports about itself (fine-tuning: data, audits, training)
);
CREATE TABLE IF NOT EXISTS prediction (
    method TEXT NOT NULL,
    split TEXT NOT NULL,
    example_id TEXT NOT NULL,
    input TEXT NOT NULL,             -- the example's input fields as JSON
    target TEXT,                     -- gold label or reference text(s) as JSON
    output TEXT NOT NULL,            -- raw output text (label name or generated text)
    label TEXT,                      -- parsed label, NULL when invalid
    scores_json TEXT,
    prompt TEXT,
    PRIMARY KEY (method, split, example_id)
);
CREATE TABLE IF NOT EXISTS bad_row (
    split TEXT NOT NULL,
    location TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS excluded (
    method TEXT NOT NULL,
    split TEXT NOT NULL,
    example_id TEXT NOT NULL,
    reason TEXT NOT NULL
);
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class MethodResult:
    method: str
    family: str
    variant: str | None
    registered: str
    route: str
    status: str
    options: dict[str, Any]
    dev: dict[str, float] | None = None
    test: dict[str, dict[str, float]] | None = None
    costs: dict[str, Any] = field(default_factory=dict)
    n_train: int | None = None
    adapted_dir: str | None = None
    error: str | None = None
    details: dict[str, Any] | None = None


# Columns added after the first release: a store written before them gets them on opening.
_ADDED_COLUMNS = {"run": {"resumed_at": "TEXT"}, "result": {"details_json": "TEXT"}}


class RunStore:
    """Read and write one run's SQLite file."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if path.is_dir():
            path = path / STORE_FILE
        self.path = path
        self.db = sqlite3.connect(str(path))
        self.db.row_factory = sqlite3.Row
        self.db.executescript(_SCHEMA)
        for table, columns in _ADDED_COLUMNS.items():
            have = {row["name"] for row in self.db.execute(f"PRAGMA table_info({table})")}
            for name, kind in columns.items():
                if name not in have:
                    try:
                        with self.db:
                            self.db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
                    except sqlite3.OperationalError:  # a read-only store: read it as it is
                        pass

    @classmethod
    def open_existing(cls, run_dir: str | Path) -> RunStore:
        path = Path(run_dir)
        path = path / STORE_FILE if path.is_dir() else path
        if not path.is_file():
            from .errors import TailorError

            raise TailorError(f"{run_dir}: no run store ({STORE_FILE}) there; give the folder a `tailor run` wrote")
        return cls(path)

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------------------------------ writing

    def start_run(
        self,
        *,
        task: str,
        seed: int,
        git_rev: str | None,
        task_file: str | None,
        config: dict,
        versions: dict,
        data: dict,
    ) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO run (id, task, status, started_at, finished_at, seed, git_rev, task_file, "
                "config_json, versions_json, data_json) VALUES (1, ?, 'running', ?, NULL, ?, ?, ?, ?, ?, ?)",
                (task, _now(), seed, git_rev, task_file, json.dumps(config), json.dumps(versions), json.dumps(data)),
            )

    def reopen_run(self) -> None:
        """Mark a stopped run (interrupted, failed, or killed while ``running``) as running again."""
        with self.db:
            self.db.execute(
                "UPDATE run SET status = 'running', finished_at = NULL, resumed_at = ? WHERE id = 1", (_now(),)
            )

    def add_bad_rows(self, rows: Iterable[tuple[str, str, str]]) -> None:
        with self.db:
            self.db.executemany("INSERT INTO bad_row VALUES (?, ?, ?)", list(rows))

    def add_result(
        self,
        result: MethodResult,
        predictions: dict[str, Sequence[tuple[Example, Prediction]]] | None = None,
        excluded: Sequence[tuple[str, str, str]] = (),
    ) -> None:
        """Write one method's result and its predictions atomically (replacing an earlier attempt of the method)."""
        earlier = self.db.execute("SELECT position FROM result WHERE method = ?", (result.method,)).fetchone()
        pos = earlier[0] if earlier else self.db.execute("SELECT COUNT(*) FROM result").fetchone()[0]
        with self.db:
            self.db.execute("DELETE FROM prediction WHERE method = ?", (result.method,))
            self.db.execute("DELETE FROM excluded WHERE method = ?", (result.method,))
            self.db.execute(
                "INSERT OR REPLACE INTO result (method, family, variant, registered, route, status, options_json, "
                "dev_json, test_json, costs_json, n_train, adapted_dir, error, position, created_at, details_json) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    result.method,
                    result.family,
                    result.variant,
                    result.registered,
                    result.route,
                    result.status,
                    json.dumps(result.options),
                    _json(result.dev),
                    _json(result.test),
                    json.dumps(result.costs),
                    result.n_train,
                    result.adapted_dir,
                    result.error,
                    pos,
                    _now(),
                    None if result.details is None else json.dumps(result.details, default=str),
                ),
            )
            rows = []
            for split, pairs in (predictions or {}).items():
                for ex, pred in pairs:
                    rows.append(
                        (
                            result.method,
                            split,
                            ex.id,
                            json.dumps(dict(ex.inputs), ensure_ascii=False),
                            json.dumps(ex.target, ensure_ascii=False),
                            pred.output,
                            pred.label,
                            _json(dict(pred.scores) if pred.scores is not None else None),
                            pred.prompt,
                        )
                    )
            self.db.executemany("INSERT OR REPLACE INTO prediction VALUES (?,?,?,?,?,?,?,?,?)", rows)
            self.db.executemany("INSERT INTO excluded VALUES (?,?,?,?)", [(result.method, *e) for e in excluded])

    def finish_run(self, status: str) -> None:
        with self.db:
            self.db.execute("UPDATE run SET status = ?, finished_at = ? WHERE id = 1", (status, _now()))

    # ------------------------------------------------------------------------------------------ reading

    def run(self) -> dict[str, Any]:
        row = self.db.execute("SELECT * FROM run WHERE id = 1").fetchone()
        if row is None:
            raise ValueError(f"{self.path}: the store holds no run")
        out = dict(row)
        for key in ("config_json", "versions_json", "data_json"):
            out[key[:-5]] = json.loads(out.pop(key))
        return out

    def results(self) -> list[dict[str, Any]]:
        out = []
        for row in self.db.execute("SELECT * FROM result ORDER BY position"):
            d = dict(row)
            for key in ("options_json", "dev_json", "test_json", "costs_json", "details_json"):
                raw = d.pop(key, None)
                d[key[:-5]] = json.loads(raw) if raw is not None else None
            out.append(d)
        return out

    def predictions(self, method: str, split: str = "test") -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT * FROM prediction WHERE method = ? AND split = ? ORDER BY example_id", (method, split)
        )
        out = []
        for row in rows:
            d = dict(row)
            d["input"] = json.loads(d["input"])
            d["target"] = json.loads(d["target"]) if d["target"] is not None else None
            d["scores"] = json.loads(d.pop("scores_json")) if d["scores_json"] is not None else None
            out.append(d)
        return out

    def bad_rows(self) -> list[dict[str, str]]:
        return [dict(r) for r in self.db.execute("SELECT * FROM bad_row")]

    def excluded(self) -> list[dict[str, str]]:
        return [dict(r) for r in self.db.execute("SELECT * FROM excluded")]


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)
