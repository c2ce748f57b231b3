"""The prompt route against the scripted fake language model (`tailor.testing.scripted`): no weights at all.

The fake answers and scores from tables keyed by each example's input text, so what the route does with the
answers can be checked exactly: the method contract (adapt → predict → save → load → the same predictions) in
zero-/few-shot, scoring and generating, classification and QA; options the backend cannot serve, refused before
anything is sent; usage on every prediction; and a whole `tailor run` of a task file naming a scripted model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import LABELS, dataset_rows, squash, write_jsonl

from tailor.backends import backend_kind
from tailor.backends.pool import ModelPool
from tailor.backends.protocol import Capabilities, GenerationSettings, GenerativeBackend
from tailor.config.task import ModelSpec
from tailor.contract import Context, TaskInfo
from tailor.costs.usage import Usage
from tailor.errors import MethodError, TailorError
from tailor.methods.prompt import Prompt
from tailor.prompting import PromptOptions, label_words
from tailor.testing import ScriptedLM
from tailor.testing.scripted import DEFAULT_CAPABILITIES
from tailor.types import Example, Split, adapting

SPEC = ModelSpec(name="fake", kind="scripted")
CLASSIFY = TaskInfo("mini", "classification", tuple(LABELS), ("text",), ("accuracy",))
QA = TaskInfo("qa", "qa", None, ("text",), ("exact_match",))
ROWS = dataset_rows()
TRAIN = Split("train", tuple(Example(r["id"], {"text": r["text"]}, r["label"]) for r in ROWS[:60]))
TEST = tuple(Example(r["id"], {"text": r["text"]}, r["label"]) for r in ROWS[60:])
QA_TRAIN = Split("train", tuple(Example(ex.id, ex.inputs, (ex.text.split()[1],)) for ex in TRAIN))
QA_TEST = tuple(Example(ex.id, ex.inputs, (ex.text.split()[1],)) for ex in TEST)


def script(**over: Any) -> ScriptedLM:
    """A fake that knows every example's answer: the label (or second word), a higher score for the true label."""
    answers = {ex.text: ex.label for ex in (*TRAIN, *TEST)}
    scores = {ex.text: {lb: (-1.0 if lb == ex.label else -4.0) for lb in LABELS} for ex in (*TRAIN, *TEST)}
    return ScriptedLM(**{"answers": answers, "default_answer": "?", "scores": scores, "parameters": 1000, **over})


def context(fake: ScriptedLM, task: TaskInfo, tmp_path: Path) -> Context:
    pool = ModelPool()
    pool.put(SPEC, fake)
    return Context(task=task, model=SPEC, models=pool, workdir=tmp_path)


CASES = {
    "zero-shot-score": (CLASSIFY, {}),
    "zero-shot-score-calibrated": (CLASSIFY, {"scoring": "calibrated", "instruction": "Topic?"}),
    # Its content-free probes contain the demonstrations, which the script scores: a real bias, so some ties.
    "few-shot-score-calibrated": (CLASSIFY, {"k": 3, "scoring": "calibrated"}),
    "few-shot-score-mean-completion": (CLASSIFY, {"k": 2, "scoring": "mean", "chat": "completion"}),
    "zero-shot-generate": (CLASSIFY, {"mode": "generate", "output_format": "One word."}),
    "few-shot-generate": (CLASSIFY, {"mode": "generate", "k": 3, "select": "random", "demo_order": "random"}),
    "qa-zero-shot": (QA, {"max_new_tokens": 4}),
    "qa-few-shot-completion": (QA, {"k": 2, "select": "random", "chat": "completion"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_prompt_contract_on_the_scripted_model(case: str, tmp_path: Path) -> None:
    task, given = CASES[case]
    train, test = (TRAIN, TEST) if task.kind == "classification" else (QA_TRAIN, QA_TEST)
    if task.kind == "qa":  # the fake answers with each input's second word
        fake = script(answers={ex.text: ex.target[0] for ex in (*train, *test)})
    else:
        fake = script()
    method, options = Prompt(), PromptOptions(**given)
    ctx = context(fake, task, tmp_path)
    method.check(options, train, ctx)
    assert fake.requests == [], "check() sends nothing"
    with adapting("prompt"):
        adapted = method.adapt(options, train, None, ctx)
    while_adapting = list(fake.requests)
    report = adapted.adapt_report()
    assert adapted.trainable_params == 0 and report.examples_used == options.k
    before = adapted.predict(test)

    truth = [ex.label if task.kind == "classification" else ex.target[0] for ex in test]
    assert [p.id for p in before] == [ex.id for ex in test]
    answered = [p.label if task.kind == "classification" else p.output for p in before]
    assert answered == truth or case == "few-shot-score-calibrated"
    for p, ex in zip(before, test):
        assert p.prompt and p.prompt.count(ex.text) == 1, "the example's input, never as its own demonstration"
        assert p.usage is not None and p.usage.calls == 1 and p.usage.input_tokens >= len(ex.text.split())
        assert p.usage.flops == 2 * 1000 * (p.usage.input_tokens + p.usage.output_tokens)
    scoring = "mode" not in given and task.kind == "classification"
    assert [r.kind for r in fake.requests[len(while_adapting) :]] == ["score" if scoring else "generate"]
    assert fake.requests[-1].prompts == tuple(p.prompt for p in before), "exactly the stored prompts were sent"
    if options.scoring == "calibrated":
        assert [len(r.prompts) for r in while_adapting] == [3], "three content-free probes, while adapting"
        assert report.usage.calls == 3
    else:
        assert while_adapting == [] and report.usage.calls == 0

    out = tmp_path / "adapted"
    out.mkdir()
    adapted.save(out)
    again = script(answers=fake.answers)  # a fresh fake from the same script: nothing shared but the folder
    loaded = method.load(options, out, context(again, task, tmp_path))
    after = loaded.predict(test)
    assert after == before


def test_check_passes_and_predicting_needs_no_tokenizer_on_a_generate_only_model(tmp_path: Path) -> None:
    bare = Capabilities()  # generates completion strings, nothing else
    fake = script(capabilities=bare)
    ctx = context(fake, CLASSIFY, tmp_path)
    options = PromptOptions(mode="generate", k=2)
    Prompt().check(options, TRAIN, ctx)
    preds = Prompt().adapt(options, TRAIN, None, ctx).predict(TEST[:5])
    assert [p.label for p in preds] == [ex.label for ex in TEST[:5]]
    assert all("assistant:" not in p.prompt for p in preds), "a model without chat gets completion strings"


@pytest.mark.parametrize(
    ("given", "lacking", "capability", "key"),
    [
        ({"mode": "score"}, {"score_continuations": False}, "score_continuations", "mode"),
        ({"mode": "first-token"}, {"top_logprobs": 0}, "top_logprobs", "mode"),
        ({"mode": "choice"}, {"constrained_choice": False}, "constrained_choice", "mode"),
        ({"scoring": "calibrated"}, {"score_continuations": False}, "score_continuations", "scoring"),
        ({"truncate": True}, {"local_tokenizer": False}, "local_tokenizer", "truncate"),
        ({"chat": "chat"}, {"chat": False}, "chat", "chat"),
        ({"variants": {"a": {}, "b": {"chat": "chat"}}}, {"chat": False}, "chat", "variants.b.chat"),
    ],
)
def test_options_the_backend_cannot_serve_are_refused_before_any_request(
    given: dict, lacking: dict, capability: str, key: str, tmp_path: Path
) -> None:
    fake = script(capabilities=Capabilities(**{**DEFAULT_CAPABILITIES.to_dict(), **lacking}))
    with pytest.raises(MethodError) as err:
        Prompt().check(PromptOptions(**given), TRAIN, context(fake, CLASSIFY, tmp_path))
    assert err.value.key == key
    assert f"missing capability: {capability}" in squash(str(err.value)) and "fake" in str(err.value)
    assert fake.requests == [], "refused before anything was sent"


def test_over_long_prompts_are_fitted_by_the_fakes_token_counts(tmp_path: Path) -> None:
    fake = script(capabilities=Capabilities(score_continuations=True, local_tokenizer=True, context_length=20))
    long = Example("long", {"text": " ".join(["word"] * 40) + " " + TEST[0].text}, TEST[0].label)
    adapted = Prompt().adapt(PromptOptions(chat="completion"), TRAIN, None, context(fake, CLASSIFY, tmp_path))
    with pytest.raises(MethodError, match="1 prompts are longer than the model's context"):
        adapted.predict([long, *TEST[1:3]])
    assert fake.requests == []
    adapted = Prompt().adapt(PromptOptions(truncate=True), TRAIN, None, context(fake, CLASSIFY, tmp_path))
    (pred,) = adapted.predict([long])
    assert len(pred.prompt.split()) <= 20 - 1, "shortened to leave room for the longest label"
    assert pred.usage.input_tokens == len(pred.prompt.split()) + len(LABELS)


def test_scripted_lm_lookups_usage_and_requests() -> None:
    fake = ScriptedLM(
        answers={"cat": "meow", "dog": "woof woof\nmore"},
        default_answer="?",
        scores={"the cat": {"yes": -1.0}, "the dog": {" yes": -2.0}},
        parameters=10,
    )
    assert isinstance(fake, GenerativeBackend)
    settings = GenerationSettings(max_new_tokens=5, stop=("\n",))
    got = fake.generate(["the dog then the cat", "a dog", "nothing"], settings)
    assert [g.text for g in got] == ["meow", "woof woof", "?"], "the key found last; cut at the stop string"
    assert got[1].usage == Usage(1, 2, 2, 2 * 10 * 4)
    assert fake.generate(["dog"], GenerationSettings(max_new_tokens=1))[0].text == "woof"
    scored = fake.score(["the cat sat", "the dog"], [" yes", "no"])
    assert scored.logprobs.tolist() == [[-1.0, -10.0], [-2.0, -10.0]]
    assert scored.token_counts.tolist() == [[1, 1], [1, 1]] and scored.usage[0].input_tokens == 3 + 2
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "the cat?"}]
    assert fake.render(messages) == "system: Be brief.\n\nuser: the cat?\n\nassistant:"
    assert [r.kind for r in fake.requests] == ["generate", "generate", "score"]
    assert fake.requests[2].prompts == ("the cat sat", "the dog") and fake.requests[2].continuations == (" yes", "no")
    by_function = ScriptedLM(answers=str.upper, scores=lambda prompt, c: -float(len(prompt + c)))
    assert by_function.generate(["hi there"], GenerationSettings())[0].text == "HI THERE"
    assert by_function.score(["ab"], ["c"]).logprobs.tolist() == [[-3.0]]
    mute = ScriptedLM(capabilities=Capabilities())
    for call in (lambda: mute.score(["x"], ["y"]), lambda: mute.count_tokens("x"), lambda: mute.render(messages)):
        with pytest.raises(TailorError, match="lacks"):
            call()


def test_scripted_kind_reads_a_json_script(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(
        json.dumps({"answers": {"x": "y"}, "scores": {"a": -0.5}, "capabilities": {"chat": False}, "parameters": 7})
    )
    kind = backend_kind("scripted")
    spec = ModelSpec(name=str(path), kind="scripted")
    assert kind.role == "generative"
    assert kind.capabilities(spec) == Capabilities(
        score_continuations=True, local_tokenizer=True, context_length=100_000
    )
    fake = kind.load(spec)
    assert isinstance(fake, ScriptedLM) and fake.parameters == 7 and not fake.capabilities.chat
    assert fake.generate(["x"], GenerationSettings())[0].text == "y"
    path.write_text(json.dumps({"capabilities": {"telepathy": True}}))
    with pytest.raises(TailorError, match="telepathy"):
        kind.capabilities(spec)


def test_one_function_gives_verbalizers_and_label_descriptions() -> None:
    given = {"sports": ["ball", "game"], "cooking": "food"}
    assert label_words(["sports", "cooking", "hot_weather"], given) == {
        "sports": ["ball", "game"],
        "cooking": ["food"],
        "hot_weather": ["hot_weather"],
    }
    spelled = label_words(["hot_weather"], None, lambda label: label.replace("_", " "))
    assert spelled == {"hot_weather": ["hot weather"]}


def test_a_task_file_runs_end_to_end_on_a_scripted_model(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tailor.cli.main import app
    from tailor.runner.store import RunStore

    write_jsonl(tmp_path / "data.jsonl", ROWS)
    answers = {r["text"]: r["label"] for r in ROWS}
    scores = {r["text"]: {lb: (-1.0 if lb == r["label"] else -3.0) for lb in LABELS} for r in ROWS}
    (tmp_path / "script.json").write_text(json.dumps({"answers": answers, "scores": scores, "parameters": 100}))
    doc = {
        "name": "scripted",
        "data": {"path": "data.jsonl"},
        "fields": {"input": "text", "target": "label", "id": "id"},
        "splits": {"train": 0.6, "dev": 0.15, "test": 0.25},
        "seed": 0,
        "stats": {"bootstrap": 200},
        "model": {"kind": "scripted", "name": "script.json"},
        "methods": [
            {"name": "prompt", "label": "score", "k": 2},
            {"name": "prompt", "label": "gen", "mode": "generate"},
        ],
    }
    (tmp_path / "task.yaml").write_text(json.dumps(doc))
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(tmp_path / "task.yaml"), "--quiet", "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    store = RunStore.open_existing(run_dir)
    results = {r["trial"]: r for r in store.results()}
    assert set(results) == {"score", "gen"}
    for name, result in results.items():
        assert result["status"] == "ok", result["error"]
        assert result["test"]["accuracy"]["value"] == 1.0, name
        assert all(p["prompt"] for p in store.predictions(name, "test"))
    store.close()
