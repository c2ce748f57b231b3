"""Files tailor keeps for the user across runs: where its cache lives, and a file's content hash; and why writing a
file failed, in words the user can act on (a full disk with its free space, a folder that is not writable)."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import TailorError

_HASHES: dict[tuple[str, int, int], str] = {}


def cache_home() -> Path:
    """``$TAILOR_CACHE_DIR``, else ``$XDG_CACHE_HOME/tailor``, else ``~/.cache/tailor``: the user's tailor cache,
    shared by every run of every task (served responses, dequantized GGUF models, files fetched from packages)."""
    if os.environ.get("TAILOR_CACHE_DIR"):
        return Path(os.environ["TAILOR_CACHE_DIR"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "tailor"
    return Path.home() / ".cache" / "tailor"


def cache_home_origin() -> str:
    """Which setting chose :func:`cache_home`, for messages: the variable, or the default and how to move it."""
    if os.environ.get("TAILOR_CACHE_DIR"):
        return "set by $TAILOR_CACHE_DIR"
    if os.environ.get("XDG_CACHE_HOME"):
        return "$XDG_CACHE_HOME/tailor; set TAILOR_CACHE_DIR to move it"
    return "the default; set TAILOR_CACHE_DIR to move it"


def unwritable(folder: Path) -> str | None:
    """Why no file can be made in ``folder`` (made first when missing), or None when one can. Tried by making one:
    permission bits don't tell (root ignores them; a read-only mount or an immutable folder refuses root too)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def writable_cache(folder: Path, what: str, instead: str = "") -> Path:
    """``folder`` inside the tailor cache, made and checked writable before ``what`` (e.g. "the response cache") is
    written there; ``instead`` is another way out, for the message.

    Raises:
        TailorError: no file can be made there; names the folder, the variable that chose it and what to do.
    """
    why = unwritable(folder)
    if why is not None:
        raise TailorError(
            f"{what} can't be written: the tailor cache folder {folder} is not writable ({why}); the cache is "
            f"{cache_home()} ({cache_home_origin()}). Make it writable, or set TAILOR_CACHE_DIR to a folder you can "
            f"write{instead and ', or ' + instead}"
        )
    return folder


def file_sha256(path: Path) -> str:
    """The file's SHA-256, read once per process for the same path, size and modification time (a model file is
    hundreds of MB; every resolution of its name needs the hash)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


# Below this much free space, a failed write is taken for a full disk (torch's writer doesn't say why it failed).
_NEARLY_FULL = 1 << 20


def free_space(folder: Path) -> int | None:
    """Bytes free on the disk of ``folder`` (or of its nearest existing parent); None when that can't be read."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def disk_full(folder: Path, exc: BaseException) -> bool:
    """Whether writing into ``folder`` failed with ``exc`` because its disk is full (or the user's quota used up)."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if "disk is full" in str(exc):  # SQLite's words for SQLITE_FULL
        return True
    free = free_space(folder)
    return isinstance(exc, RuntimeError) and free is not None and free < _NEARLY_FULL


def write_failure(folder: Path, exc: BaseException) -> str:
    """Why writing into ``folder`` failed, in words: a full disk with the space left on it, or the error's own.
    Call it before cleaning up what the failed write left: that frees the space again."""
    if disk_full(folder, exc):
        free = free_space(folder)
        return f"the disk is full ({'no space' if free is None else size_text(free)} left on the disk of {folder})"
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else None) or f"{type(exc).__name__}: {exc}"


def size_text(n: int) -> str:
    """Bytes for people: ``0 bytes``, ``172 KB``, ``3.1 GB``."""
    if n < 1000:
        return f"{n} bytes"
    value = float(n)
    for unit in ("KB", "MB", "GB"):
        value /= 1000
        if value < 999.5:  # what rounds to 1000 reads better as 1 of the next unit
            return f"{value:.3g} {unit}"
    return f"{value / 1000:,.1f} TB"
