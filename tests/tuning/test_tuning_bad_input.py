"""Bad input to the fine-tune route gets a clear error naming the key and what was expected: answers empty after
tokenization, examples over max_length (shortened, skipped or refused — the answer never cut), options out of
sane bounds, target modules the model doesn't have, prompt settings fine-tuning can't train.

On tiny random-weight models from :mod:`tailor.testing`; every check but the few `adapt` calls stops before
training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import LABELS, MakeTask, dataset_rows, squash
from pydantic import ValidationError
from typer.testing import CliRunner

from tailor.backends.local.lm import LanguageModel
from tailor.cli.main import app
from tailor.config.task import ModelSpec, load_task
from tailor.contract import Context, TaskInfo
from tailor.errors import MethodError, TaskFileError
from tailor.methods import METHODS
from tailor.methods.prompt_tuning import PromptTuningOptions
from tailor.prompting import PromptOptions
from tailor.runner.run import run_task
from tailor.testing import tiny_lm_path
from tailor.tuning.recipe import build_predictor
from tailor.tuning.sft import encode_examples
from tailor.types import Example, Split, adapting

CLASSIFY = TaskInfo("mini", "classification", tuple(LABELS), ("text",), ("accuracy",))
QA = TaskInfo("qa", "qa", None, ("text",), ("exact_match",))
LLAMA_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
LONG_TEXT = " ".join(["The striker scored twice in the second half of the match."] * 10)


def examples(n: int = 9) -> list[Example]:
    return [Example(r["id"], {"text": r["text"]}, r["label"]) for r in dataset_rows()[:n]]


def questions(n: int = 4) -> list[Example]:
    return [
        Example(f"q{i}", {"text": f"Who scored in match {i}?"}, name)
        for i, name in enumerate(["Anna", "Ben", "Carla", "David"][:n])
    ]


@pytest.fixture(scope="module")
def llama_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_lm_path(tmp_path_factory.getbasetemp() / "tiny-lms", arch="llama")


@pytest.fixture(scope="module")
def lm(llama_path: Path) -> LanguageModel:
    return LanguageModel.from_spec(ModelSpec(name=str(llama_path)))


@pytest.fixture
def ctx(llama_path: Path, tmp_path: Path) -> Context:
    return Context(task=CLASSIFY, model=ModelSpec(name=str(llama_path)), seed=0, workdir=tmp_path / "work")


@pytest.fixture(scope="module")
def train() -> Split:
    return Split("train", tuple(examples(12)))


# ---------------------------------------------------------------------------------------------- empty answers


@pytest.mark.parametrize("chat", ["chat", "completion"])
@pytest.mark.parametrize(
    "target", ["", "   ", "\n", ("  ", "x")], ids=["empty", "spaces", "newline", "first-ref-blank"]
)
def test_an_answer_empty_after_tokenization_is_refused(lm: LanguageModel, chat: str, target: Any) -> None:
    pred = build_predictor(lm, PromptOptions(chat=chat), QA)
    good = questions()
    assert len(encode_examples(pred, good, max_length=128).rows) == len(good)  # the good ones alone are fine

    blank = [Example("blank-1", {"text": "Who?"}, target), Example("blank-2", {"text": "And who?"}, target)]
    with pytest.raises(MethodError) as info:
        encode_examples(pred, [good[0], blank[0], *good[1:], blank[1]], max_length=128)
    assert info.value.key == "fields.target"
    msg = str(info.value)
    assert "2 training answers are empty after tokenization: blank-1, blank-2" in msg
    assert "q0" not in msg


def test_a_verbalizer_with_nothing_to_train_is_refused(lm: LanguageModel) -> None:
    pred = build_predictor(lm, PromptOptions(verbalizers={"sports": "  "}), CLASSIFY)
    exs = examples(6)
    with pytest.raises(MethodError) as info:
        encode_examples(pred, exs, max_length=128)
    assert info.value.key == "verbalizers"
    sports = [ex.id for ex in exs if ex.label == "sports"]
    assert f"{len(sports)} training answers are empty after tokenization: {', '.join(sports)}" in str(info.value)


# ---------------------------------------------------------------------------------------------- too long


def _with_long(n_long: int = 1) -> list[Example]:
    longs = [Example(f"long-{i}", {"text": LONG_TEXT + f" Game {i}."}, "sports") for i in range(n_long)]
    exs = examples(6)
    return [*exs[:3], *longs, *exs[3:]]


def test_too_long_truncate_shortens_the_prompt_only(lm: LanguageModel) -> None:
    pred = build_predictor(lm, PromptOptions(truncate=True), CLASSIFY)
    exs = _with_long(2)
    whole = {r.id: r for r in encode_examples(pred, exs, max_length=100_000).rows}
    assert all(whole[f"long-{i}"].length > 64 for i in range(2))

    encoded = encode_examples(pred, exs, max_length=64, too_long="truncate")
    rows = {r.id: r for r in encoded.rows}
    assert encoded.shortened == ["long-0", "long-1"] and encoded.skipped == []
    assert [r.id for r in encoded.rows] == [ex.id for ex in exs], "every example kept, in order"
    for i in range(2):
        long_row = rows[f"long-{i}"]
        assert long_row.length <= 64
        assert long_row.answer_ids == whole[f"long-{i}"].answer_ids
        assert long_row.prompt_ids[:8] == whole[f"long-{i}"].prompt_ids[:8], "the prompt's start (template) stays"
    assert all(rows[ex.id] == whole[ex.id] for ex in exs if not ex.id.startswith("long"))
    summary = encoded.summary()
    assert summary["shortened"] == 2 and summary["shortened_ids"] == ["long-0", "long-1"]
    assert summary["skipped_too_long"] == 0 and summary["examples"] == len(exs)


def test_too_long_skip_leaves_examples_out_and_counts_them(lm: LanguageModel) -> None:
    pred = build_predictor(lm, PromptOptions(), CLASSIFY)
    exs = _with_long(2)
    encoded = encode_examples(pred, exs, max_length=64, too_long="skip")
    assert encoded.skipped == ["long-0", "long-1"] and encoded.shortened == []
    assert [r.id for r in encoded.rows] == [ex.id for ex in exs if not ex.id.startswith("long")]
    assert encoded.summary() == {
        "examples": 6,
        "shortened": 0,
        "shortened_ids": [],
        "skipped_too_long": 2,
        "skipped_ids": ["long-0", "long-1"],
    }


def test_too_long_error_lists_the_examples(lm: LanguageModel) -> None:
    pred = build_predictor(lm, PromptOptions(), CLASSIFY)
    with pytest.raises(MethodError) as info:
        encode_examples(pred, _with_long(2), max_length=64, too_long="error")
    assert info.value.key == "max_length"
    msg = str(info.value)
    assert "2 examples are longer than max_length=64 tokens: long-0, long-1" in msg
    assert "too_long: truncate" in msg and "skip" in msg
    assert encode_examples(pred, examples(6), max_length=64, too_long="error").rows, "short examples pass"


@pytest.mark.parametrize("too_long", ["truncate", "skip", "error"])
def test_an_answer_alone_longer_than_max_length_is_never_cut(lm: LanguageModel, too_long: str) -> None:
    pred = build_predictor(lm, PromptOptions(truncate=too_long == "truncate"), QA)
    story = Example("story", {"text": "Tell the story."}, LONG_TEXT)
    assert lm.count_tokens(LONG_TEXT) > 64
    with pytest.raises(MethodError) as info:
        encode_examples(pred, [*questions(), story], max_length=64, too_long=too_long)
    assert info.value.key == "max_length"
    msg = str(info.value)
    assert "1 answers alone are 64 tokens or longer" in msg and "story" in msg and "raise max_length" in msg


def _adapt_lora(ctx: Context, train: Split, **options: Any):
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    method = METHODS["lora"]
    opts = method.Options(rank=4, max_steps=1, batch_size=8, max_length=64, **options)
    method.check(opts, train, ctx)
    with adapting("lora"):
        return method.adapt(opts, train, None, ctx)


def _train_with_long() -> Split:
    return Split("train", tuple(_with_long(1)))


def test_adapt_reports_shortened_examples(ctx: Context) -> None:
    adapted = _adapt_lora(ctx, _train_with_long(), too_long="truncate")
    data = adapted.details["data"]
    assert data["examples"] == 7
    assert data["shortened"] == 1 and data["shortened_ids"] == ["long-0"]
    assert data["skipped_too_long"] == 0
    # the shortened example is trained on, but left out of the template audit (its input no longer matches)
    assert adapted.details["audits"]["answer_mask"]["examples"] == 7
    assert adapted.details["audits"]["template"]["checked"] == 6


def test_adapt_reports_skipped_examples(ctx: Context) -> None:
    adapted = _adapt_lora(ctx, _train_with_long(), too_long="skip")
    data = adapted.details["data"]
    assert data["examples"] == 6
    assert data["skipped_too_long"] == 1 and data["skipped_ids"] == ["long-0"]
    assert data["shortened"] == 0
    assert adapted.details["audits"]["answer_mask"]["examples"] == 6


def test_adapt_refuses_too_long_examples_with_too_long_error(ctx: Context) -> None:
    with pytest.raises(MethodError) as info:
        _adapt_lora(ctx, _train_with_long(), too_long="error")
    assert info.value.key == "max_length" and "long-0" in str(info.value)
    assert not (ctx.workdir / "checkpoint").exists()


def test_adapt_refuses_when_every_example_is_skipped(ctx: Context) -> None:
    train = Split("train", tuple(ex for ex in _with_long(2) if ex.id.startswith("long")))
    with pytest.raises(MethodError) as info:
        _adapt_lora(ctx, train, too_long="skip")
    assert info.value.key == "max_length"
    assert "every training example was longer than max_length=64" in str(info.value)


# ---------------------------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    "name, rate",
    [("lora", 0.5), ("lora", 1e-9), ("full", 0.1), ("full", 1e-10), ("prompt-tuning", 5.0), ("prompt-tuning", 1e-7)],
)
def test_learning_rate_out_of_sane_bounds(name: str, rate: float, ctx: Context, train: Split) -> None:
    method = METHODS[name]
    method.check(method.Options(), train, ctx)  # the defaults are sane
    with pytest.raises(MethodError) as info:
        method.check(method.Options(learning_rate=rate), train, ctx)
    assert info.value.key == "learning_rate"
    low, high = method.lr_range
    assert f"learning_rate {rate:g} is outside the sane range for {name} ({low:g} to {high:g})" == str(info.value)


def test_rank_larger_than_the_model_width(ctx: Context, train: Split) -> None:
    lora = METHODS["lora"]
    lora.check(lora.Options(rank=64), train, ctx)  # the tiny model is 64 wide
    with pytest.raises(MethodError) as info:
        lora.check(lora.Options(rank=65), train, ctx)
    assert info.value.key == "rank"
    assert "rank 65 is larger than the model's width (64)" in str(info.value)


@pytest.mark.parametrize(
    "options, loc",
    [
        ({"rank": 0}, "rank"),
        ({"rank": 4096}, "rank"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"max_length": 4}, "max_length"),
        ({"too_long": "cut"}, "too_long"),
    ],
)
def test_option_bounds_are_validated(options: dict[str, Any], loc: str) -> None:
    with pytest.raises(ValidationError) as info:
        METHODS["lora"].Options.model_validate(options)
    assert [e["loc"] for e in info.value.errors()] == [(loc,)]


@pytest.mark.parametrize("name", ["lora", "ia3"])
def test_target_modules_that_do_not_exist_list_the_ones_that_do(name: str, ctx: Context, train: Split) -> None:
    method = METHODS[name]
    extra = {"feedforward_modules": ["down_proj"]} if name == "ia3" else {}
    method.check(method.Options(target_modules=["q_proj", "down_proj"], **extra), train, ctx)
    with pytest.raises(MethodError) as info:
        method.check(method.Options(target_modules=["q_proj", "nonexistent"], **extra), train, ctx)
    assert info.value.key == "target_modules"
    msg = str(info.value)
    assert "no linear module called nonexistent" in msg
    assert f"its linear modules are: {', '.join(sorted(LLAMA_LINEAR))}" in msg
    assert "lm_head" not in msg, "the output layer is not an adapter target"


def test_demonstrations_and_prompt_variants_are_refused(ctx: Context, train: Split) -> None:
    lora = METHODS["lora"]
    with pytest.raises(MethodError) as info:
        lora.check(lora.Options(prompt={"k": 2}), train, ctx)
    assert info.value.key == "prompt.k" and "set prompt.k to 0" in str(info.value)
    with pytest.raises(MethodError) as info:
        lora.check(lora.Options(prompt={"variants": {"short": {"instruction": "Topic?"}}}), train, ctx)
    assert info.value.key == "prompt.variants"


@pytest.mark.parametrize("name", ["prompt-tuning", "prefix-tuning"])
def test_export_merged_is_refused_for_soft_prompts(name: str, ctx: Context, train: Split) -> None:
    with pytest.raises(ValidationError) as info:
        METHODS[name].Options(export_merged=True)
    assert [(e["loc"], e["type"]) for e in info.value.errors()] == [(("export_merged",), "extra_forbidden")]

    # and the method's own check refuses it, should its options ever carry the flag
    class WithExport(PromptTuningOptions):
        export_merged: bool = True

    with pytest.raises(MethodError) as info:
        METHODS["prompt-tuning"].check(WithExport(), train, ctx)
    assert info.value.key == "export_merged" and "can't be merged" in str(info.value)


def test_soft_prompt_export_merged_in_a_task_file(make_task: MakeTask, llama_path: Path) -> None:
    task = make_task(model={"name": str(llama_path)}, methods=[{"name": "prompt-tuning", "export_merged": True}])
    spec, base = load_task(task)
    with pytest.raises(TaskFileError) as info:
        run_task(spec, base, task.parent / "run", task_file=str(task))
    assert info.value.key == "methods[0].export_merged"
    assert "unknown option" in str(info.value) and "virtual_tokens" in str(info.value)
    assert not (task.parent / "run").exists()


# ---------------------------------------------------------------------------------------------- the task file


def test_cli_unknown_target_module_fails_before_training(
    make_task: MakeTask, llama_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_loading(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a model was loaded before the options were checked")

    monkeypatch.setattr(LanguageModel, "from_spec", no_loading)
    task = make_task(model={"name": str(llama_path)}, methods=[{"name": "lora", "target_modules": ["nope"]}])
    assert "- name: lora\n  target_modules:\n  - nope\n" in task.read_text()
    out = task.parent / "run"
    result = CliRunner().invoke(app, ["run", str(task), "--quiet", "--out", str(out)], terminal_width=400)

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    text = squash(result.output)
    assert f"{task.resolve()}: methods[0].target_modules: no linear module called nope" in text
    assert f"its linear modules are: {', '.join(sorted(LLAMA_LINEAR))}" in text
    assert not out.exists(), "nothing was run"


def test_cli_prompt_errors_name_the_key_under_prompt(make_task: MakeTask, llama_path: Path) -> None:
    methods = [
        {"name": "lora", "prompt": {"verbalizers": {"sports": "  "}}},
        {"name": "prompt", "input": "{{ title }}"},
    ]
    task = make_task(model={"name": str(llama_path)}, methods=methods[:1])
    result = CliRunner().invoke(app, ["run", str(task), "--quiet"], terminal_width=400)
    assert result.exit_code == 2, result.output
    assert "methods[0].prompt.verbalizers.sports: label 'sports' has an empty verbalizer" in squash(result.output)

    # the prompt method's own options are top-level keys: no `prompt.` in front
    task = make_task(model={"name": str(llama_path)}, methods=methods[1:], folder="other")
    result = CliRunner().invoke(app, ["run", str(task), "--quiet"], terminal_width=400)
    assert result.exit_code == 2, result.output
    assert "methods[0].input: input: template uses 'title'" in squash(result.output)
