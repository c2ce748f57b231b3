"""Loading an exported adapted model and predicting with it: what `tailor predict` does."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..config.model import EndpointSpec, ModelSpec
from ..config.saved import ADAPTED_FILE, AdaptedFile, read_saved, validated
from ..contract import Adapted, Context, Method, TaskInfo
from ..data.load import read_rows
from ..errors import DataError, FolderError, TailorError
from ..progress import NULL_PROGRESS, Progress
from ..types import Example, Prediction

# A Hugging Face hub id: a name, or owner/name, of letters, digits and ``_.-`` (never ``..``: no path escapes).
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?", re.ASCII)


def load_adapted(
    path: str | Path, progress: Progress = NULL_PROGRESS, trust_remote_code: bool = False, endpoint: str | None = None
) -> tuple[Adapted, dict[str, Any]]:
    """Load what a run saved for one method.

    Args:
        path: The method's folder, ``RUN_DIR/adapted/METHOD``.
        progress: Shows loading.
        trust_remote_code: Whether code shipped with the model may run. Only the caller decides: whatever
            ``adapted.json`` says is overridden, since the folder may come from someone else.
        endpoint: For a prompt on a served model: the server to send to. The folder's own URL is used only when the
            caller names it here too — a folder from someone else must not send your inputs (and your API key) to a
            server of theirs; another URL (the same model served elsewhere) replaces it.

    Returns:
        The adapted model and its metadata (with ``model.trust_remote_code`` as used).

    Raises:
        TailorError: ``path`` is not an adapted folder, its ``adapted.json`` is damaged, its model is neither an
            existing local folder or file nor a hub id, ``endpoint`` is not an http(s) URL, or the model ships code
            and ``trust_remote_code`` is off.
    """
    meta, model = check_adapted(path, trust_remote_code, endpoint)
    return _load(Path(path), meta, model, progress), meta


def check_adapted(
    path: str | Path, trust_remote_code: bool = False, endpoint: str | None = None
) -> tuple[dict[str, Any], ModelSpec]:
    """What :func:`load_adapted` checks before loading anything (arguments as there): the metadata, and the model
    spec it would load. The folder must hold what its method saves, and ``adapted.json`` must be as a run writes it
    (:class:`~tailor.config.saved.AdaptedFile`), its options valid for its method."""
    from ..backends.models import remote_code_refused, shipped_code

    path = Path(path)
    meta_file = path / ADAPTED_FILE
    if not meta_file.is_file():
        raise TailorError(
            f"{path}: not an adapted model folder (no {ADAPTED_FILE}); use a folder under RUN_DIR/adapted/"
        )
    saved = read_saved(meta_file, AdaptedFile, f"; the folder's {ADAPTED_FILE} is damaged (rerun the method)")
    method = _method(saved.method, meta_file)
    _check_files(method, path)
    known = f"options of {method.name}: " + ", ".join(method.Options.model_fields)
    options = validated(saved.options, method.Options, str(meta_file), at="options", known=known)
    meta = {**saved.model_dump(mode="json"), "options": options.model_dump(mode="json")}
    meta["model"] = {**meta["model"], "trust_remote_code": trust_remote_code}
    model = _served_at(_model_spec(meta["model"], meta_file), endpoint, meta_file)
    folder = Path(os.path.expanduser(model.name))
    code = shipped_code(folder) if model.endpoint is None and not trust_remote_code and folder.is_dir() else []
    if code:
        how = "add --trust-remote-code to this `tailor predict` command line"
        raise TailorError(f"{meta_file}: the model {remote_code_refused(model.name, code, how)}")
    return meta, model


def _method(name: str, meta_file: Path) -> Method:
    from ..methods import get_method

    try:
        return get_method(name)
    except TailorError as exc:
        raise FolderError(str(meta_file), "method", str(exc)) from None


def _check_files(method: Method, folder: Path) -> None:
    """The folder holds every file its method saves: a folder whose ``adapted.json`` names another method than the
    one that saved it (or copied in part) is named as such, before anything is read."""
    missing = [f for f in method.files if not (folder / f).exists()]
    if missing:
        held = ", ".join(sorted(p.name for p in folder.iterdir()))
        raise FolderError(
            str(folder),
            None,
            f"{missing[0]} is missing; the adapted folder is incomplete: {method.name} saves "
            f"{' and '.join(method.files)}, and this folder holds {held}. Copy all of it; or, if the method of its "
            f"{ADAPTED_FILE} ({method.name}) is not the one that saved the folder, correct it",
        )


def _load(path: Path, meta: dict[str, Any], model: ModelSpec, progress: Progress) -> Adapted:
    from ..methods import get_method

    ctx = Context(
        task=TaskInfo.from_dict(meta["task"]),
        model=model,
        seed=meta["seed"],
        workdir=path,
        progress=progress,
    )
    method = get_method(meta["method"])
    try:
        return method.load(method.Options.model_validate(meta["options"]), path, ctx)
    except FileNotFoundError as exc:  # a folder copied in part: name the file, not a traceback
        raise TailorError(
            f"{path}: {exc.filename or exc} is missing; the adapted folder is incomplete (copy all of it, or rerun "
            "the method)"
        ) from None


def _served_at(spec: ModelSpec, endpoint: str | None, meta_file: Path) -> ModelSpec:
    """``spec`` sent to ``endpoint``: refused when it is not a URL, or the folder names a server the caller didn't."""
    if endpoint is not None:  # checked as the task file's `url:` is, before anything tries to connect
        try:
            endpoint = EndpointSpec(url=endpoint).url
        except ValidationError as exc:
            raise TailorError(f"--endpoint: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    if spec.endpoint is None:
        if endpoint is not None:
            raise TailorError(
                f"{meta_file}: the model {spec.name} is loaded locally; --endpoint applies to served models"
            )
        return spec
    if endpoint is None:
        key = f" with the key in ${spec.endpoint.api_key_env}" if spec.endpoint.api_key_env else ""
        raise TailorError(
            f"{meta_file}: this prompt is for {spec.name} served at {spec.endpoint.url}; predicting sends your inputs "
            f"there{key}. Pass --endpoint {spec.endpoint.url} to confirm, or the URL of another server of that model"
        )
    return spec.model_copy(update={"endpoint": spec.endpoint.model_copy(update={"url": endpoint})})


def _model_spec(model: dict[str, Any], meta_file: Path) -> ModelSpec:
    """The model ``adapted.json`` names, refused unless it is an existing local folder or file or a hub id."""
    try:
        spec = ModelSpec(**model)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(["model", *(str(part) for part in err["loc"])])
        raise TailorError(f"{meta_file}: {key}: {err['msg']}; the folder's {ADAPTED_FILE} is damaged") from None
    if spec.endpoint is not None:  # served: the name is the server's model id (checked by the server's probe)
        return spec
    local = Path(os.path.expanduser(spec.name))  # not Path.expanduser: `~nobody` would raise
    beside = meta_file.parent / spec.name
    if spec.name.startswith(".") and (beside.is_dir() or beside.is_file()):  # a run's own model, kept relative
        return spec.model_copy(update={"name": str(beside.resolve())})
    if local.is_dir() or local.is_file():
        return spec
    if ".." not in spec.name and _HUB_ID.fullmatch(spec.name):
        return spec
    raise TailorError(
        f"{meta_file}: model.name {spec.name!r} is neither an existing local model folder or file nor a hub id "
        "(NAME or OWNER/NAME, no '..'); the run could not have used it. Point model.name at the model the run used "
        "(it may have moved) and check where this folder came from"
    )


def read_inputs(path: str | Path, input_fields: Sequence[str], id_field: str | None = None) -> list[Example]:
    """Read examples to predict (no target needed). Every row must have the input fields, non-empty."""
    name, rows = read_rows(str(path), Path.cwd(), None, "input", origin="command line")
    out = []
    stem = Path(name).stem
    for lineno, row in rows:
        where = f"{name}:{lineno}"
        if isinstance(row, DataError):
            raise row
        if not isinstance(row, dict):
            raise DataError(where, f"expected an object with fields, got {type(row).__name__}")
        inputs = {}
        for col in input_fields:
            value = row.get(col)
            if not isinstance(value, str) or not value.strip():
                raise DataError(where, f"input column {col!r} missing or empty (needed: {', '.join(input_fields)})")
            inputs[col] = value
        ex_id = str(row[id_field]) if id_field and id_field in row else str(row.get("id", f"{stem}:{lineno}"))
        out.append(Example(id=ex_id, inputs=inputs, target=None, source=where))
    if not out:  # the readers already refuse an empty file; this guards any that yields no rows without a word
        raise DataError(name, f"is empty: no examples to predict (expected rows with {', '.join(input_fields)})")
    return out


def predict_file(
    adapted_dir: str | Path,
    input_path: str | Path,
    progress: Progress = NULL_PROGRESS,
    trust_remote_code: bool = False,
    endpoint: str | None = None,
) -> Iterator[tuple[Example, Prediction]]:
    """Each example of ``input_path`` with its prediction by the adapted model in ``adapted_dir`` (code shipped with
    the model runs only with ``trust_remote_code``)."""
    from .evaluate import predict_all

    # The folder and the inputs are checked before the model loads: a bad input file costs no loading time.
    meta, model = check_adapted(adapted_dir, trust_remote_code, endpoint)
    examples = read_inputs(input_path, meta["task"]["input_fields"])
    adapted = _load(Path(adapted_dir), meta, model, progress)
    yield from zip(examples, predict_all(adapted, examples, progress, "predicting"))
