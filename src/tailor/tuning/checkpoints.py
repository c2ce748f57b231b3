"""Fine-tuning checkpoints a killed run resumes from, and what makes one this run's.

A checkpoint is a pickle (``torch.save``); one can come from anywhere (a copied run folder, a shared disk). So its
identity (the fingerprint of model, options and data) is kept in a small JSON file beside it and compared before the
checkpoint is opened, and the checkpoint is read with ``weights_only``: tensors and plain data, never code.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..backends.files import write_failure
from ..errors import MethodError

CHECKPOINT = "checkpoint.pt"


def fingerprint_of(**parts: Any) -> dict[str, str]:
    """A short hash per part (model, options, data…): what a checkpoint must match to be resumed."""
    return {
        k: hashlib.sha256(json.dumps(v, sort_keys=True, default=str).encode()).hexdigest()[:16]
        for k, v in parts.items()
    }


def weights_signature(folder: str | Path) -> list[list[Any]]:
    """Name, size and a hash of the first and last MB of each weight file in ``folder``: tells two models with
    the same config apart (say, a re-initialized one) without reading gigabytes."""
    out: list[list[Any]] = []
    folder = Path(folder)
    if not folder.is_dir():
        return out
    for f in sorted(folder.iterdir()):
        if f.suffix in (".safetensors", ".bin", ".pt", ".gguf") and f.is_file():
            size = f.stat().st_size
            with f.open("rb") as fh:
                head = fh.read(1 << 20)
                fh.seek(max(0, size - (1 << 20)))
                tail = fh.read(1 << 20)
            out.append([f.name, size, hashlib.sha256(head + tail).hexdigest()[:16]])
    return out


def _identity_file(path: Path) -> Path:
    """The small JSON file beside a checkpoint saying which run wrote it: read before the checkpoint itself."""
    return path.with_name(path.stem + ".json")


def load_checkpoint(path: Path, fingerprint: dict[str, str]) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None when there is none. Its identity file is compared with ``fingerprint``
    before the checkpoint is opened, and the checkpoint is read as tensors and plain data only: a crafted file
    (checkpoints are pickles) can't run code."""
    import pickle

    import torch

    if not path.is_file():
        return None
    identity = _identity_file(path)
    start_over = "delete it (or use a new run folder) to start over"
    try:
        theirs = json.loads(identity.read_text(encoding="utf-8"))["fingerprint"]
        if not isinstance(theirs, dict):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError):
        raise MethodError(
            f"refusing to resume from {path}: its identity file {identity} is missing or not the JSON tailor writes "
            f"(with its run's fingerprint), so the checkpoint can't be told to be this run's; {start_over}",
            key="resume",
        ) from None
    _check_fingerprint(path, theirs, fingerprint, start_over)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise MethodError(
            f"refusing to resume from {path}: it holds more than tensors and plain data (or is damaged), so it was "
            f"not written by tailor and is not loaded ({type(exc).__name__}); {start_over}",
            key="resume",
        ) from None
    if not isinstance(state, dict):
        raise MethodError(f"refusing to resume from {path}: not a tailor checkpoint; {start_over}", key="resume")
    _check_fingerprint(path, state.get("fingerprint") or {}, fingerprint, start_over)
    return state


def _check_fingerprint(path: Path, theirs: dict[str, Any], ours: dict[str, str], start_over: str) -> None:
    differ = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
    if differ:
        raise MethodError(
            f"refusing to resume from {path}: it was written for a different {', '.join(differ)} than this run's; "
            + start_over,
            key="resume",
        )


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as Python numbers and lists, so a weights-only load reads it back."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if type(value) in (list, tuple):  # exactly these: a subclass (torch.Size) is loadable as it is
        return type(value)(_plain(v) for v in value)
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return value


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` (and its identity file beside it), each through a temporary file renamed into place.

    Raises:
        MethodError: The write failed (a full disk, a read-only folder): the message says which, with the folder and
            its free space; no temporary file is left behind, and the previous checkpoint, if any, is still whole.
    """
    import torch

    identity = _identity_file(path)
    written = [identity.with_suffix(".json.tmp"), path.with_suffix(".tmp")]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The identity first: whenever a checkpoint exists, so does the file saying whose it is (a run's fingerprint
        # never changes, so an identity file a step ahead of its checkpoint still tells the truth).
        written[0].write_text(
            json.dumps({"fingerprint": state["fingerprint"], "per_step": state["per_step"]}), encoding="utf-8"
        )
        os.replace(written[0], identity)
        # Through a file of ours, closed on any error: torch's own writer keeps its file open while the error is
        # alive, so a half-written checkpoint removed below would still hold its space on a full disk.
        with written[1].open("wb") as fh:
            torch.save(_plain(state), fh)
        os.replace(written[1], path)  # a kill mid-write leaves the previous checkpoint whole
    except (OSError, RuntimeError) as exc:  # torch's writer reports a full disk as a RuntimeError of its own words
        reason = write_failure(path.parent, exc)  # before the clean-up below frees the space again
        for tmp in written:  # a half-written file would only fill the disk further
            tmp.unlink(missing_ok=True)
        raise MethodError(
            f"can't write the checkpoint {path}: {reason}; free some space or make the run folder writable, then "
            "continue the run with --resume",
            key="checkpoint",
        ) from None
