"""Run folders: naming a new one, refusing to overwrite, continuing a stopped one (``--resume``), and the lock that
keeps two processes from writing one folder.

A resumed run must be the same run: its configuration is compared key by key with the task's, and its data must
split as it did; what it finished is kept (:class:`Resume`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..config.task import TaskSpec
from ..errors import TailorError
from .store import STORE_FILE, RunStore

LOCK_FILE = ".lock"


def safe_name(name: str) -> str:
    """``name`` as a file name: anything but letters, digits, ``_.-`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def new_run_dir(spec: TaskSpec, root: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = root / f"{safe_name(spec.name)}-{stamp}"
    n = 2
    while path.exists():
        path, n = root / f"{safe_name(spec.name)}-{stamp}-{n}", n + 1
    return path


def make_run_dir(run_dir: Path) -> None:
    """Create ``run_dir`` (and its parents) for writing, or say plainly why it can't be: a read-only folder or a full
    disk is the user's to fix by choosing another ``--out``, not a traceback."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TailorError(
            f"can't create the run folder {run_dir}: {exc.strerror or exc}"
            + (f" ({exc.filename})" if exc.filename and str(exc.filename) != str(run_dir) else "")
            + "; choose another --out, in a folder you can write to"
        ) from None
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise TailorError(f"can't write to the run folder {run_dir}: permission denied; choose another --out")


def config_differences(old: Any, new: Any, where: str = "") -> list[str]:
    """Where two resolved configurations differ, as ``key: old in the run, new now`` (keys as in the task file)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in [*old, *(k for k in new if k not in old)]:
            key = f"{where}.{k}" if where else str(k)
            if k not in new:
                out.append(f"{key}: {_short(old[k])} in the run, not set now")
            elif k not in old:
                out.append(f"{key}: not set in the run, {_short(new[k])} now")
            else:
                out += config_differences(old[k], new[k], key)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in config_differences(a, b, f"{where}[{i}]")]
    return [] if old == new else [f"{where or 'config'}: {_short(old)} in the run, {_short(new)} now"]


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class Resume:
    """What a resumed run keeps from its earlier attempt."""

    done: frozenset[str]  # trials stored with status ok
    data: dict[str, Any]  # the data summary the run recorded


def resume_plan(spec: TaskSpec, run_dir: Path, resume: bool) -> Resume | None:
    """For ``resume``, what the run in ``run_dir`` keeps, refusing one whose configuration differs; for a new run,
    refuses a folder that already holds a run (its checkpoints would be resumed unasked), and any other file or
    non-empty folder (a run writes report.md, adapted/… there: the user's own files would be overwritten)."""
    if not resume:
        if (run_dir / STORE_FILE).exists():
            raise TailorError(
                f"{run_dir} already holds a run; continue it with `tailor run TASK --resume {run_dir}`, "
                "or write the new run to another folder"
            )
        if run_dir.exists() and not run_dir.is_dir():
            raise TailorError(
                f"{run_dir} is a file, not a folder; a run needs a new or empty folder: choose another --out"
            )
        if run_dir.is_dir() and any(p.name != LOCK_FILE for p in run_dir.iterdir()):  # .lock: an attempt of ours
            raise TailorError(f"{run_dir} is not empty and is not a tailor run; choose another --out")
        return None
    if not (run_dir / STORE_FILE).is_file():
        raise TailorError(f"--resume {run_dir}: no run store ({STORE_FILE}) there; give a folder `tailor run` wrote")
    store = RunStore.open_existing(run_dir)
    try:
        if not store.has_run():  # killed before the run was recorded: nothing to keep, it starts again
            return None
        run = store.run()
        done = frozenset(r["trial"] for r in store.results() if r["status"] == "ok")
    finally:
        store.close()
    differ = config_differences(run["config"], json.loads(json.dumps(spec.model_dump(mode="json"))))
    if differ:
        raise TailorError(
            f"refusing to resume {run_dir}: the task's configuration differs from the run's at "
            + "; ".join(differ)
            + ". Resume with the same task file and overrides, or start a new run."
        )
    return Resume(done, run["data"])


def check_same_data(stored: dict[str, Any], now: dict[str, Any], run_dir: Path) -> None:
    """The data a resumed run reads must split as it did and hold the same examples, ids, inputs and targets (notes
    aside: they hold timings)."""
    now = json.loads(json.dumps(now))  # as the store holds it (lists, not tuples)
    ignored = ("notes", "content")
    differ = config_differences(
        {k: v for k, v in stored.items() if k not in ignored},
        {k: v for k, v in now.items() if k not in ignored},
        "data",
    )
    if differ:
        raise TailorError(f"refusing to resume {run_dir}: the data no longer splits as it did: " + "; ".join(differ))
    # A run recorded before content hashes were kept has none to compare: its counts and labels were checked above.
    old, new = stored.get("content") or {}, now.get("content") or {}
    changed = [name for name in old if old[name] != new.get(name)]
    if changed:
        raise TailorError(
            f"refusing to resume {run_dir}: the examples of the "
            + " and ".join(f"{name} split" for name in changed)
            + " changed since the run started (an id, an input or a target differs, or the order); resume with the "
            "data the run started with, or start a new run"
        )


def run_is_live(run_dir: Path) -> bool:
    """Whether a process is writing ``run_dir`` now: its lock is held (the lock dies with its process, so a run killed
    with SIGKILL, whose store still says ``running``, is not live). A folder whose lock can't be tried (read-only) is
    taken as live: nothing is claimed that can't be checked."""
    from filelock import FileLock, Timeout

    if not run_dir.is_dir():
        return False
    lock = FileLock(str(run_dir / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except (Timeout, OSError):  # held by another process, or not ours to try
        return True
    lock.release()
    return False


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """One process at a time writes a run folder. The lock is released when its process dies, so a killed run can be
    resumed."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(run_dir / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise TailorError(f"{run_dir} is being written by another tailor process; wait for it or stop it") from None
    try:
        yield
    finally:
        lock.release()
