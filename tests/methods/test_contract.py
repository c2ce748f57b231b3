"""The one contract every registered method passes: adapt → predict → save → load → same predictions, with every
member the contract declares (:mod:`tailor.contract`) present and of its declared kind, on the adapted model and on the
loaded one alike.

Parametrized over the registry itself, as (method, model kind) pairs — every kind the method declares that can
be built offline: the real pretrained encoder, a tiny random causal LM (Llama; Qwen2 too for the fine-tune route)
and a tiny random encoder-decoder (T5) — so a method added to ``tailor.methods.METHODS`` is covered without touching
this file (give it small settings in ``conftest.FAST_OPTIONS`` if it is slow).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from pathlib import Path

import pytest
from conftest import LABELS, fast_options, squash
from typer.testing import CliRunner

from tailor.backends.pool import ModelPool
from tailor.backends.protocol import EncoderBackend, GenerativeBackend
from tailor.cli.main import app
from tailor.config.task import ModelSpec
from tailor.contract import Adapted, AdaptReport, Context, MethodOptions, SavedAs, TaskInfo
from tailor.costs.usage import Usage
from tailor.methods import METHODS
from tailor.prompting import UsedPrompt
from tailor.runner.plan import sample_per_class
from tailor.runner.predict import load_adapted
from tailor.runner.run import save_adapted
from tailor.runner.store import RunStore
from tailor.testing import tiny_lm_path
from tailor.types import Example, Prediction, Split, adapting

METHOD_NAMES = list(METHODS)


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_method_declares_its_contract(name: str) -> None:
    method = METHODS[name]
    assert method.name == name, "the registry key and the method's own name must agree"
    assert method.route in ("prompt", "finetune")
    assert isinstance(method.summary, str) and method.summary.strip()
    assert isinstance(method.task_kinds, frozenset) and method.task_kinds
    assert isinstance(method.model_kinds, frozenset) and method.model_kinds
    assert issubclass(method.Options, MethodOptions)
    for verb in ("check", "variants", "adapt", "load", "uses_examples"):
        assert callable(getattr(method, verb)), f"{name} lacks {verb}()"
    assert list(inspect.signature(method.load).parameters) == ["options", "path", "ctx"], name
    assert isinstance(method.shares_model, bool), f"{name}: shares_model must be declared (True or False)"
    assert method.shares_model == (method.route == "prompt" or name == "head"), "only methods that train own a copy"
    assert isinstance(method.files, tuple) and method.files and all(isinstance(f, str) for f in method.files), name
    undocumented = [f for f, info in method.Options.model_fields.items() if not (info.description or "").strip()]
    assert not undocumented, f"{name}: options without a docstring: {undocumented}"
    # Defaults must be valid on their own: a bare `- name: <method>` entry has to work.
    options = method.Options()
    assert set(method.variants(options)), f"{name}: variants() of the default options is empty"
    assert isinstance(method.uses_examples(options), bool)
    # a saved folder's adapted.json spells every option out, and loading validates them again
    assert method.Options.model_validate(options.model_dump(mode="json")) == options


# The model kinds the contract runs on, each one a model that can be had offline: the real pretrained encoder
# (the task's default model), random tiny generative models built locally (tailor.testing), and the scripted fake
# LM (no weights at all: answers and scores from a JSON script).
MODEL_KINDS = ("encoder", "causal", "seq2seq", "scripted")
# A second architecture of a kind, for the fine-tune route: layer names, BOS handling and PEFT's defaults differ.
EXTRA_ARCHS = {"causal": ("qwen2",)}
TINY_ARCH = {"causal": "llama", "seq2seq": "t5"}


# The developer tier (`-m "not integration and not slow"`) runs each method's contract on the first model kind it
# supports, plus a seq2seq prompt and LoRA (the encoder-decoder paths); the full suite runs every method x kind and
# the second causal architecture. A prompt search on a real model takes seconds per kind: on the scripted model only.
DEVELOPER_TIER_ALSO = {"prompt-seq2seq", "lora-seq2seq"}
SLOW_CASES = {"prompt-search-encoder", "prompt-search-causal", "prompt-search-seq2seq"}


def _cases(route: str | None = None) -> list:
    cases = []
    for name, method in METHODS.items():
        if route and method.route != route:
            continue
        first = True
        for kind in MODEL_KINDS:
            if kind not in method.model_kinds:
                continue
            case_id = f"{name}-{kind}"
            sampled = (first and case_id not in SLOW_CASES) or case_id in DEVELOPER_TIER_ALSO
            first = first and case_id in SLOW_CASES
            cases.append(pytest.param(name, kind, id=case_id, marks=[] if sampled else [pytest.mark.slow]))
            if method.route == "finetune":
                for arch in EXTRA_ARCHS.get(kind, ()):
                    cases.append(pytest.param(name, f"{kind}-{arch}", id=f"{case_id}-{arch}", marks=pytest.mark.slow))
    return cases


CASES = _cases()


def test_every_method_runs_the_contract_on_every_kind_it_supports() -> None:
    ids = {case.id for case in GENERATION_CASES}
    assert {"lora-causal", "lora-causal-qwen2", "lora-seq2seq", "full-seq2seq", "prompt-tuning-seq2seq"} <= ids
    covered: dict[str, set[str]] = {}
    for case in CASES:
        name, kind = case.values
        covered.setdefault(name, set()).add(kind.split("-", 1)[0])
    assert set(covered) == set(METHODS), "a method that supports none of the buildable model kinds goes untested"
    for name, method in METHODS.items():
        assert covered[name] == set(method.model_kinds) & set(MODEL_KINDS), name
    # the generative fine-tune methods in particular run on both generative kinds
    generative = [n for n, m in METHODS.items() if m.route == "finetune" and {"causal", "seq2seq"} <= m.model_kinds]
    assert {"full", "lora", "prompt-tuning"} <= set(generative)


@pytest.fixture(scope="session")
def model_for(tmp_path_factory: pytest.TempPathFactory):
    """The model a case runs on, by kind: the real encoder, or a random tiny LM (built once per session)."""
    cache = tmp_path_factory.getbasetemp() / "tiny-lms"

    def get(kind: str, encoder: ModelSpec) -> ModelSpec:
        base, _, arch = kind.partition("-")
        if base == "encoder":
            return encoder
        if base == "scripted":
            script = cache / "script.json"
            if not script.exists():
                script.parent.mkdir(parents=True, exist_ok=True)
                # fixed label scores and a fixed answer: the contract, not accuracy, is what a script can show
                script.write_text(
                    json.dumps(
                        {
                            "scores": {"sports": -1.0, "cooking": -1.5, "weather": -2.0},
                            "default_answer": "sports",
                            "parameters": 1000,
                        }
                    )
                )
            return ModelSpec(name=str(script), kind="scripted")
        return ModelSpec(name=str(tiny_lm_path(cache, arch=arch or TINY_ARCH[base])))

    return get


def _context(task: TaskInfo, model: ModelSpec, seed: int, workdir: Path, models: ModelPool) -> Context:
    workdir.mkdir()
    return Context(task=task, model=model, seed=seed, workdir=workdir, models=models)


def _check_declared(name: str, adapted, train: Split, dev: Split | None) -> AdaptReport:
    """Every member the contract declares, present and of its declared kind; the report returned."""
    method = METHODS[name]
    assert isinstance(adapted, Adapted), f"{name}: adapt() must return an object satisfying the Adapted protocol"
    assert adapted.truncated is None or (isinstance(adapted.truncated, int) and not isinstance(adapted.truncated, bool))
    report = adapted.adapt_report()
    assert isinstance(report, AdaptReport)
    assert isinstance(report.usage, Usage) and isinstance(report.helper_usage, Usage)
    assert report.examples_used is None or 0 <= report.examples_used <= len(train), report.examples_used
    assert isinstance(report.details, Mapping)
    assert json.loads(json.dumps(report.details)) == report.details, "details are stored as they are: JSON"
    assert isinstance(report.dev_predictions, Mapping)
    assert all(isinstance(p, Prediction) and p.id == i for i, p in report.dev_predictions.items())
    assert set(report.dev_predictions) <= set(dev.ids() if dev is not None else ())
    assert report.saved_as is None or isinstance(report.saved_as, SavedAs)
    if report.saved_as is not None:
        assert report.saved_as.method in METHODS and isinstance(report.saved_as.options, MethodOptions)
    if method.route == "prompt":  # the prompt as used, in one schema, and its demonstrations when it has any
        used = UsedPrompt.model_validate(report.details["prompt"])
        assert used.method == (report.saved_as.method if report.saved_as else name)
        assert ("demonstrations" in report.details) == bool(report.examples_used)
    return report


def _roundtrip(name: str, options, variant: str, adapted, model: ModelSpec, ctx: Context, spec, test, out):
    """Save ``adapted`` as a run does, load it back through the CLI's loader (a fresh context), and return both
    predictions."""
    before = adapted.predict(test)
    assert len(before) == len(test)
    assert all(isinstance(p, Prediction) for p in before)
    assert [p.id for p in before] == [ex.id for ex in test]

    out.mkdir()
    report = adapted.adapt_report()
    save_adapted(adapted, report, out, name, f"{name}/{variant}" if variant else name, options, ctx)
    saved_as = report.saved_as.method if report.saved_as else name
    assert all((out / f).exists() for f in METHODS[saved_as].files), f"{name}.save() wrote less than its files"

    loaded, meta = load_adapted(out)  # a fresh context: nothing shared with the adapting side
    assert meta["method"] == saved_as
    assert isinstance(loaded, Adapted)
    assert loaded.trainable_params == adapted.trainable_params
    if METHODS[name].route == "prompt":  # the prompt as used survives saving and loading
        assert loaded.adapt_report().details["prompt"] == report.details["prompt"]
    after = loaded.predict(test)

    assert [p.id for p in after] == [p.id for p in before]
    assert [p.label for p in after] == [p.label for p in before]
    assert [p.output for p in after] == [p.output for p in before]
    assert [p.prompt for p in after] == [p.prompt for p in before], "an exported prompt renders identically"
    for b, a in zip(before, after):
        assert (b.scores is None) == (a.scores is None)
        if b.scores is not None:
            assert set(a.scores) == set(b.scores)
            for label, score in b.scores.items():
                assert a.scores[label] == pytest.approx(score, abs=1e-5), (name, b.id, label)
    return before, after


def _check_trainable(name: str, method, adapted, options) -> int:
    params = adapted.trainable_params
    assert isinstance(params, int) and not isinstance(params, bool)
    if method.route == "prompt":
        assert params == 0, f"{name} is a prompt-route method but reports {params} trainable parameters"
    else:
        assert params > 0, f"{name} is a fine-tune-route method but reports no trainable parameters"
    training = adapted.adapt_report().details.get("training")
    if training is not None and getattr(options, "max_steps", None):
        assert training["steps"] == options.max_steps, f"{name} trained {training['steps']} steps"
    return params


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_adapt_predict_save_load_roundtrip(
    name: str, kind: str, task_data, shared_models, model_for, tmp_path: Path
) -> None:
    spec, data = task_data
    method = METHODS[name]
    options = method.Options.model_validate(fast_options(name, kind))
    task = TaskInfo(spec.name, spec.kind, tuple(data.labels), tuple(spec.fields.inputs), tuple(spec.metric_names))
    # Encoder methods run on the real pretrained encoder, where accuracy is checked too; generative ones on a
    # random tiny LM, where only the contract can be.
    model = model_for(kind, spec.model)
    ctx = _context(task, model, spec.seed, tmp_path / "work", shared_models)
    train = sample_per_class(data.train, options.train_per_class, ctx.seed)
    method.check(options, train, ctx)
    variant, options = next(iter(method.variants(options).items()))

    with adapting(name):
        adapted = method.adapt(options, train, data.dev, ctx)

    _check_declared(name, adapted, train, data.dev)
    _check_trainable(name, method, adapted, options)
    if method.shares_model:  # the shared backend offers every member its protocol declares
        assert isinstance(ctx.backend(), EncoderBackend if kind == "encoder" else GenerativeBackend)

    test = data.test.open().examples
    before, _ = _roundtrip(name, options, variant, adapted, model, ctx, spec, test, tmp_path / "adapted")
    assert all(p.label in LABELS for p in before), "every prediction should be a valid label"
    if kind == "encoder":
        accuracy = sum(p.label == ex.label for p, ex in zip(before, test)) / len(test)
        assert accuracy >= 0.5, f"{name} reached only {accuracy:.2f} test accuracy on an easy 3-class task"


# A generation task (text targets): the answer is tokenized apart from the prompt, ends with EOS, and comes out
# of `generate`. Random tiny models write nonsense, so what is checked is the contract: outputs survive save/load.
_WORDS = "apple river stone cloud tiger violin garden rocket pepper candle".split()
# Every fine-tune-route method that generates text, on every generative kind it supports (Qwen2 too).
GENERATION_CASES = [
    case
    for case in _cases("finetune")
    if "qa" in METHODS[case.values[0]].task_kinds and not case.values[1].startswith("encoder")
]


def _generation_split(name: str, start: int, n: int) -> Split:
    examples = []
    for i in range(start, start + n):
        a, b = _WORDS[i % len(_WORDS)], _WORDS[(i * 3 + 1) % len(_WORDS)]
        examples.append(Example(f"{name}{i}", {"question": f"Which word comes first: {a} {b}?"}, (a, a.upper())))
    return Split(name, tuple(examples))


@pytest.mark.parametrize(("name", "kind"), GENERATION_CASES)
def test_generation_task_roundtrip(name: str, kind: str, model_for, task_data, tmp_path: Path) -> None:
    spec, _ = task_data
    method = METHODS[name]
    assert "qa" in method.task_kinds
    settings = fast_options(name, kind) | {"prompt": {"input": "{{ question }}", "max_new_tokens": 6}}
    settings.pop("train_per_class", None)
    options = method.Options.model_validate(settings)
    task = TaskInfo("copy-word", "qa", None, ("question",), ("exact_match", "f1"))
    model = model_for(kind, spec.model)
    ctx = _context(task, model, 0, tmp_path / "work", ModelPool())
    train, dev, test = (
        _generation_split("train", 0, 12),
        _generation_split("dev", 100, 6),
        _generation_split("test", 200, 8),
    )
    method.check(options, train, ctx)
    with adapting(name):
        adapted = method.adapt(options, train, dev, ctx)
    _check_declared(name, adapted, train, dev)
    _check_trainable(name, method, adapted, options)
    details = adapted.adapt_report().details
    # the generation path: prompt and answer tokenized apart, as generate() meets them, every answer closed by EOS
    assert details["audits"]["answer_mask"]["all_end_with_eos"] is True
    assert details["audits"]["template"]["identical"] is True
    before, _ = _roundtrip(name, options, "", adapted, model, ctx, spec, test.examples, tmp_path / "adapted")
    # (a random model may well write nothing but padding or EOS: what it learns is tested in test_tuning_accuracy)
    assert all(p.label is None and isinstance(p.output, str) for p in before)


def _option_cells(output: str) -> dict[str, set[str]]:
    """Per method title, the first-column cells of its table in `tailor methods` output."""
    out: dict[str, set[str]] = {}
    current = None
    for line in output.splitlines():
        if "  (" in line and not line.startswith(("│", "┃", "┏", "┡", "└")):
            current = line.split("  (", 1)[0].strip()
            out[current] = set()
        elif current and line.startswith("│"):
            cell = line.split("│")[1].strip()
            if cell:
                out[current].add(cell)
    return out


def test_cli_methods_lists_every_method_and_option() -> None:
    result = CliRunner().invoke(app, ["methods"])
    assert result.exit_code == 0, result.output
    cells = _option_cells(result.output)
    assert list(cells) == list(METHODS), "`tailor methods` lists every registered method, in registry order"
    for name, method in METHODS.items():
        assert cells[name] == set(method.Options.model_fields), f"`tailor methods` options of {name}"
        assert f"{name}  ({method.route} route)" in result.output
    text = squash(result.output.replace("│", " "))
    for method in METHODS.values():  # each option's docstring is its help (check the opening words)
        for info in method.Options.model_fields.values():
            assert " ".join(info.description.split()[:3]) in text


def test_cli_methods_for_one_and_for_an_unknown_method() -> None:
    result = CliRunner().invoke(app, ["methods", "head"], terminal_width=400)
    assert result.exit_code == 0
    assert "head" in result.output and "few-shot" not in result.output

    result = CliRunner().invoke(app, ["methods", "no-such-method"], terminal_width=400)
    assert result.exit_code == 2
    text = squash(result.output)
    assert "unknown method 'no-such-method'" in text
    assert all(name in text for name in METHODS)
    assert "Traceback" not in result.output


def _ok_methods(run_dir: Path) -> list[tuple[str, str]]:
    store = RunStore.open_existing(run_dir)
    try:
        return [(r["trial"], r["adapted_dir"]) for r in store.results() if r["status"] == "ok"]
    finally:
        store.close()


def test_cli_predict_matches_the_run(finished_run: Path, tmp_path: Path) -> None:
    store = RunStore.open_existing(finished_run)
    methods = _ok_methods(finished_run)
    assert len(methods) == 4  # zero-shot/v1, zero-shot/v2, few-shot, head

    for method, adapted_dir in methods:
        stored = store.predictions(method, "test")
        assert stored
        inputs = tmp_path / f"{method.replace('/', '_')}.jsonl"
        inputs.write_text("".join(json.dumps({"id": p["example_id"], **p["input"]}) + "\n" for p in stored))
        result = CliRunner().invoke(app, ["predict", str(finished_run / adapted_dir), str(inputs), "--scores"])
        assert result.exit_code == 0, result.output
        got = {row["id"]: row for row in map(json.loads, result.stdout.splitlines())}
        assert set(got) == {p["example_id"] for p in stored}
        for p in stored:
            assert got[p["example_id"]]["label"] == p["label"], (method, p["example_id"])
            for label, score in p["scores"].items():
                assert got[p["example_id"]]["scores"][label] == pytest.approx(score, abs=1e-5)
    store.close()


def test_predict_rejects_a_folder_that_is_not_an_adapted_model(tmp_path: Path) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"text": "hello"}\n')
    result = CliRunner().invoke(app, ["predict", str(tmp_path), str(inputs)])
    assert result.exit_code == 2
    assert "adapted.json" in result.output and "Traceback" not in result.output
