"""The search space of a generative model's prompt (the `prompt` method's options): instruction wording (hand-written,
phrase-level edits of it, and a proposer model's proposals), output format, answer prefix, label words
(verbalizers), and demonstrations — how many, how chosen, which draw, in what order.

Options the search doesn't touch (the input template, the scoring mode, generation settings…) come from the
search's ``prompt:`` and stay as given.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from .edits import PHRASE_BANK, edited_pool
from .space import BOOTSTRAP_SAMPLE, Bootstrap, Candidate, as_choices, ask_ordered, rank_of

K_CHOICES = (0, 1, 2, 4, 8)
PREFIXES = ("Answer:", "Label:", "The answer is", "A:")


def _unique(items: Sequence[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


def _words(label: str, given: str | list[str] | None) -> list[str]:
    """Choices for one label's verbalizers, each a JSON list: the given words whole, each alone, then the label as
    written, in lower case and capitalized."""
    given_list = [given] if isinstance(given, str) else list(given or [])
    sets = ([given_list] if len(given_list) > 1 else []) + [[w] for w in given_list]
    spelled = label.replace("_", " ")
    sets += [[spelled], [spelled.lower()], [spelled.capitalize()]]
    return _unique([json.dumps(s) for s in sets])


class GenerativeSpace:
    """Prompts for a generative model; see the module docstring.

    Args:
        base: The `prompt` options the search leaves alone (as a task file gives them).
        instructions: Hand-written instructions to start from.
        proposals: Instructions a proposer model wrote (added to the choices as they are).
        labels: The task's labels (classification), else None.
        train_size: Training examples demonstrations may come from.
        edits: Edited instructions to add.
        draws: Random draws of demonstrations to try for one choice of how many and how.
        seed: Seeds the edits; a draw is seeded ``seed + draw``.
        renders: Whether an instruction compiles and renders on the data.
        kind: The task kind (which phrase bank edits draw on).
        chat: Whether the prompts go to the model as chat messages (no answer prefix to search then).
    """

    def __init__(
        self,
        base: dict[str, Any],
        instructions: Sequence[str],
        proposals: Sequence[str],
        labels: Sequence[str] | None,
        train_size: int,
        edits: int,
        draws: int,
        seed: int,
        renders: Callable[[str], bool],
        kind: str,
        chat: bool = False,
    ) -> None:
        self.base = dict(base)
        given = _unique([*instructions, *([base["instruction"]] if base.get("instruction") else [])]) or [""]
        bank = PHRASE_BANK["any"] + PHRASE_BANK.get(kind, ())
        pool = edited_pool([g for g in given if g], edits, seed, bank, renders) if any(given) else []
        self.given = given
        self.instructions = _unique([*given, *(t for t, _ in pool), *proposals])
        self.history = {t: how for t, how in pool} | {p: "proposed" for p in proposals if p not in given}
        self.labels = list(labels) if labels else None
        given_words = base.get("verbalizers") or {}
        self.verbalizers = {lb: _words(lb, given_words.get(lb)) for lb in self.labels or ()}
        self.formats = _unique(
            [base.get("output_format", ""), ""]
            + ([f"Answer with one of: {', '.join(self.labels)}."] if self.labels else ["Answer briefly."])
        )
        # chat messages end with the assistant's turn, not an answer cue: then there is no prefix to search
        self.prefixes = _unique([base.get("answer_prefix", "Answer:"), *([] if chat else PREFIXES)])
        self.k_choices = [k for k in K_CHOICES if k <= train_size]
        # bootstrapped: drawn (balanced) from the training examples the prompt without demonstrations answers right
        self.selects = (
            ["random", "balanced", "nearest", "mmr", "bootstrapped"] if self.labels else ["random", "nearest", "mmr"]
        )
        self.draws, self.seed = draws, seed
        self.instruction_param = "instruction"  # a grown pool is a new choice (optuna's choices can't change)

    def grow(self, proposals: Sequence[str]) -> None:
        """Add instructions proposed during the search; later trials choose among the larger pool."""
        new = [p for p in proposals if p not in self.instructions]
        for p in new:
            self.history[p] = "proposed from the scores so far"
        if new:
            self.instructions = [*self.instructions, *new]
            self.instruction_param = f"instruction@{len(self.instructions)}"

    def initial(self) -> list[dict[str, Any]]:
        wanted = int(self.base.get("k", 0))
        k = max(c for c in self.k_choices if c <= wanted)
        select = self.base.get("select", "balanced" if self.labels else "random")
        out = []
        for text in self.given:
            params: dict[str, Any] = {
                "instruction": text,
                "output_format": self.formats[0],
                "answer_prefix": self.prefixes[0],
                **{f"verbalize:{lb}": ws[0] for lb, ws in self.verbalizers.items()},
                **rank_of("k", self.k_choices, k),
            }
            if k:
                params["select"] = select
                params["order:similar" if select in ("nearest", "mmr") else "order:fixed"] = "fixed"
                if select in ("random", "balanced"):
                    params["draw"] = 0
            out.append(params)
        return out

    def suggest(self, trial: Any) -> dict[str, Any]:
        trial.suggest_categorical(self.instruction_param, self.instructions)
        trial.suggest_categorical("output_format", self.formats)
        trial.suggest_categorical("answer_prefix", self.prefixes)
        for lb, words in self.verbalizers.items():
            trial.suggest_categorical(f"verbalize:{lb}", words)
        k = ask_ordered(trial, "k", self.k_choices)
        if k:
            select = trial.suggest_categorical("select", self.selects)
            orders = ["fixed", "random"] + (["similar_last"] if select in ("nearest", "mmr") else [])
            trial.suggest_categorical(f"order:{'similar' if len(orders) == 3 else 'fixed'}", orders)
            if select in ("random", "balanced", "bootstrapped"):
                trial.suggest_categorical("draw", list(range(self.draws)))
        return as_choices(trial.params, {"k": k})

    def build(self, params: dict[str, Any]) -> Candidate:
        options = dict(self.base)
        options.update(
            instruction=next(v for k, v in params.items() if k.startswith("instruction")),
            output_format=params["output_format"],
            answer_prefix=params["answer_prefix"],
            k=params["k"],
        )
        if self.verbalizers:
            options["verbalizers"] = {lb: json.loads(params[f"verbalize:{lb}"]) for lb in self.verbalizers}
        pool = "train"
        if params["k"]:
            options["select"] = params["select"]
            options["demo_order"] = params.get("order:similar", params.get("order:fixed", "fixed"))
            if params["select"] == "bootstrapped":
                options["select"], pool = "balanced", "bootstrapped"
        options.pop("variants", None)
        return Candidate("prompt", options, self.seed + int(params.get("draw", 0)), pool)

    def bootstrap(self, c: Candidate) -> Bootstrap:
        zero = {k: v for k, v in c.options.items() if k not in ("select", "demo_order")} | {"k": 0}
        return Bootstrap("prompt", zero, BOOTSTRAP_SAMPLE)

    def describe(self) -> dict[str, Any]:
        return {
            "instructions": [{"text": t, "from": self.history.get(t, "given")} for t in self.instructions],
            "output_formats": self.formats,
            "answer_prefixes": self.prefixes,
            "verbalizers": {lb: [json.loads(w) for w in ws] for lb, ws in self.verbalizers.items()},
            "k": self.k_choices,
            "selects": self.selects,
            "draws": self.draws,
        }
