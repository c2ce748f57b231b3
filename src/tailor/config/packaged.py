"""A model named by a file inside a pinned wheel on the Python package index: ``pypi:DIST==VERSION/PATH#sha256=HEX``.

The name's grammar only: reading it is part of reading a task file (and of showing a model's name in a report);
fetching the file is :mod:`tailor.backends.local.packaged`'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import TailorError

SCHEME = "pypi:"
_SPEC = re.compile(
    r"pypi:(?P<dist>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!_-]+)/(?P<member>[^#]+)"
    r"#sha256=(?P<sha>[0-9a-fA-F]{64})"
)
FORM = "pypi:DISTRIBUTION==VERSION/PATH/IN/WHEEL#sha256=HEX (64 hex digits)"


@dataclass(frozen=True)
class PackagedFile:
    """One file inside one pinned wheel, with the SHA-256 it must have."""

    dist: str
    version: str
    member: str
    sha256: str

    @property
    def cache_name(self) -> str:
        return f"{self.dist}-{self.version}-{self.sha256[:16]}"


def is_packaged(name: str) -> bool:
    return name.startswith(SCHEME)


def parse(name: str) -> PackagedFile:
    """The packaged file ``name`` names.

    Raises:
        TailorError: (at ``model.name``) ``name`` is not of the form ``pypi:DIST==VERSION/PATH#sha256=HEX``.
    """
    match = _SPEC.fullmatch(name.strip())
    if match is None:
        raise TailorError(f"model.name: {name!r} is not a packaged model; expected {FORM}")
    return PackagedFile(match["dist"], match["version"], match["member"].strip("/"), match["sha"].lower())
