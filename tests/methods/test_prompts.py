"""Prompt templates: checked against the data's fields, rendered in a sandbox that refuses escapes."""

from __future__ import annotations

import pytest
from conftest import MakeTask

from tailor.config.task import load_task
from tailor.errors import MethodError, TailorError, TaskFileError
from tailor.prompting import compile_template
from tailor.runner.run import run_task
from tailor.types import Example


def test_renders_fields_by_name_and_text() -> None:
    ex = Example("q1", {"question": "Who won?", "context": "The home team won 2-1."}, "home")
    t = compile_template("Q: {{ question }} C: {{ context }}", "templates[0]", ["question", "context"])
    assert t.render_example(ex) == "Q: Who won? C: The home team won 2-1."
    whole = compile_template("{{ text }}", "templates[1]", ["question", "context"])
    assert whole.render_example(ex) == "question: Who won?\ncontext: The home team won 2-1."
    assert compile_template("{{ text|upper }}!", "t", ["text"]).render({"text": "hi"}) == "HI!"


def test_missing_field_names_template_field_and_available_fields() -> None:
    with pytest.raises(MethodError) as info:
        compile_template("{{ title }}: {{ body }} {{ text }}", "templates[2]", ["body", "summary"])
    msg = str(info.value)
    assert info.value.key == "templates[2]"
    assert msg.startswith("templates[2]: ")
    assert "'title'" in msg and "'body'" not in msg.split("available")[0]
    assert "available: body, summary, text" in msg


def test_extra_variables_are_allowed_when_the_caller_provides_them() -> None:
    t = compile_template("{{ text }} => {{ label }}", "demo", ["text"], extra=["label"])
    assert t.render({"text": "rain", "label": "weather"}) == "rain => weather"
    with pytest.raises(MethodError, match="'label'"):
        compile_template("{{ text }} => {{ label }}", "demo", ["text"])


def test_syntax_error_names_template_and_line() -> None:
    with pytest.raises(MethodError) as info:
        compile_template("line one\n{{ text ", "templates[0]", ["text"])
    assert "templates[0]: template syntax error at line 2" in str(info.value)


ESCAPES = [
    "{{ ''.__class__ }}",
    "{{ text.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].system('touch /tmp/tailor-pwned') }}",
    "{{ self.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ text|attr('__class__') }}",
    "{{ '{0.__class__.__mro__}'.format(text) }}",
    "{{ range.__init__ }}",
    "{% set x = [] %}{{ x.append(1) }}",
    "{{ config.items() }}",
    "{{ request.application }}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_sandbox_escape_fails_with_a_clear_tailor_error(source: str, tmp_path) -> None:
    marker = tmp_path / "pwned"
    source = source.replace("/tmp/tailor-pwned", str(marker))
    with pytest.raises(TailorError) as info:
        t = compile_template(source, "templates[1]", ["text"])  # config/request are unknown variables: refused here
        t.render({"text": "hello"})
    msg = str(info.value)
    assert isinstance(info.value, MethodError)
    assert msg.startswith("templates[1]: ")
    assert any(s in msg for s in ("sandbox", "unsafe", "lacks", "failed to render")), msg
    assert not marker.exists(), "the template ran code"


def test_unsafe_template_is_refused_before_the_run_starts(make_task: MakeTask) -> None:
    task = make_task(methods=[{"name": "zero-shot", "templates": ["{{ text }}", "{{ text.__class__.__mro__ }}"]}])
    spec, base = load_task(task)
    with pytest.raises(TaskFileError) as info:
        run_task(spec, base, task.parent / "run", task_file=str(task))
    assert info.value.key == "methods[0].templates[1]"
    assert "sandbox" in str(info.value) and str(task) in str(info.value)
    assert not (task.parent / "run").exists(), "nothing is run (or stored) for a task that can't work"
