"""What a prompt search chooses among, and the candidates it builds: each candidate is an ordinary prompt — a
registered prompt-route method (``zero-shot``, ``few-shot``, ``prompt``) with its options and seed — so the winner
is exported, reloaded and read like a prompt written by hand.

A space suggests a candidate's choices on an optuna trial (define-by-run: a choice that doesn't apply to a
candidate, the demonstrations of a zero-shot prompt, is never asked) and builds the candidate from them. Spaces
name methods and give their options as plain dicts; the method module turns them into options objects, so this
package imports no method.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .edits import PHRASE_BANK, edited_pool

BOOTSTRAP_SAMPLE = 64
"""Training examples a bootstrapped candidate's prompt (without demonstrations) answers, to find the ones it gets
right: part of what building the candidate costs."""


@dataclass(frozen=True)
class Bootstrap:
    """How a bootstrapped candidate's pool of demonstrations is found: the prompt without demonstrations that answers
    the training examples (a registered method and its options), and how many of them it answers (a seeded sample;
    all of train when ``sample`` is as large). Its right answers are the pool."""

    method: str
    options: dict[str, Any]
    sample: int


@dataclass(frozen=True)
class Candidate:
    """One prompt the search may score: a registered method, its options (as in a task file) and its seed."""

    method: str
    options: dict[str, Any]
    seed: int = 0
    pool: str = "train"
    """Where demonstrations come from: all of train, or ``bootstrapped``: the training examples the same prompt
    without demonstrations answers right."""

    @property
    def key(self) -> str:
        """The candidate's identity: two candidates with the same key predict alike."""
        identity = {"method": self.method, "options": self.options, "seed": self.seed}
        if self.pool != "train":
            identity["pool"] = self.pool
        return json.dumps(identity, sort_keys=True)


class Space(Protocol):
    """A search space over ordinary prompts."""

    def initial(self) -> list[dict[str, Any]]:
        """The hand-written starting points' choices (scored first, so the search starts from them)."""
        ...

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Ask ``trial`` (an optuna trial) for a candidate's choices."""
        ...

    def build(self, params: dict[str, Any]) -> Candidate:
        """The candidate those choices make."""
        ...

    def describe(self) -> dict[str, Any]:
        """The choices on offer (pools of wordings, numbers of demonstrations), for the record."""
        ...

    def bootstrap(self, c: Candidate) -> Bootstrap:
        """For a candidate whose ``pool`` is ``bootstrapped``: the prompt whose right answers on train make its pool."""
        ...

    # Optional `grow(proposals: Sequence[str]) -> None`: add instructions proposed mid-search (generative spaces).


def ask_ordered(trial: Any, name: str, choices: Sequence[Any]) -> Any:
    """Ask ``trial`` for one of ``choices`` that are ordered (how many demonstrations), as its rank — an integer
    ``{name}_rank`` that TPE models as ordered, so a good choice lends weight to its neighbours; asked as a category,
    each would be learned alone. Random search draws it uniformly either way."""
    return choices[trial.suggest_int(f"{name}_rank", 0, len(choices) - 1)]


def as_choices(params: dict[str, Any], ordered: dict[str, Any]) -> dict[str, Any]:
    """A trial's params with each ordered choice's rank (``k_rank``) replaced by the choice (``k``)."""
    out = {k: v for k, v in params.items() if not (k.endswith("_rank") and k[: -len("_rank")] in ordered)}
    return out | ordered


def rank_of(name: str, choices: Sequence[Any], value: Any) -> dict[str, int]:
    """The param that makes :func:`ask_ordered` give ``value`` (for enqueuing a starting point)."""
    return {f"{name}_rank": list(choices).index(value)}


LABEL_PATTERNS = ("{label}", "about {label}", "this is {label}", "it is {label}", "a text about {label}")
"""Label descriptions an encoder's zero-shot may try besides those given: patterns over the label's name."""

DEFAULT_TEMPLATES = ("{{ text }}",)
K_CHOICES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def description_pool(label: str, given: str | list[str] | None) -> list[str]:
    """Choices for one label's descriptions, each a JSON list of strings: the given set whole, each given description
    alone, then the label's name in the patterns of :data:`LABEL_PATTERNS`."""
    name = label.replace("_", " ")
    given_list = [given] if isinstance(given, str) else list(given or [])
    sets = ([given_list] if len(given_list) > 1 else []) + [[d] for d in given_list]
    sets += [[p.format(label=name)] for p in LABEL_PATTERNS]
    return _unique([json.dumps(s) for s in sets])


class EncoderSpace:
    """A sentence encoder's prompts: zero-shot (template, label descriptions, how several descriptions combine) or
    few-shot (how many demonstrations per class, how they are chosen, which draw, how an input is classified).

    Args:
        templates: Hand-written templates; the pool adds ``edits`` edited versions of them.
        label_descriptions: Hand-written descriptions by label (the pool adds patterns over the label names).
        labels: The task's labels.
        train_labels: The training examples' labels (what few-shot can draw from; empty: zero-shot only).
        forms: Which of ``zero-shot`` and ``few-shot`` to search.
        edits: Edited templates to add to the pool.
        draws: Different random draws of demonstrations to try for one choice of how many and how.
        seed: Seeds the edits; a draw of demonstrations is seeded ``seed + draw``.
        renders: Whether a template compiles and renders on the data (edits that break one are dropped).
        bank: Phrases an edit may add.
    """

    def __init__(
        self,
        templates: Sequence[str],
        label_descriptions: dict[str, str | list[str]] | None,
        labels: Sequence[str],
        train_labels: Sequence[str],
        forms: Sequence[str],
        edits: int,
        draws: int,
        seed: int,
        renders: Callable[[str], bool],
        bank: Sequence[str] = PHRASE_BANK["any"] + PHRASE_BANK["classification"],
    ) -> None:
        self.given_templates = list(templates or DEFAULT_TEMPLATES)
        pool = edited_pool(self.given_templates, edits, seed, bank, renders)
        self.templates = [t for t, _ in pool]
        self.template_history = {t: how for t, how in pool}
        self.labels = list(labels)
        self.given_descriptions = label_descriptions or {}
        self.descriptions = {lb: description_pool(lb, self.given_descriptions.get(lb)) for lb in self.labels}
        counts = Counter(train_labels)
        smallest = min((counts.get(lb, 0) for lb in self.labels), default=0)
        self.forms = [f for f in forms if f == "zero-shot" or (f == "few-shot" and smallest > 0)]
        self.k_choices: list[int | str] = [k for k in K_CHOICES if k <= smallest] + (["all"] if smallest else [])
        self.draws = draws
        self.seed = seed
        self.train_size = len(train_labels)
        # bootstrapped: demonstrations drawn (balanced) from the training examples the hand-written zero-shot prompt
        # (the first template with each label's given descriptions) classifies right; needs that prompt searchable
        self.selects = ["balanced", "random", "nearest"] + (["bootstrapped"] if "zero-shot" in self.forms else [])

    def bootstrap(self, c: Candidate) -> Bootstrap:
        first = next(p for p in self.initial() if p["form"] == "zero-shot")
        return Bootstrap("zero-shot", self.build(first).options, self.train_size)

    def initial(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if "zero-shot" in self.forms:
            for t in self.given_templates:
                out.append(
                    {
                        "form": "zero-shot",
                        "template": t,
                        **{f"describe:{lb}": self.descriptions[lb][0] for lb in self.labels},
                        "aggregate": "mean",
                    }
                )
        if "few-shot" in self.forms:
            k = 8 if 8 in self.k_choices else self.k_choices[0]
            start = {"form": "few-shot", **rank_of("k", self.k_choices, k), "select": "balanced", "draw": 0}
            out.append(start | {"classify": "centroid"})
        return out

    def suggest(self, trial: Any) -> dict[str, Any]:
        form = trial.suggest_categorical("form", self.forms)
        k = None
        if form == "zero-shot":
            trial.suggest_categorical("template", self.templates)
            for lb in self.labels:
                trial.suggest_categorical(f"describe:{lb}", self.descriptions[lb])
            trial.suggest_categorical("aggregate", ["mean", "max"])
        else:
            k = ask_ordered(trial, "k", self.k_choices)
            if k != "all":  # every example: nothing to choose among, nothing to draw
                select = trial.suggest_categorical("select", self.selects)
                if select != "nearest":  # nearest looks at every candidate for each input: no draw
                    trial.suggest_categorical("draw", list(range(self.draws)))
            trial.suggest_categorical("classify", ["centroid", "knn"])
        return as_choices(trial.params, {} if k is None else {"k": k})

    def build(self, params: dict[str, Any]) -> Candidate:
        if params["form"] == "zero-shot":
            descriptions = {lb: json.loads(params[f"describe:{lb}"]) for lb in self.labels}
            options = {
                "templates": [params["template"]],
                "label_descriptions": descriptions,
                "aggregate": params["aggregate"],
            }
            return Candidate("zero-shot", options, self.seed)
        k, select, pool = params["k"], params.get("select", "balanced"), "train"
        if select == "bootstrapped":
            select, pool = "balanced", "bootstrapped"
        options = {"k": k, "select": select, "classify": params["classify"]}
        return Candidate("few-shot", options, self.seed + int(params.get("draw", 0)), pool)

    def describe(self) -> dict[str, Any]:
        return {
            "forms": self.forms,
            "templates": [{"text": t, "from": self.template_history[t]} for t in self.templates],
            "label_descriptions": {lb: [json.loads(d) for d in ds] for lb, ds in self.descriptions.items()},
            "k": self.k_choices,
            "selects": self.selects,
            "draws": self.draws,
        }
