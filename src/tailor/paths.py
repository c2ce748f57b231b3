"""Paths as files meant to be shared show them: relative to a folder (the task file's, the run's) rather than as the
absolute paths of the machine that wrote them.

Reports, the benchmark summary and PEFT's ``adapter_config.json`` travel to other people; an absolute path there
tells them the user's folder layout (``/home/alice/...``) and is of no use on their machine anyway. Only files
tailor reloads itself (the store's configuration, which ``--resume`` compares) keep absolute paths.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

# An absolute path inside running text ("split /home/a/data.jsonl by content hash", "/home/a/data.jsonl:3"): not
# preceded by a word character, a dot, a colon or a slash (so neither "yes/no" nor "https://..." match), and
# ending at whitespace, quotes, brackets or a colon (a line number follows data paths).
_PATH_IN_TEXT = re.compile(r"(?<![\w.:/\\~-])(?:[A-Za-z]:[\\/]|/)[^\s'\"`<>|,;:()\[\]{}*?]*")

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_BASE_KEY = "base_model_name_or_path"


def shown_path(path: str, base: str | Path) -> str:
    """``path`` relative to ``base`` (as ``./x`` or ``../x``) when it is an absolute path near ``base``.

    Near means any common folder but the file system's root: a path that shares only the root would merely climb
    up to it, and says no more about the user's folders than the absolute path. Relative paths (and hub ids) stay as
    they are, as does a path on another drive.
    """
    if not os.path.isabs(path):
        return path
    path, base = os.path.abspath(path), os.path.abspath(base)
    try:
        common = os.path.commonpath([path, base])
        rel = os.path.relpath(path, base)
    except ValueError:  # another drive (Windows): there is no relative path
        return path
    if os.path.dirname(common) == common:
        return path
    return rel if rel == "." or rel.startswith("..") else os.path.join(".", rel)


def repository_root(folder: str | Path) -> Path | None:
    """The git repository ``folder`` lies in (the nearest folder above it holding ``.git``), or None."""
    here = Path(folder).resolve()
    for candidate in (here, *here.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/\\") + os.sep)


def shared_text(text: str, base: str | Path) -> str:
    """``text`` with the absolute paths it holds shown relative to ``base`` (see :func:`shown_path`).

    A path is rewritten when it exists on this machine or lies under ``base``, so a ``/`` in prose ("1/2", a
    template) is left alone. Whatever slips through (a folder name with spaces inside a sentence) still never
    shows ``base`` itself.
    """
    base = os.path.abspath(base)

    def one(match: re.Match[str]) -> str:
        token = match.group(0)
        path = token.rstrip(".")  # the end of a sentence
        if not (_under(os.path.abspath(path), base) or os.path.exists(path)):
            return token
        return shown_path(path, base) + token[len(path) :]

    if os.path.isabs(text) and (_under(os.path.abspath(text), base) or os.path.exists(text)):
        text = shown_path(text, base)  # a whole value that is a path, spaces and all
    text = _PATH_IN_TEXT.sub(one, text)
    return re.sub(re.escape(base) + r"(?=[\\/\s'\"]|$)", ".", text)


def shared(value: Any, base: str | Path) -> Any:
    """A JSON-like ``value`` (dicts, lists, text) with every text's absolute paths shown relative to ``base``."""
    if isinstance(value, str):
        return shared_text(value, base)
    if isinstance(value, dict):
        return {shared(k, base) if isinstance(k, str) else k: shared(v, base) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [shared(v, base) for v in value]
    return value


def share_adapter_configs(folder: Path, model_name: str) -> None:
    """Set ``base_model_name_or_path`` of every PEFT ``adapter_config.json`` under ``folder`` to ``model_name``.

    PEFT writes the absolute path the model was loaded from; tailor never reads that field back (``tailor predict``
    uses ``adapted.json``), so it is rewritten to the name as the task file gave it. PEFT's model card beside it
    names the same path and is rewritten alike.
    """
    for config_file in folder.rglob(ADAPTER_CONFIG):
        config = json.loads(config_file.read_text(encoding="utf-8"))
        old = config.get(ADAPTER_BASE_KEY)
        if not isinstance(old, str) or old == model_name:
            continue
        config[ADAPTER_BASE_KEY] = model_name
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
        card = config_file.parent / "README.md"
        if card.is_file() and old:
            card.write_text(card.read_text(encoding="utf-8").replace(old, model_name), encoding="utf-8")


def model_name_for_meta(name: str, adapted_dir: Path, run_dir: Path) -> str:
    """The model name ``adapted.json`` keeps: relative to ``adapted_dir`` when the model lies inside or beside the
    run (so the run folder and its models move together), else as it is (``tailor predict`` must find it)."""
    if os.path.isabs(name) and _under(os.path.abspath(name), os.path.abspath(run_dir.parent)):
        return shown_path(name, adapted_dir)
    return name
