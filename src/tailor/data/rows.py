"""Reading a local data file row by row: JSONL, CSV or Parquet → (line, row) pairs, a row that can't be read at all
coming as an :class:`UnreadableRow` that names its file and line.

JSONL and CSV are read here line by line rather than through ``datasets``, because a bad line (not UTF-8, not
JSON, the wrong number of fields) must be reported by its number and, with ``on_bad_rows: skip``, skipped alone;
``datasets`` fails the whole file, and fills a short CSV row with empty values without a word.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import DataError, TaskFileError

__all__ = ["UnreadableRow", "read_rows"]

# Long documents (summarization sources) exceed the csv module's default field limit of 128 KiB.
_CSV_FIELD_LIMIT = 2**31 - 1


class UnreadableRow(DataError):
    """A row that could not be read at all; ``kind`` is the short category the report counts skipped rows by."""

    def __init__(self, where: str, message: str, kind: str):
        super().__init__(where, message)
        self.kind = kind


def _decode(path: Path, lineno: int, raw: bytes) -> str | UnreadableRow:
    try:
        # A byte-order mark at the start of the file is an editor's habit, not part of the first value.
        return raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        message = f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); save the file as UTF-8"
        return UnreadableRow(f"{path}:{lineno}", message, "not valid UTF-8")


def _read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    any_line = False
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = _decode(path, lineno, raw)
            if isinstance(line, UnreadableRow):
                any_line = True
                yield lineno, line
                continue
            if not line.strip():
                continue
            any_line = True
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                reason = f"not valid JSON ({exc.msg} at column {exc.colno})"
                yield lineno, UnreadableRow(f"{path}:{lineno}", reason, "not valid JSON")
    if not any_line:
        raise DataError(str(path), "is empty: expected one JSON object per line")


def _read_csv(path: Path) -> Iterator[tuple[int, Any]]:
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    undecodable: dict[int, UnreadableRow] = {}

    def lines() -> Iterator[str]:
        with path.open("rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                line = _decode(path, lineno, raw)
                if isinstance(line, UnreadableRow):
                    # Keep the record structure (a quoted value may span lines) and report the record afterwards.
                    undecodable[lineno] = line
                    line = raw.decode("utf-8", errors="replace")
                yield line

    reader = csv.reader(lines())
    header = next(reader, None)
    while header is not None and not header:  # blank lines before the header
        header = next(reader, None)
    if header is None:
        raise DataError(str(path), "is empty: expected a header line naming the columns, then one row per line")
    if undecodable:
        first = min(undecodable.values(), key=lambda e: int(e.where.rsplit(":", 1)[1]))
        raise DataError(first.where, f"the header line is {first.message}")
    start, any_row = reader.line_num + 1, False
    for record in reader:
        end = reader.line_num
        bad = next((undecodable[n] for n in range(start, end + 1) if n in undecodable), None)
        if bad is not None:
            yield start, bad
        elif not record:  # a blank line
            pass
        elif len(record) != len(header):
            reason = f"has {len(record)} fields, the header has {len(header)} ({', '.join(header)})"
            yield start, UnreadableRow(f"{path}:{start}", reason, "wrong number of fields")
        else:
            yield start, dict(zip(header, record, strict=True))
        any_row = any_row or bool(record) or bad is not None
        start = end + 1
    if not any_row:
        raise DataError(str(path), "is empty: a header line and no rows")


def _read_parquet(path: Path) -> Iterator[tuple[int, Any]]:
    import datasets

    datasets.disable_progress_bars()
    try:
        ds = datasets.Dataset.from_parquet(str(path))
    except Exception as exc:  # the libraries raise many types for a malformed file
        raise DataError(str(path), f"could not read as parquet: {exc}") from None
    if len(ds) == 0:
        raise DataError(str(path), "is empty: no rows")
    for i, row in enumerate(ds):
        yield i + 1, row


def read_rows(
    path_str: str, base: Path, fmt: str | None, key: str, origin: str = "task file"
) -> tuple[str, Iterator[tuple[int, Any]]]:
    """Open a local data file; returns its display name and an iterator of (line, row or :class:`UnreadableRow`).

    Args:
        path_str: The file, relative to ``base`` unless absolute.
        base: The folder relative paths are resolved against (the task file's).
        fmt: ``jsonl``, ``csv`` or ``parquet``; inferred from the extension when None.
        key: The key that named the file (``data.train``), for errors.
        origin: Where ``path_str`` was given (the task file's path), for errors.

    Raises:
        TaskFileError: The file is missing or its format can't be told.
        DataError: While iterating: the file is empty, or can't be read as its format at all.
    """
    path = Path(path_str)
    if not path.is_absolute():
        path = base / path
    if not path.is_file():
        raise TaskFileError(origin, key, f"data file not found: {path}")
    fmt = fmt or {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}.get(path.suffix.lower())
    if fmt is None:
        raise TaskFileError(origin, "data.format", f"can't tell the format of {path.name}; say jsonl, csv or parquet")
    readers = {"jsonl": _read_jsonl, "csv": _read_csv, "parquet": _read_parquet}
    return str(path), readers[fmt](path)
