"""A scripted fake language model: a generative backend with no weights, answering from a script.

:class:`ScriptedLM` implements :class:`~tailor.backends.protocol.GenerativeBackend`, so the whole prompt route
(building prompts, scoring labels, generating, parsing, calibrating, saving and loading) runs against it in
milliseconds, with answers a test chooses::

    fake = ScriptedLM(
        answers={"the movie was great": "positive"},       # rendered prompt, or a text the prompt contains
        default_answer="negative",
        scores={"positive": -1.0, "negative": -2.0},       # continuation -> log-probability (any prompt)
    )
    pool = ModelPool()
    pool.put(ModelSpec(name="fake", kind="scripted"), fake)  # instead of loading a model
    ...
    assert fake.requests == []                               # e.g. check() refused before anything was sent

Lookups. An ``answers`` (or per-prompt ``scores``) table is searched for the rendered prompt itself first; else
for the key that the prompt contains *last* — an example's input text comes after the demonstrations in a
few-shot prompt, so keying by input text finds the example's own entry, not a demonstration's. Continuations are
looked up as given, then stripped (``" positive"`` finds ``"positive"``). Either table may be a function instead:
``answers(prompt_text) -> str``, ``scores(prompt_text, continuation) -> float``.

Tokens are whitespace-separated words: they make the token counts, the context length check and the usage
(input and output tokens; FLOPs ``2·parameters`` per token when ``parameters`` is declared, else 0).

Capabilities are configurable, so a test can make a model that cannot score, has no local tokenizer or takes no
chat; a call that needs a missing capability raises, as a real backend would fail. Every ``score`` and
``generate`` call is recorded in :attr:`ScriptedLM.requests`.

The ``scripted`` model kind (:data:`KIND`) loads a ScriptedLM from a JSON file named by ``model.name``, so a task
file can run the whole pipeline without weights (``model: {kind: scripted, name: script.json}``)::

    {"answers": {"...": "..."}, "default_answer": "...", "scores": {"positive": -1.0},
     "default_score": -10.0, "capabilities": {"score_continuations": true, "chat": false}, "parameters": 1000}
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..backends.protocol import Capabilities, Generated, GenerationSettings, PromptInput, Scored
from ..config.task import ModelSpec
from ..costs.usage import query_usage
from ..errors import TailorError
from ..progress import Progress

Answers = Mapping[str, str] | Callable[[str], str]
Scores = Mapping[str, float] | Mapping[str, Mapping[str, float]] | Callable[[str, str], float]

DEFAULT_CAPABILITIES = Capabilities(score_continuations=True, local_tokenizer=True, chat=True, context_length=100_000)
"""What a ScriptedLM can do unless told otherwise: everything but prefix reuse, top-k and constrained choice."""


@dataclass(frozen=True)
class Request:
    """One call to the fake: what was asked (prompts as rendered text) and with what."""

    kind: Literal["score", "generate"]
    prompts: tuple[str, ...]
    continuations: tuple[str, ...] = ()
    settings: GenerationSettings | None = None


def _lookup(table: Mapping[str, Any], prompt: str) -> Any:
    """The entry for ``prompt`` itself, else for the key found last in it (the longest on a tie); None if none."""
    if prompt in table:
        return table[prompt]
    best, best_end, best_len = None, -1, -1
    for key, value in table.items():
        at = prompt.rfind(key) if key else -1
        if at >= 0 and (at + len(key), len(key)) > (best_end, best_len):
            best, best_end, best_len = value, at + len(key), len(key)
    return best


@dataclass
class ScriptedLM:
    """A generative backend answering from a script (see the module docstring).

    Attributes:
        answers: Answer by prompt (or by a text the prompt contains), or a function of the prompt's text.
        default_answer: The answer when the table has none for a prompt.
        scores: Log-probability by continuation, by prompt then continuation, or a function of both.
        default_score: The log-probability of a continuation the table lacks.
        capabilities: What the fake offers; a call needing what it lacks raises.
        parameters: Declared parameters (FLOPs are ``2·parameters`` per token); None: unknown, FLOPs 0.
        name: The model's name.
        requests: Every ``score`` and ``generate`` call, in order.
    """

    answers: Answers = field(default_factory=dict)
    default_answer: str = ""
    scores: Scores = field(default_factory=dict)
    default_score: float = -10.0
    capabilities: Capabilities = DEFAULT_CAPABILITIES
    parameters: int | None = None
    name: str = "scripted"
    requests: list[Request] = field(default_factory=list)
    tokenizer: None = None  # tokens are words here: no token ids to compare
    probe: None = None  # nothing is served

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedLM:
        """A fake from a JSON script (the keys are this class's fields: answers, default_answer, scores,
        default_score, capabilities, parameters)."""
        script = _read_script(path)
        known = {"answers", "default_answer", "scores", "default_score", "parameters"}
        unknown = sorted(set(script) - known - {"capabilities"})
        if unknown:
            raise TailorError(
                f"model.name: unknown keys in the scripted model's file {path}: {', '.join(unknown)} "
                f"(keys: {', '.join(sorted(known | {'capabilities'}))})"
            )
        return cls(
            **{k: v for k, v in script.items() if k in known},
            capabilities=_capabilities_of(script),
            name=str(path),
        )

    def _needs(self, capability: str, what: str) -> None:
        if not getattr(self.capabilities, capability):
            raise TailorError(f"scripted model {self.name}: {what} needs the capability {capability}, which it lacks")

    # -- text -----------------------------------------------------------------------------------------

    def render(self, prompt: PromptInput) -> str:
        """A string as it is; chat messages as ``role: content`` blocks ending with an ``assistant:`` cue."""
        if isinstance(prompt, str):
            return prompt
        self._needs("chat", "a chat prompt")
        return "\n\n".join([*(f"{m['role']}: {m['content']}" for m in prompt), "assistant:"])

    def count_tokens(self, text: str) -> int:
        """Whitespace-separated words."""
        self._needs("local_tokenizer", "counting tokens")
        return _words(text)

    # -- answering ------------------------------------------------------------------------------------

    def _score(self, prompt: str, continuation: str) -> float:
        if callable(self.scores):
            return float(self.scores(prompt, continuation))
        table: Any = self.scores
        if table and isinstance(next(iter(table.values())), Mapping):
            table = _lookup(table, prompt) or {}
        for key in (continuation, continuation.strip()):
            if key in table:
                return float(table[key])
        return self.default_score

    def _answer(self, prompt: str) -> str:
        if callable(self.answers):
            return self.answers(prompt)
        found = _lookup(self.answers, prompt)
        return self.default_answer if found is None else found

    def score(
        self, prompts: Sequence[PromptInput], continuations: Sequence[str], progress: Progress | None = None
    ) -> Scored:
        """Each continuation's scripted log-probability after each prompt."""
        self._needs("score_continuations", "scoring continuations")
        texts = [self.render(p) for p in prompts]
        self.requests.append(Request("score", tuple(texts), tuple(continuations)))
        shape = (len(texts), len(continuations))
        logp = np.array([[self._score(t, c) for c in continuations] for t in texts], dtype=np.float64).reshape(shape)
        counts = np.array([[_words(c) for c in continuations] for _ in texts], dtype=np.int64).reshape(shape)
        params = self.parameters or 0
        usage = [query_usage(params, _words(t) + int(row.sum())) for t, row in zip(texts, counts)]
        return Scored(logp, counts, usage)

    def generate(
        self, prompts: Sequence[PromptInput], settings: GenerationSettings, progress: Progress | None = None
    ) -> list[Generated]:
        """Each prompt's scripted answer, cut at ``max_new_tokens`` words and before the first stop string."""
        texts = [self.render(p) for p in prompts]
        self.requests.append(Request("generate", tuple(texts), settings=settings))
        out = []
        for text in texts:
            answer = "".join(re.findall(r"\s*\S+", self._answer(text))[: settings.max_new_tokens])
            ends = [answer.find(s) for s in settings.stop if s and s in answer]
            answer = answer[: min(ends)] if ends else answer
            out.append(Generated(answer, query_usage(self.parameters or 0, _words(text), _words(answer))))
        return out

    def first_token_logprobs(
        self, prompts: Sequence[PromptInput], k: int, progress: Progress | None = None
    ) -> list[Generated]:
        """Each prompt's scripted answer with the ``k`` best-scored first words of the scripted continuations (a
        fake given ``top_logprobs`` in its capabilities)."""
        self._needs("top_logprobs", "first-token scoring")
        answers = self.generate(prompts, GenerationSettings(max_new_tokens=1))
        out = []
        for prompt, answer in zip(prompts, answers):
            text = self.render(prompt)
            words = {c.split()[0]: self._score(text, c) for c in self._continuations(text) if c.split()}
            top = dict(sorted(words.items(), key=lambda kv: -kv[1])[:k])
            out.append(Generated(answer.text, answer.usage, top_logprobs=top))
        return out

    def choose(
        self, prompts: Sequence[PromptInput], choices: Sequence[str], progress: Progress | None = None
    ) -> list[Generated]:
        """Each prompt's best-scored choice (a fake given ``constrained_choice`` in its capabilities)."""
        self._needs("constrained_choice", "a constrained choice")
        out = []
        for prompt in prompts:
            text = self.render(prompt)
            best = max(choices, key=lambda c: self._score(text, c))
            out.append(Generated(best, query_usage(self.parameters or 0, _words(text), _words(best))))
        return out

    def _continuations(self, prompt: str) -> list[str]:
        """The continuations the script scores after ``prompt`` (none when its scores are a function)."""
        if callable(self.scores):
            return []
        table: Any = self.scores
        if table and isinstance(next(iter(table.values())), Mapping):
            table = _lookup(table, prompt) or {}
        return list(table)


def _words(text: str) -> int:
    return len(text.split())


def _read_script(path: str | Path) -> dict[str, Any]:
    try:
        script = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TailorError(f"model.name: can't read the scripted model's JSON file {path}: {exc}") from None
    if not isinstance(script, dict):
        raise TailorError(f"model.name: the scripted model's file {path} must hold a JSON object")
    return script


def _capabilities_of(script: dict[str, Any]) -> Capabilities:
    given = script.get("capabilities") or {}
    unknown = sorted(set(given) - set(DEFAULT_CAPABILITIES.to_dict()))
    if unknown:
        raise TailorError(f"model.name: unknown capabilities in the scripted model's file: {', '.join(unknown)}")
    return replace(DEFAULT_CAPABILITIES, **given)


class ScriptedKind:
    """The registry's ``scripted`` kind: a :class:`ScriptedLM` read from the JSON file ``model.name``."""

    role: Literal["generative"] = "generative"

    def capabilities(self, spec: ModelSpec) -> Capabilities:
        return _capabilities_of(_read_script(spec.name))

    def load(self, spec: ModelSpec) -> ScriptedLM:
        return ScriptedLM.from_file(spec.name)


KIND = ScriptedKind()
