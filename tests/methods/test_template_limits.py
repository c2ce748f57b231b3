"""Templates come from task files anyone may write: rendering is bounded in loops, calls, sizes and time, and each
limit is a clear error naming the template — never a hang, a memory blow-up or a 60 MB store."""

from __future__ import annotations

import time

import pytest
from hostile_templates import HOSTILE

from tailor.config.task import load_task
from tailor.errors import MethodError, TaskFileError
from tailor.prompting.jinja import MAX_OUTPUT, compile_template
from tailor.runner.run import run_task


@pytest.mark.parametrize("source", list(HOSTILE.values()), ids=list(HOSTILE))
@pytest.mark.slow
def test_a_hostile_template_is_refused_quickly_naming_it(source: str) -> None:
    template = compile_template(source, "methods[0].templates[0]", ["text"])
    t0 = time.perf_counter()
    with pytest.raises(MethodError) as info:
        template.render({"text": "hello"})
    assert time.perf_counter() - t0 < 5, "refused, not after the whole work was done"
    assert info.value.key == "methods[0].templates[0]"
    assert "refused" in str(info.value)


def test_ordinary_templates_and_long_inputs_still_render() -> None:
    ok = compile_template(
        "{{ text|upper }} {{ text|truncate(9) }} {% for i in range(3) %}{{ i }}{% endfor %} {{ '%s!'|format(text) }}",
        "t",
        ["text"],
    )
    assert ok.render({"text": "hi there"}) == "HI THERE hi there 012 hi there!"
    document = "word " * 200_000  # a 1 MB input: cut to the model's context later, not refused here
    twice = compile_template("{{ text }}\n---\n{{ text|upper }}", "t", ["text"]).render({"text": document})
    assert len(twice) > 2 * len(document) > MAX_OUTPUT


def test_a_hostile_template_in_a_task_file_fails_its_check_before_any_model_loads(make_task) -> None:
    from tailor.backends.pool import ModelPool

    task = make_task(methods=[{"name": "zero-shot", "templates": ["{{ text }}", HOSTILE["nested loops"]]}])
    spec, base = load_task(task)
    pool = ModelPool()
    t0 = time.perf_counter()
    with pytest.raises(TaskFileError) as info:
        run_task(spec, base, task.parent / "run", models=pool)
    assert time.perf_counter() - t0 < 10
    assert info.value.key == "methods[0].templates[1]" and "loop items" in info.value.message
    assert not pool.loaded() and not (task.parent / "run").exists()


# A template of the `prompt` method (or of a fine-tuning method's `prompt:`) is tried on a training example when its
# method checks its options, as zero-shot's are: before any model loads, named by its place in the task file.
PROMPT_TEMPLATES = {
    "instruction beyond the sandbox": ({"instruction": HOSTILE["nested loops"]}, "instruction", "loop items"),
    "input that fails to render": ({"input": "{{ text }} {{ [1][5] }}"}, "input", "failed to render"),
    "a variant's output format": (
        {"variants": {"short": {"output_format": HOSTILE["string repetition"]}}},
        "variants.short.output_format",
        "refused by the sandbox",
    ),
}


@pytest.mark.parametrize("case", list(PROMPT_TEMPLATES))
def test_a_prompt_template_fails_its_check_before_any_model_loads(case: str, make_task, tmp_path) -> None:
    from tailor.backends.pool import ModelPool

    given, key, says = PROMPT_TEMPLATES[case]
    script = tmp_path / "script.json"
    script.write_text('{"scores": {"sports": -1.0}}')
    model = {"name": str(script), "kind": "scripted"}
    task = make_task(methods=[{"name": "prompt", "model": model, **given}])
    spec, base = load_task(task)
    pool = ModelPool()
    with pytest.raises(TaskFileError) as info:
        run_task(spec, base, task.parent / "run", models=pool)
    assert info.value.key == f"methods[0].{key}" and says in info.value.message, info.value
    assert not pool.loaded() and not (task.parent / "run").exists()


def test_a_fine_tuning_prompt_template_fails_its_check_before_any_model_loads(make_task, tmp_path) -> None:
    from tailor.backends.pool import ModelPool
    from tailor.testing import tiny_lm_path

    tiny = str(tiny_lm_path(tmp_path / "tiny", arch="llama"))
    method = {"name": "lora", "model": {"name": tiny}, "prompt": {"instruction": HOSTILE["huge printf width"]}}
    task = make_task(methods=[method])
    spec, base = load_task(task)
    pool = ModelPool()
    with pytest.raises(TaskFileError) as info:
        run_task(spec, base, task.parent / "run", models=pool)
    assert info.value.key == "methods[0].prompt.instruction" and "refused" in info.value.message, info.value
    assert not pool.loaded() and not (task.parent / "run").exists()
