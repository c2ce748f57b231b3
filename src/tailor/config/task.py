"""The task file: a YAML document validated into frozen pydantic models.

Every field carries its own docstring; those docstrings are what ``tailor keys`` and
the error messages show. Loading never guesses: an unknown key, a wrong type or a missing file is
an error that names the file and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from ..errors import TaskFileError
from ..types import TaskKind
from .costs import CostsSpec  # noqa: F401  (part of the task file's schema)
from .curve import DEFAULT_CURVE_SIZES, CurveSize, CurveSpec, MethodCurveSpec  # noqa: F401  (the schema's too)
from .model import EndpointSpec, ModelSpec, Price  # noqa: F401  (part of the task file's schema)
from .strict import STRICT


class DataSpec(BaseModel):
    """Where the examples come from: one file split by tailor, files per split, or a hub dataset."""

    model_config = STRICT

    path: str | None = None
    """One local file (.jsonl, .csv or .parquet) with all examples; tailor splits it by content hash."""
    train: str | None = None
    """A local file with the training examples (given splits are used as they are)."""
    dev: str | None = None
    """A local file with the development examples, used to choose between variants and for early stopping."""
    test: str | None = None
    """A local file with the held-out test examples, seen by no method while it adapts."""
    hub: str | None = None
    """A dataset id on the Hugging Face hub, loaded with ``datasets.load_dataset`` (needs a network)."""
    hub_config: str | None = None
    """The hub dataset's configuration name, if it has several."""
    hub_splits: dict[Literal["train", "dev", "test"], str] = Field(default_factory=dict)
    """Which hub split serves as train, dev and test, e.g. ``{dev: validation}``; default: same names."""
    format: Literal["jsonl", "csv", "parquet"] | None = None
    """File format; inferred from the file extension when omitted."""

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        kinds = [bool(self.path), bool(self.train or self.dev or self.test), bool(self.hub)]
        if sum(kinds) != 1:
            raise ValueError("give exactly one of: `path` (one file), `train`/`dev`/`test` (files), or `hub`")
        if (self.dev or self.test) and not self.train:
            raise ValueError("`dev`/`test` files were given without a `train` file")
        return self


class FieldsSpec(BaseModel):
    """Which columns of the data are the input, the target and the id."""

    model_config = STRICT

    input: str | list[str] = "text"
    """Column(s) forming the input. Several columns are kept by name (templates can use each)."""
    target: str | list[str] = "label"
    """Column holding the target: the label for classification, the reference text(s) otherwise. A list means
    the first of these columns a file has (e.g. `[references, target]` when only the test file has several
    references)."""
    id: str | None = None
    """Column holding a stable example id; default: derived from the file name and line number."""

    @property
    def inputs(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class SplitSpec(BaseModel):
    """How a single data file is split (each example's split fixed by a hash of its content); with given split files,
    only `dev` applies: the fraction of train held out as dev when there is no dev file."""

    model_config = STRICT

    train: float = 0.7
    """Fraction of examples for training."""
    dev: float = 0.1
    """Fraction of examples for development (choices, early stopping); 0 for none."""
    test: float = 0.2
    """Fraction of examples held out for the test report."""

    def check(self, data: DataSpec) -> None:
        """Validate the fractions that apply to ``data``'s source; raises ValueError naming what was expected.

        Not a validator of its own: which fractions matter depends on the data source, a sibling key. With one file
        all three split it; with given files (or hub splits) and no dev split, only `dev` is used, to hold out part
        of train; with a dev split too, none is used, so none is checked.
        """
        if data.path:
            total = self.train + self.dev + self.test
            if abs(total - 1.0) > 1e-6 or min(self.train, self.dev, self.test) < 0 or self.train == 0 or self.test == 0:
                raise ValueError(f"fractions must be >= 0, train and test > 0, and sum to 1 (they sum to {total:g})")
        elif not (data.dev or "dev" in data.hub_splits) and not 0 <= self.dev < 1:
            raise ValueError(
                f"with given split files only `dev` applies, the fraction of train held out as dev: expected >= 0 and "
                f"< 1, got {self.dev:g}"
            )


class MethodSpec(BaseModel):
    """One method to run: its registered `name`, an optional display `label`, its own `model`, and its options."""

    model_config = ConfigDict(extra="allow", frozen=True, use_attribute_docstrings=True)

    name: str
    """A registered method (see `tailor methods`)."""
    label: str | None = None
    """Name shown in the report; default: the method name (made unique)."""
    model: ModelSpec | None = None
    """This method's model (the same keys as the task's `model`); default: the task's `model`. Each distinct model
    is loaded once per run and shared by the methods that name it."""
    curve: MethodCurveSpec | None = None
    """In a learning curve, this method's own `sizes` and `seeds`, chosen from the task's `curve:` (e.g. `{sizes:
    [8, 32, 128], seeds: 3}`: the first 3 of the curve's seeds), for a method too costly to run at every point;
    default: all of the curve's. Its points see the same draws as every other method's at that size and seed."""

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class StatsSpec(BaseModel):
    """How confidence intervals and paired tests are computed."""

    model_config = STRICT

    bootstrap: int = Field(1000, ge=100)
    """Bootstrap resamples for confidence intervals and paired tests."""
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    """Confidence level of the intervals."""


DEFAULT_METRICS: dict[str, list[str]] = {
    "classification": ["accuracy", "macro_f1"],
    "summarization": ["rouge1", "rouge2", "rougeL"],
    "translation": ["chrf", "bleu"],
    "qa": ["exact_match", "f1"],
}


class TaskSpec(BaseModel):
    """A task: its data, what to predict, the base model, and the methods to compare."""

    model_config = STRICT

    name: str
    """Short name of the task, used in reports and run folders."""
    kind: TaskKind = "classification"
    """What is predicted: a label (classification) or text (summarization, translation, qa)."""
    data: DataSpec
    """Where the examples come from."""
    fields: FieldsSpec = Field(default_factory=FieldsSpec)
    """Which columns are the input, the target and the id."""
    labels: list[str] | None = None
    """The label set; inferred from the training split when omitted (classification only)."""
    metrics: list[str] | None = None
    """Metrics to report; the first is primary (used for choices). Default depends on `kind`."""
    splits: SplitSpec = Field(default_factory=SplitSpec)
    """Split fractions of `data.path` (one file); with given split files and no dev file, only `dev` is used (the
    fraction of train held out as dev)."""
    seed: int = 0
    """Seed for every random choice: sampling, demonstrations, training."""
    model: ModelSpec = Field(default_factory=ModelSpec)
    """The default model of every method (a method entry may name its own `model`)."""
    methods: list[MethodSpec] = Field(min_length=1)
    """The methods to run, in order, each with its options."""
    on_bad_rows: Literal["error", "skip"] = "error"
    """What to do with a row that can't be used: stop with an error, or skip it and count it in the report."""
    limit: dict[Literal["train", "dev", "test"], int] = Field(default_factory=dict)
    """Keep at most this many examples of a split (a deterministic sample, reported), e.g. `{dev: 500}`."""
    stats: StatsSpec = Field(default_factory=StatsSpec)
    """Confidence intervals and paired tests."""
    curve: CurveSpec | None = None
    """Run a learning curve: each method at several training `sizes` and `seeds` (see `tailor curve`)."""
    costs: CostsSpec | None = None
    """Prices of local compute (per CPU- or GPU-hour), for money in the cost and break-even views; served models
    give theirs in `model.price`. Without them, money is left out and the report says what to add."""
    summary: str | None = None
    """Also write a compact JSON summary of every method's figures to this path (relative to the task file);
    benchmark task files use it to fill `benchmarks/results/`."""

    @property
    def metric_names(self) -> list[str]:
        return list(self.metrics or DEFAULT_METRICS[self.kind])

    @field_validator("splits")
    @classmethod
    def _splits_that_apply(cls, splits: SplitSpec, info: ValidationInfo) -> SplitSpec:
        data = info.data.get("data")
        if data is not None:  # an invalid `data` is reported on its own key
            splits.check(data)
        return splits

    @field_validator("labels")
    @classmethod
    def _distinct_labels(cls, labels: list[str] | None) -> list[str] | None:
        # Compared as the data's labels are: surrounding whitespace stripped (data.py strips it and notes it), and
        # case-only differences refused, since "Billing" and "billing" would silently become two classes.
        if labels is None:
            return None
        seen: dict[str, str] = {}
        for label in labels:
            if not label.strip():
                raise ValueError(f"`labels` has an empty label ({label!r})")
            key = label.strip().casefold()
            if key in seen and seen[key].strip() == label.strip():
                raise ValueError(f"`labels` has duplicates: {seen[key]!r} and {label!r}")
            if key in seen:
                raise ValueError(
                    f"`labels` has {seen[key]!r} and {label!r}, which differ only in case; spell it one way"
                )
            seen[key] = label
        if len(labels) < 2:
            raise ValueError("`labels` needs at least two labels")
        return labels

    @model_validator(mode="after")
    def _check(self) -> TaskSpec:
        if self.kind != "classification" and self.labels:
            raise ValueError(f"`labels` only applies to classification, not {self.kind}")
        for i, entry in enumerate(self.methods):
            if entry.curve is None:
                continue
            problem = (
                ("", "a method's `curve:` picks sizes and seeds from the task's; add a top-level `curve:`")
                if self.curve is None
                else entry.curve.mismatch(self.curve, self.seed)
            )
            if problem:  # raised with its own location, so the message names `methods[i].curve.<key>`
                key, msg = problem
                loc = ("methods", i, "curve", key) if key else ("methods", i, "curve")
                error = PydanticCustomError("value_error", "{msg}", {"msg": msg})
                details = InitErrorDetails(type=error, loc=loc, input=entry.curve.model_dump())
                raise ValidationError.from_exception_data("TaskSpec", [details])
        return self


def task_keys(model: type[BaseModel] = None, prefix: str = "") -> list[tuple[str, str, str, str]]:  # type: ignore[assignment]
    """Every key of the task file as (dotted key, type, default, docstring), nested models expanded."""
    model = model or TaskSpec
    rows = []
    for name, info in model.model_fields.items():
        key = f"{prefix}{name}"
        ann = info.annotation
        # a nested model, also when optional (`EndpointSpec | None`)
        options = [a for a in (getattr(ann, "__args__", None) or (ann,)) if a is not type(None)]
        nested = options[0] if len(options) == 1 and isinstance(options[0], type) else None
        nested = nested if nested is not None and issubclass(nested, BaseModel) else None
        kind = "mapping" if nested else str(ann).replace("typing.", "").replace("<class '", "").replace("'>", "")
        if info.is_required():
            default = "required"
        else:
            value = info.get_default(call_default_factory=True)
            default = "(see below)" if isinstance(value, BaseModel) else repr(value)
        if name == "model" and model is MethodSpec:
            kind = "mapping"
        rows.append((key, kind, default, " ".join((info.description or "").split())))
        if nested and nested is not MethodSpec:
            rows.extend(task_keys(nested, f"{key}."))
        if model is TaskSpec and name == "methods":  # each entry's own keys; its options are listed by `tailor methods`
            rows.extend(task_keys(MethodSpec, "methods.N."))
    return rows


def _set_dotted(doc: dict[str, Any], dotted: str, value: Any, origin: str) -> None:
    keys = dotted.split(".")
    node: Any = doc
    for i, key in enumerate(keys[:-1]):
        nxt = keys[i + 1]
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise TaskFileError(origin, dotted, f"`{key}` is not an index of a list of {len(node)}")
            node = node[int(key)]
        else:
            if key not in node or node[key] is None:
                node[key] = [] if nxt.isdigit() else {}
            node = node[key]
    last = keys[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise TaskFileError(origin, dotted, f"`{last}` is not an index of a list of {len(node)}")
        node[int(last)] = value
    else:
        node[last] = value


def apply_overrides(doc: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Layer ``key=value`` overrides (dotted keys, YAML values) on a parsed task document."""
    for item in overrides:
        if "=" not in item:
            raise TaskFileError("command line", item, "an override must look like key=value, e.g. seed=3")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as exc:
            raise TaskFileError("command line", key, f"value {raw!r} is not valid YAML: {exc}") from exc
        _set_dotted(doc, key.strip(), value, "command line")
    return doc


def dotted_key(loc: tuple | list) -> str:
    """A validation error's location as the task file's key: ``methods[2].model.name``."""
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def blame_overrides(exc: TaskFileError, overrides: list[str]) -> TaskFileError:
    """``exc`` told as a mistake of the command line when its key was set there (``seed=abc``), not the task file's."""
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        at = dotted_key(tuple(int(p) if p.isdigit() else p for p in key.split(".")))
        if exc.key and (exc.key == at or exc.key.startswith((f"{at}.", f"{at}["))):
            return TaskFileError(f"the command line ({item})", exc.key, exc.message)
    return exc


def _format_validation(exc: ValidationError) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        key = dotted_key(err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        out.append((key, msg))
    return out


def parse_task(doc: Any, origin: str) -> TaskSpec:
    if not isinstance(doc, dict):
        raise TaskFileError(origin, "(top level)", "a task file must be a YAML mapping of keys to values")
    try:
        return TaskSpec.model_validate(doc)
    except ValidationError as exc:
        problems = _format_validation(exc)
        key, msg = problems[0]
        more = "".join(f"\n  {k}: {m}" for k, m in problems[1:])
        raise TaskFileError(origin, key, msg + more) from None


def load_task(path: str | Path, overrides: list[str] | None = None) -> tuple[TaskSpec, Path]:
    """Read, override and validate a task file. Relative data paths are resolved against its folder.

    Returns:
        The validated spec and the folder that relative paths are resolved against.
    """
    path = Path(path)
    if not path.is_file():
        raise TaskFileError(str(path), None, "task file not found")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f"line {line + 1}" if line is not None else None
        raise TaskFileError(str(path), where, f"not valid YAML: {exc}") from None
    doc = apply_overrides(doc if isinstance(doc, dict) else doc, list(overrides or []))
    spec, base = parse_task(doc, str(path)), path.resolve().parent
    methods = [m.model_copy(update={"model": _near(m.model, base)}) if m.model else m for m in spec.methods]
    return spec.model_copy(update={"model": _near(spec.model, base), "methods": methods}), base


def _near(model: ModelSpec, base: Path) -> ModelSpec:
    """A model named by a path starting with ``.`` (``./models/x``), a GGUF file or a scripted model's file, is the
    one next to the task file; a bare name stays a hub id (or a folder of the working directory), as Hugging Face
    reads it."""
    local = base / model.name
    if model.endpoint is not None:  # served elsewhere: the name is the server's model id; its tokenizer may be here
        tok = model.endpoint.tokenizer
        if tok and tok.startswith(".") and (base / tok).exists():
            endpoint = model.endpoint.model_copy(update={"tokenizer": str((base / tok).resolve())})
            return model.model_copy(update={"endpoint": endpoint})
        return model
    if (model.name.startswith(".") or model.kind == "scripted" or local.suffix.lower() == ".gguf") and local.exists():
        return model.model_copy(update={"name": str(local.resolve())})
    return model
