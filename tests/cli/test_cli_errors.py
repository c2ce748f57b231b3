"""The command line's errors: a mistake in an override is the command line's, not the task file's; an unexpected
error is one line and exit 1 unless --debug asks for the traceback."""

from __future__ import annotations

from conftest import squash
from typer.testing import CliRunner

from tailor.cli.main import app


def test_a_bad_override_value_is_blamed_on_the_command_line(make_task) -> None:
    task = make_task()
    result = CliRunner().invoke(app, ["run", str(task), "seed=abc"], terminal_width=300)
    assert result.exit_code == 2
    out = squash(result.output)
    assert "the command line (seed=abc): seed:" in out and f"{task}: seed" not in out


def test_a_bad_method_option_override_is_blamed_on_the_command_line(make_task) -> None:
    task = make_task(methods=[{"name": "zero-shot"}, {"name": "few-shot", "k": 2}])
    result = CliRunner().invoke(app, ["run", str(task), "methods.1.k=0"], terminal_width=300)
    assert result.exit_code == 2
    out = squash(result.output)
    assert "the command line (methods.1.k=0): methods[1].k:" in out and "Traceback" not in out


def test_a_mistake_in_the_file_itself_is_still_the_files(make_task) -> None:
    task = make_task(seed="abc")
    result = CliRunner().invoke(app, ["run", str(task), "methods.0.name=zero-shot"], terminal_width=300)
    assert result.exit_code == 2
    assert f"{task}: seed:" in squash(result.output)


def test_an_unexpected_error_is_one_line_and_exit_1_unless_debug(monkeypatch, capsys) -> None:
    import pytest

    import tailor.config.task
    from tailor.cli.main import main

    def broken(*args, **kwargs):
        raise RuntimeError("something inside broke")

    monkeypatch.setattr(tailor.config.task, "task_keys", broken)
    with pytest.raises(SystemExit) as info:
        main(["keys"])
    assert info.value.code == 1
    err = squash(capsys.readouterr().err)
    assert "internal error: RuntimeError: something inside broke" in err and "--debug" in err
    assert "Traceback" not in err
    with pytest.raises(RuntimeError):
        main(["--debug", "keys"])
