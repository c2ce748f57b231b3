"""Errors a user can act on. Each names where the problem is (file and line, or key) and what was expected."""

from __future__ import annotations


class TailorError(Exception):
    """Base of tailor's user-facing errors: printed without a traceback by the CLI."""


class TaskFileError(TailorError):
    """A problem with the task file or its overrides, at a key."""

    def __init__(self, file: str, key: str | None, message: str):
        self.file, self.key, self.message = file, key, message
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {message}")


class DataError(TailorError):
    """A problem with the data: a file, a line, a column or a label."""

    def __init__(self, where: str, message: str):
        self.where, self.message = where, message
        super().__init__(f"{where}: {message}")


class MethodError(TailorError):
    """A method's options don't fit the task or data (e.g. `k` larger than the examples available).

    ``key`` names the option (relative to the method entry, e.g. ``k``); the runner prefixes it
    with the method's place in the task file.
    """

    def __init__(self, message: str, key: str | None = None):
        self.key, self.message = key, message
        super().__init__(message)


class FolderError(TailorError):
    """A file of an adapted folder that does not hold what tailor saved there, or disagrees with the folder's other
    files, at a key (e.g. ``options.C`` of ``adapted.json``)."""

    def __init__(self, file: str, key: str | None, message: str):
        self.file, self.key, self.message = file, key, message
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {message}")
