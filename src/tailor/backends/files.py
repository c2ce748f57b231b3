"""Files tailor keeps for the user across runs: where its cache lives, and a file's content hash."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_HASHES: dict[tuple[str, int, int], str] = {}


def cache_home() -> Path:
    """``$TAILOR_CACHE_DIR``, else ``$XDG_CACHE_HOME/tailor``, else ``~/.cache/tailor``: the user's tailor cache,
    shared by every run of every task (served responses, dequantized GGUF models, files fetched from packages)."""
    if os.environ.get("TAILOR_CACHE_DIR"):
        return Path(os.environ["TAILOR_CACHE_DIR"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "tailor"
    return Path.home() / ".cache" / "tailor"


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
