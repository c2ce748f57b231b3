"""Loading a task's examples: files or hub dataset → validated :class:`Example` rows → splits.

Every row is accounted for: it becomes an example, or it is an error naming its file and line,
or (with ``on_bad_rows: skip``) it is skipped and counted with its reason.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config.task import TaskSpec
from ..errors import DataError, TaskFileError
from ..types import Example, SealedSplit, Split
from .labels import LabelLedger, resolve_labels
from .rows import UnreadableRow, read_rows


@dataclass(frozen=True)
class BadRow:
    split: str
    where: str
    reason: str
    kind: str  # a short category (e.g. "empty input text") the report counts rows by


@dataclass(frozen=True)
class Overlap:
    """Examples of one split whose input also appears (after normalization) in another split."""

    split_a: str
    split_b: str
    ids: tuple[tuple[str, str], ...]


@dataclass
class TaskData:
    """The task's examples, split, validated and accounted for."""

    train: Split
    dev: Split | None
    test: SealedSplit
    labels: list[str] | None
    bad_rows: list[BadRow] = field(default_factory=list)
    overlaps: list[Overlap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rows_read: int = 0
    limited: dict[str, int] = field(default_factory=dict)  # examples left out of each split by `limit`

    def summary(self) -> dict[str, Any]:
        reasons = Counter(b.kind for b in self.bad_rows)
        return {
            "rows_read": self.rows_read,
            "train": len(self.train),
            "dev": len(self.dev) if self.dev is not None else 0,
            "test": len(self.test),
            "labels": self.labels,
            "skipped_rows": len(self.bad_rows),
            "skipped_by_reason": dict(reasons),
            "left_out_by_limit": dict(self.limited),
            "overlaps": [{"splits": [o.split_a, o.split_b], "count": len(o.ids)} for o in self.overlaps],
            "notes": self.notes,
            # what a resumed run compares: counts alone miss labels moved between examples
            "content": {s.name: split_hash(s) for s in (self.train, self.dev, self.test.open()) if s is not None},
        }


# ---------------------------------------------------------------------------------------------- reading files


def _read_hub(spec: TaskSpec, split: str) -> tuple[str, Iterator[tuple[int, Any]]]:
    import datasets

    name = spec.data.hub_splits.get(split, split)  # type: ignore[call-overload]
    try:
        ds = datasets.load_dataset(spec.data.hub, spec.data.hub_config, split=name)
    except Exception as exc:
        raise DataError(f"hub dataset {spec.data.hub}", f"could not load split {name!r}: {exc}") from None
    return f"{spec.data.hub}[{name}]", ((i + 1, row) for i, row in enumerate(ds))


# ---------------------------------------------------------------------------------------------- rows → examples


def _target_value(raw: Any, kind: str) -> str | tuple[str, ...] | None:
    if raw is None:
        return None
    if kind == "classification":
        if isinstance(raw, bool) or not isinstance(raw, (str, int)):
            return None
        # "billing " and "billing" are one class; a label that is only whitespace is a missing one.
        return str(raw).strip() or None
    if isinstance(raw, str):
        return raw
    if isinstance(raw, Mapping) and "text" in raw:  # SQuAD-style answers {text: [...], answer_start: [...]}
        raw = raw["text"]
    if isinstance(raw, (list, tuple)) and raw and all(isinstance(x, str) for x in raw):
        return tuple(raw)
    return None


class _RowReader:
    """Turns raw rows into examples, checking each and routing bad ones to an error or the skip list."""

    def __init__(self, spec: TaskSpec, bad_rows: list[BadRow], origin: str = "task file"):
        self.spec = spec
        self.origin = origin
        self.bad_rows = bad_rows
        self.fields = spec.fields
        self.seen_ids: dict[tuple[str, str], str] = {}  # (split, id) → where: ids are unique within a split
        self.labels = LabelLedger()

    def bad(self, split: str, where: str, reason: str, kind: str) -> None:
        if self.spec.on_bad_rows == "error":
            raise DataError(where, reason)
        self.bad_rows.append(BadRow(split, where, reason, kind))

    def read(self, split: str, name: str, rows: Iterable[tuple[int, Any]]) -> list[Example]:
        out: list[Example] = []
        stem = Path(name).stem if "[" not in name else split
        columns_checked = False
        for lineno, row in rows:
            where = f"{name}:{lineno}"
            if isinstance(row, DataError):
                self.bad(split, row.where, row.message, row.kind if isinstance(row, UnreadableRow) else "unreadable")
                continue
            if not isinstance(row, Mapping):
                self.bad(split, where, f"expected an object with fields, got {type(row).__name__}", "not an object")
                continue
            if not columns_checked:
                self._check_columns(name, row)
                columns_checked = True
            ex = self._example(split, where, stem, lineno, row)
            if ex is not None:
                out.append(ex)
        return out

    def _check_columns(self, name: str, row: Mapping[str, Any]) -> None:
        # A mapping naming a column the data doesn't have is a task-file error, not a bad row.
        available = ", ".join(sorted(row))
        for col in self.fields.inputs:
            if col not in row:
                raise TaskFileError(
                    self.origin, "fields.input", f"column {col!r} is not in {name} (columns: {available})"
                )
        targets = [self.fields.target] if isinstance(self.fields.target, str) else self.fields.target
        self.target_column = next((t for t in targets if t in row), None)
        if self.target_column is None:
            raise TaskFileError(
                self.origin, "fields.target", f"column {self.fields.target!r} is not in {name} (columns: {available})"
            )
        if self.fields.id and self.fields.id not in row:
            raise TaskFileError(
                self.origin, "fields.id", f"column {self.fields.id!r} is not in {name} (columns: {available})"
            )

    def _example(self, split: str, where: str, stem: str, lineno: int, row: Mapping[str, Any]) -> Example | None:
        inputs: dict[str, str] = {}
        for col in self.fields.inputs:
            value = row.get(col)
            if not isinstance(value, str):
                self.bad(
                    split, where, f"input column {col!r}: expected text, got {type(value).__name__}", "input not text"
                )
                return None
            if not value.strip():
                self.bad(split, where, f"empty input text in column {col!r}", "empty input text")
                return None
            inputs[col] = value
        target = _target_value(row.get(self.target_column), self.spec.kind)
        if target is None:
            reason = f"target column {self.target_column!r}: missing or not a valid {self.spec.kind} target"
            self.bad(split, where, reason, "missing or invalid target")
            return None
        ex_id = str(row[self.fields.id]) if self.fields.id else f"{stem}:{lineno}"
        if (split, ex_id) in self.seen_ids:
            first = self.seen_ids[split, ex_id]
            self.bad(split, where, f"duplicate id {ex_id!r} (first at {first})", "duplicate id")
            return None
        self.seen_ids[split, ex_id] = where
        ex = Example(id=ex_id, inputs=inputs, target=target, source=where)
        if self.spec.kind == "classification":
            self.labels.record(ex, str(row.get(self.target_column)))
        return ex


# ---------------------------------------------------------------------------------------------- splitting


def content_hash(ex: Example) -> str:
    """A hash of an example's content (inputs and target), independent of its position in the file."""
    payload = json.dumps([sorted(ex.inputs.items()), ex.target], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def split_hash(split: Split) -> str:
    """A hash of a split's examples in order: each one's id, inputs and target."""
    digest = hashlib.sha256()
    for ex in split.examples:
        digest.update(json.dumps([ex.id, content_hash(ex)]).encode())
    return digest.hexdigest()


def _bucket(ex: Example, salt: str = "") -> float:
    return int(hashlib.sha256((salt + content_hash(ex)).encode()).hexdigest()[:15], 16) / 16**15


def hash_split(examples: list[Example], fractions: dict[str, float]) -> dict[str, list[Example]]:
    """Assign each example to a split by its content hash: the same example lands in the same split always."""
    out: dict[str, list[Example]] = {name: [] for name in fractions}
    edges, acc = [], 0.0
    for name, frac in fractions.items():
        acc += frac
        edges.append((acc, name))
    for ex in examples:
        u = _bucket(ex)
        out[next((name for edge, name in edges if u < edge), edges[-1][1])].append(ex)
    return out


def _normalize(text: str) -> str:
    return " ".join(text.lower().split())


def find_overlaps(a: Split, b: Split) -> Overlap:
    """Examples whose normalized input text occurs in both splits (a leak from one into the other)."""
    index: dict[str, str] = {}
    for ex in a.examples:
        index.setdefault(_normalize(ex.text), ex.id)
    pairs = tuple((index[k], ex.id) for ex in b.examples if (k := _normalize(ex.text)) in index)
    return Overlap(a.name, b.name, pairs)


def _limit(examples: list[Example], n: int, seed: int) -> list[Example]:
    if len(examples) <= n:
        return examples
    ranked = sorted(examples, key=lambda ex: _bucket(ex, salt=f"limit{seed}"))[:n]
    keep = {ex.id for ex in ranked}
    return [ex for ex in examples if ex.id in keep]


# ---------------------------------------------------------------------------------------------- the whole load


def load_task_data(spec: TaskSpec, base: Path, origin: str = "task file") -> TaskData:
    """Read, validate and split the task's data. The test split comes back sealed.

    ``origin`` names the task file, for errors about its keys.
    """
    bad_rows: list[BadRow] = []
    reader = _RowReader(spec, bad_rows, origin)
    notes: list[str] = []
    parts: dict[str, list[Example]] = {}
    rows_read = 0
    sources: list[str] = []  # where train came from, and test, for errors
    test_source = few = ""

    def take(split: str, name: str, rows: Iterable[tuple[int, Any]]) -> list[Example]:
        nonlocal rows_read
        if split in ("all", "train"):
            sources.append(name)
        before = len(bad_rows)
        got = reader.read(split, name, rows)
        rows_read += len(got) + len(bad_rows) - before
        return got

    d = spec.data
    if d.path:
        name, rows = read_rows(d.path, base, d.format, "data.path", origin)
        test_source = name
        fr = spec.splits
        fractions = {"train": fr.train, "dev": fr.dev, "test": fr.test}
        examples = take("all", name, rows)
        parts = hash_split(examples, fractions)
        few = _too_few(name, examples, parts, fractions, reader.labels)
        notes.append(f"split {name} by content hash: train {fr.train:g}, dev {fr.dev:g}, test {fr.test:g}")
    else:
        for split in ("train", "dev", "test"):
            if d.hub:
                if split == "dev" and "dev" not in d.hub_splits:
                    continue
                name, rows = _read_hub(spec, split)
            else:
                path = getattr(d, split)
                if not path:
                    continue
                name, rows = read_rows(path, base, d.format, f"data.{split}", origin)
            parts[split] = take(split, name, rows)
            test_source = name
        if "test" not in parts:
            raise TaskFileError(
                origin, "data.test", "no test split given: add a `test` file, or use `path` to split one file"
            )
        _qualify_repeated_ids(parts, notes)
        if "dev" not in parts and spec.splits.dev > 0:
            frac = spec.splits.dev
            carved = hash_split(parts["train"], {"dev": frac, "train": 1 - frac})
            parts["train"], parts["dev"] = carved["train"], carved["dev"]
            notes.append(f"no dev file: {frac:g} of train held out as dev by content hash")

    limited: dict[str, int] = {}
    for split, n in spec.limit.items():
        if split in parts and len(parts[split]) > n:
            notes.append(f"limit: kept {n} of {len(parts[split])} {split} examples (deterministic sample)")
            limited[split] = len(parts[split]) - n
            parts[split] = _limit(parts[split], n, spec.seed)

    train = parts.get("train", [])
    if not train:
        raise DataError(f"train split of {', '.join(sources)}", "no usable training examples")
    labels = resolve_labels(spec, parts, reader.labels, reader.bad, sources, notes, origin, few)
    splits = {k: Split(k, tuple(v)) for k, v in parts.items() if v or k != "dev"}
    test = splits["test"]
    if not len(test):
        why = f": {reader.labels.conflict_text()}" if reader.labels.conflicts() else " (every row was skipped)"
        raise DataError(f"test split of {test_source}", "no usable test examples" + why)
    dev = splits.get("dev")
    overlaps = [
        o for o in (find_overlaps(splits["train"], test), *([find_overlaps(dev, test)] if dev else [])) if o.ids
    ]
    return TaskData(
        train=splits["train"],
        dev=dev if dev is not None and len(dev) else None,
        test=SealedSplit(test),
        labels=labels,
        bad_rows=bad_rows,
        overlaps=overlaps,
        notes=notes,
        rows_read=rows_read,
        limited=limited,
    )


def _too_few(
    name: str,
    examples: list[Example],
    parts: dict[str, list[Example]],
    fractions: dict[str, float],
    ledger: LabelLedger,
) -> str:
    """What is wrong with the split of one file, with its counts; "" when nothing is.

    Raises:
        DataError: (naming the file) the split left train or test empty: too few rows for the fractions, or copies of
            a text with different labels (each label sends its copies to a split of their own).
    """
    if not examples:  # no usable rows at all: the checks after labels say so
        return ""
    empty = [split for split in ("train", "test") if not parts[split]]
    counts = ", ".join(f"{split} {len(part)}" for split, part in parts.items())
    if empty and ledger.conflicts():
        raise DataError(name, f"splitting by content hash gave {counts}: {ledger.conflict_text()}")
    # Few enough that a class may miss train or test by chance: named as the cause when a label check then fails.
    smallest = min(fractions["train"], fractions["test"]) * len(examples)
    if not empty and smallest >= max(2, len(ledger.first)):
        return ""
    shares = ", ".join(f"{split} {fraction:g}" for split, fraction in fractions.items())
    distinct = len({content_hash(ex) for ex in examples})
    copies = f" ({distinct} distinct: copies of a row fall in the same split)" if distinct < len(examples) else ""
    text = (
        f"{len(examples)} rows{copies} are too few for the split fractions ({shares}): splitting them by content hash "
        f"gave {counts}"
    )
    advice = "Give more rows, or split files of your own (`data.train` and `data.test` instead of `data.path`)"
    if empty:
        raise DataError(name, f"{text}, and {' and '.join(empty)} needs at least one example. {advice}")
    return f"{name}: {text}. {advice}"


def _qualify_repeated_ids(parts: dict[str, list[Example]], notes: list[str]) -> None:
    """Make ids unique across given splits by prefixing each with its split, when the files repeat ids.

    Datasets such as GLUE number each split's examples from 0; an id only has to be unique within its split there,
    but tailor keys predictions and overlap reports by id, so it qualifies them (``test:0``) rather than refuse.
    """
    where: dict[str, str] = {}
    repeated: list[tuple[str, str, str]] = []
    for split, examples in parts.items():
        for ex in examples:
            if ex.id in where:
                repeated.append((ex.id, where[ex.id], split))
            else:
                where[ex.id] = split
    if not repeated:
        return
    for split, examples in parts.items():
        parts[split] = [replace(ex, id=f"{split}:{ex.id}") for ex in examples]
    ex_id, first, second = repeated[0]
    notes.append(
        f"{len(repeated)} ids repeat across the given split files (e.g. {ex_id!r} in {first} and {second}): "
        f"every id is qualified by its split, e.g. {f'{second}:{ex_id}'!r}"
    )


def read_examples(spec: TaskSpec, path: str, base: Path) -> list[Example]:
    """All examples of one file under the task's field mapping and checks, unsplit (for scripts and protocols)."""
    bad_rows: list[BadRow] = []
    name, rows = read_rows(path, base, spec.data.format, "data.path")
    examples = _RowReader(spec, bad_rows).read("all", name, rows)
    if bad_rows:
        raise DataError(name, f"{len(bad_rows)} bad rows, first: {bad_rows[0].where}: {bad_rows[0].reason}")
    return examples
