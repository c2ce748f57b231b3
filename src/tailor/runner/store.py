"""The run store: one SQLite file per run directory holding everything a report needs.

A trial's result and all of its predictions are written in one transaction, so a run stopped
at any moment (Ctrl-C, a crash) leaves the store consistent: each trial is either fully there
or not there at all, and the run's status says how it ended.

The store records its schema version. A store of the version before this one is brought up to date when it is
opened (a rename of two columns, in one transaction); any other version is refused with a message saying so.

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

from ..costs.usage import Usage
from ..errors import TailorError
from ..types import Example, Prediction

STORE_FILE = "run.sqlite"

SCHEMA_VERSION = 5
"""Version of the store's tables (SQLite's ``user_version``). 1: one row per method, no usage, no training size or
seed (tailor before trials). 2: one row per trial, with its model, training size, seed and usage. 3: per-query
failures and cache counts. 4: a learning curve's size per trial. 5: a trial's name in its own ``trial`` column, and
``method`` the registered method it ran (version 4 kept the trial's name in ``method`` and the method in
``registered``)."""

_FROM_4 = """
ALTER TABLE trial RENAME COLUMN method TO trial;
ALTER TABLE trial RENAME COLUMN registered TO method;
ALTER TABLE prediction RENAME COLUMN method TO trial;
"""
"""Version 4 to 5: the same tables with two columns renamed (SQLite rewrites the primary keys with them)."""

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
CREATE TABLE IF NOT EXISTS trial (
    trial TEXT PRIMARY KEY,          -- the trial's unique display name, e.g. "zero-shot/v2", "head@8:s1"
    family TEXT NOT NULL,            -- the method entry it came from (variants share it)
    variant TEXT,
    method TEXT NOT NULL,            -- the registered method it ran, e.g. "zero-shot"
    route TEXT NOT NULL,             -- prompt | finetune
    status TEXT NOT NULL,            -- ok | failed
    model TEXT NOT NULL,             -- the model's name (hub id, folder, file)
    model_json TEXT NOT NULL,        -- the whole model spec
    model_params INTEGER,            -- the model's parameters (NULL: unknown)
    train_size INTEGER,              -- training examples the trial was given (after train_size / train_per_class)
    size TEXT,                       -- in a learning curve, the trial's size as the curve names it ("8", "all")
    seed INTEGER NOT NULL,
    options_json TEXT NOT NULL,
    dev_json TEXT,                   -- metrics on dev (point values)
    test_json TEXT,                  -- metrics on test with confidence intervals
    costs_json TEXT,
    usage_json TEXT,                 -- calls, tokens and FLOPs: adapting, dev, test, per 1,000 test queries
    n_train INTEGER,                 -- training examples the adapted model depends on
    adapted_dir TEXT,
    error TEXT,
    position INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    details_json TEXT                -- what the method reports about itself (fine-tuning: data, audits, training)
);
CREATE TABLE IF NOT EXISTS prediction (
    trial TEXT NOT NULL,
    split TEXT NOT NULL,
    example_id TEXT NOT NULL,
    input TEXT NOT NULL,             -- the example's input fields as JSON
    target TEXT,                     -- gold label or reference text(s) as JSON
    output TEXT NOT NULL,            -- raw output text (label name or generated text)
    label TEXT,                      -- parsed label, NULL when invalid
    scores_json TEXT,
    prompt TEXT,
    calls INTEGER,                   -- the query's usage (NULL when the method can't tell)
    input_tokens INTEGER,
    output_tokens INTEGER,
    flops REAL,
    cached_calls INTEGER,            -- answered from tailor's response cache (still counted above)
    cached_input_tokens INTEGER,     -- input tokens the server reported as served from its own prompt cache
    error TEXT,                      -- the query failed (after every retry): why; the example is not scored
    PRIMARY KEY (trial, split, example_id)
);
CREATE TABLE IF NOT EXISTS bad_row (
    split TEXT NOT NULL,
    location TEXT NOT NULL,
    reason TEXT NOT NULL
);
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class TrialResult:
    """What one trial gave: its identity (``trial``, its unique name; ``method``, the registered method it ran),
    status, metrics, costs, usage and the method's own details."""

    trial: str
    family: str
    variant: str | None
    method: str
    route: str
    status: str
    options: dict[str, Any]
    model: dict[str, Any]
    seed: int
    train_size: int | None = None
    size: str | None = None
    model_params: int | None = None
    dev: dict[str, float] | None = None
    test: dict[str, dict[str, float]] | None = None
    costs: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, Any] | None = None
    n_train: int | None = None
    adapted_dir: str | None = None
    error: str | None = None
    details: dict[str, Any] | None = None


class OldStoreError(TailorError):
    """A run store written by an older tailor, whose tables this one does not read."""


class RunStore:
    """Read and write one run's SQLite file."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if path.is_dir():
            path = path / STORE_FILE
        self.path = path
        self.db = sqlite3.connect(str(path))
        self.db.row_factory = sqlite3.Row
        try:
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise TailorError(
                f"{path} is not a tailor run store, or it is damaged ({exc}). What the run wrote besides it still "
                "serves: its reports (report.json, report.md, report.html) if they were written, and the adapted "
                "models under adapted/ with `tailor predict`; to get a store again, run the task again."
            ) from None
        if tables and version == SCHEMA_VERSION - 1:
            self._upgrade_from_4()
        elif tables and version != SCHEMA_VERSION:
            self.db.close()
            raise OldStoreError(
                f"{path} was written by "
                + (f"an older tailor (store schema {version or 1})" if version < SCHEMA_VERSION else "a newer tailor")
                + f"; this tailor reads schema {SCHEMA_VERSION}. Run the task again with this version (or use the "
                "version that wrote it to report or resume it)."
            )
        if not tables:
            # One transaction: tables and version appear together, or not at all. (executescript commits each
            # statement on its own otherwise; a kill -9 between the tables and the version left a store that read
            # as an older schema, found by tests/runner/test_kill_resume.py.)
            self.db.executescript(f"BEGIN;\n{_SCHEMA}\nPRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;")

    def _upgrade_from_4(self) -> None:
        """Bring a version-4 store up to date in place: one transaction, so a kill leaves it at 4 or at 5."""
        try:
            self.db.executescript(f"BEGIN;\n{_FROM_4}\nPRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;")
        except sqlite3.OperationalError as exc:  # a read-only file or folder: nothing was changed
            self.db.close()
            raise OldStoreError(
                f"{self.path} was written by an older tailor (store schema {SCHEMA_VERSION - 1}); this tailor reads "
                f"schema {SCHEMA_VERSION} and brings such a store up to date when it opens it, but could not write "
                f"it ({exc}). Copy the run folder somewhere writable and give that copy."
            ) from None

    @classmethod
    def open_existing(cls, run_dir: str | Path) -> RunStore:
        path = Path(run_dir)
        path = path / STORE_FILE if path.is_dir() else path
        if not path.is_file():
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
        self, result: TrialResult, predictions: dict[str, Sequence[tuple[Example, Prediction]]] | None = None
    ) -> None:
        """Write one trial's result and its predictions atomically (replacing an earlier attempt of the trial)."""
        earlier = self.db.execute("SELECT position FROM trial WHERE trial = ?", (result.trial,)).fetchone()
        pos = earlier[0] if earlier else self.db.execute("SELECT COUNT(*) FROM trial").fetchone()[0]
        r = result
        row = {
            "trial": r.trial,
            "family": r.family,
            "variant": r.variant,
            "method": r.method,
            "route": r.route,
            "status": r.status,
            "model": r.model.get("name", ""),
            "model_json": json.dumps(r.model),
            "model_params": r.model_params,
            "train_size": r.train_size,
            "size": r.size,
            "seed": r.seed,
            "options_json": json.dumps(r.options),
            "dev_json": _json(r.dev),
            "test_json": _json(r.test),
            "costs_json": json.dumps(r.costs),
            "usage_json": _json(r.usage),
            "n_train": r.n_train,
            "adapted_dir": r.adapted_dir,
            "error": r.error,
            "position": pos,
            "created_at": _now(),
            "details_json": None if r.details is None else json.dumps(r.details, default=str),
        }
        with self.db:
            self.db.execute("DELETE FROM prediction WHERE trial = ?", (r.trial,))
            self.db.execute(
                f"INSERT OR REPLACE INTO trial ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()),
            )
            rows = []
            for split, pairs in (predictions or {}).items():
                for ex, pred in pairs:
                    u = pred.usage
                    rows.append(
                        (
                            r.trial,
                            split,
                            ex.id,
                            json.dumps(dict(ex.inputs), ensure_ascii=False),
                            json.dumps(ex.target, ensure_ascii=False),
                            pred.output,
                            pred.label,
                            _json(dict(pred.scores) if pred.scores is not None else None),
                            pred.prompt,
                            *(
                                (
                                    u.calls,
                                    u.input_tokens,
                                    u.output_tokens,
                                    u.flops,
                                    u.cached_calls,
                                    u.cached_input_tokens,
                                )
                                if u
                                else (None,) * 6
                            ),
                            pred.error,
                        )
                    )
            self.db.executemany("INSERT OR REPLACE INTO prediction VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)

    def finish_run(self, status: str) -> None:
        with self.db:
            self.db.execute("UPDATE run SET status = ?, finished_at = ? WHERE id = 1", (status, _now()))

    # ------------------------------------------------------------------------------------------ reading

    def has_run(self) -> bool:
        """Whether the run has been recorded (a run killed between making the store and recording it has none)."""
        return self.db.execute("SELECT 1 FROM run WHERE id = 1").fetchone() is not None

    def run(self) -> dict[str, Any]:
        row = self.db.execute("SELECT * FROM run WHERE id = 1").fetchone()
        if row is None:
            raise ValueError(f"{self.path}: the store holds no run")
        out = dict(row)
        for key in ("config_json", "versions_json", "data_json"):
            out[key[:-5]] = json.loads(out.pop(key))
        return out

    def results(self) -> list[dict[str, Any]]:
        """Every trial's record, in the order the run planned them: the columns of ``trial`` (``trial`` its name,
        ``method`` the registered method), JSON ones decoded (``model_spec`` the whole model spec)."""
        out = []
        for row in self.db.execute("SELECT * FROM trial ORDER BY position"):
            d = dict(row)
            d["model_spec"] = json.loads(d.pop("model_json"))
            for key in ("options_json", "dev_json", "test_json", "costs_json", "usage_json", "details_json"):
                raw = d.pop(key, None)
                d[key[:-5]] = json.loads(raw) if raw is not None else None
            out.append(d)
        return out

    def predictions(self, trial: str, split: str = "test") -> list[dict[str, Any]]:
        """The trial's predictions on ``split``, by example id, each with its input, target and usage."""
        rows = self.db.execute(
            "SELECT * FROM prediction WHERE trial = ? AND split = ? ORDER BY example_id", (trial, split)
        )
        out = []
        for row in rows:
            d = dict(row)
            d["input"] = json.loads(d["input"])
            d["target"] = json.loads(d["target"]) if d["target"] is not None else None
            d["scores"] = json.loads(d.pop("scores_json")) if d["scores_json"] is not None else None
            counts = [
                d.pop(k)
                for k in ("calls", "input_tokens", "output_tokens", "flops", "cached_calls", "cached_input_tokens")
            ]
            d["usage"] = None if counts[0] is None else Usage(*(c or 0 for c in counts))
            out.append(d)
        return out

    def bad_rows(self) -> list[dict[str, str]]:
        return [dict(r) for r in self.db.execute("SELECT * FROM bad_row")]


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)
