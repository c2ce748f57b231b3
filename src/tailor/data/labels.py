"""Classification labels as the data gives them: their spellings, the label set, and texts that carry more than one.

The reader records every labelled row in a :class:`LabelLedger`; the label set is then resolved from it (the task
file's `labels:`, else those of train). Why texts are tracked: rows are split by the hash of their content (text
and label), so copies of one text with different labels land in different splits — a label then seems to be missing
from train, or a split comes out empty, and the user must be told the cause (the conflicting rows), not the symptom.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..config.task import TaskSpec
from ..errors import DataError
from ..types import Example


def text_key(inputs: Mapping[str, str]) -> str:
    """One key per input text, whatever its case and spacing (``Where is my invoice?`` = ``where is my  invoice?``)."""
    normal = "\n".join(f"{k}={' '.join(v.lower().split())}" for k, v in sorted(inputs.items()))
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()[:24]


@dataclass
class LabelLedger:
    """What the reader saw of labels, in file order.

    Attributes:
        stripped: Label spellings that had surrounding whitespace, with their row counts.
        first: Each label → where it first occurs.
        by_text: Each input text (:func:`text_key`) → each of its labels → where that pair first occurs.
        rows: Rows per input text.
        shown: The start of each text that carries more than one label, for messages.
    """

    stripped: Counter[str] = field(default_factory=Counter)
    first: dict[str, str] = field(default_factory=dict)
    by_text: dict[str, dict[str, str]] = field(default_factory=dict)
    rows: Counter[str] = field(default_factory=Counter)
    shown: dict[str, str] = field(default_factory=dict)

    def record(self, ex: Example, raw: str) -> None:
        """Note ``ex`` (its label already stripped) and the label's spelling in the file (``raw``)."""
        label = ex.label
        if raw != label:
            self.stripped[raw] += 1
        self.first.setdefault(label, ex.source)
        key = text_key(ex.inputs)
        labels = self.by_text.setdefault(key, {})
        labels.setdefault(label, ex.source)
        self.rows[key] += 1
        if len(labels) > 1 and key not in self.shown:
            self.shown[key] = ex.text if len(ex.text) <= 60 else ex.text[:57] + "..."

    def conflicts(self) -> list[str]:
        """The texts (keys) that carry more than one label, in file order."""
        return list(self.shown)

    def described(self, key: str) -> str:
        """Text ``key`` and where each of its labels first occurs: ``'Hi' is 'a' at f.jsonl:1, 'b' at f.jsonl:2``."""
        labels = ", ".join(f"{label!r} at {where}" for label, where in self.by_text[key].items())
        return f"{self.shown[key]!r} is {labels} ({self.rows[key]} rows have this text)"

    def conflict_text(self, key: str | None = None) -> str:
        """Why texts with several labels break a split: text ``key`` (default: the first) named by its rows, and
        how many other texts have several labels."""
        keys = self.conflicts()
        key = key if key in self.shown else keys[0]
        others = len(keys) - 1
        more = f"; {others} other text{'s' if others > 1 else ''} with more than one label too" if others else ""
        return (
            f"the same text carries different labels: {self.described(key)}{more}. Rows are split by their content "
            "(text and label), so each label of such a text lands in a split of its own; give each text one label, "
            "or remove the copies"
        )


def check_label_spellings(spec: TaskSpec, ledger: LabelLedger, notes: list[str], origin: str) -> list[str] | None:
    """The task file's labels, stripped; a note on stripped labels; an error on labels that differ only in case."""
    declared = [label.strip() for label in spec.labels] if spec.labels is not None else None
    changed = [label for label in spec.labels or () if label != label.strip()]
    if ledger.stripped or changed:
        spellings = ", ".join(f"{raw!r} → {raw.strip()!r}" for raw in [*ledger.stripped, *changed][:5])
        counts = [f"{sum(ledger.stripped.values())} labels in the data"] if ledger.stripped else []
        counts += [f"{len(changed)} in the task file's `labels`"] if changed else []
        notes.append(f"surrounding whitespace stripped from {' and '.join(counts)} ({spellings})")
    first = {label: f"{origin}: labels" for label in declared or ()}
    for label, where in ledger.first.items():
        first.setdefault(label, where)
    by_case: dict[str, list[str]] = {}
    for label in first:
        by_case.setdefault(label.casefold(), []).append(label)
    clashes = [spellings for spellings in by_case.values() if len(spellings) > 1]
    if clashes:
        described = "; ".join(" and ".join(f"{s!r} (first at {first[s]})" for s in group) for group in clashes)
        raise DataError(
            first[clashes[0][1]],
            f"labels that differ only in case: {described}. They would be separate classes; spell each label one way",
        )
    return declared


def resolve_labels(
    spec: TaskSpec,
    parts: dict[str, list[Example]],
    ledger: LabelLedger,
    bad: Callable[[str, str, str, str], None],
    sources: list[str],
    notes: list[str],
    origin: str,
    too_few: str = "",
) -> list[str] | None:
    """The label set (the task file's `labels:`, else train's); rows with another label go to ``bad`` (split,
    where, reason, kind) and leave ``parts``. ``too_few`` says why the split may have missed a class (too few rows),
    for the errors.

    Raises:
        DataError: train holds fewer than two classes.
    """
    if spec.kind != "classification":
        return None
    declared = check_label_spellings(spec, ledger, notes, origin)
    if declared is not None:
        labels, whence = declared, "the task file's `labels`"
    else:
        n = len(parts["train"])
        labels = sorted({ex.label for ex in parts["train"]})
        whence = f"labels inferred from train ({n} example{'s' if n != 1 else ''})"
    allowed = set(labels)
    for split, examples in parts.items():
        kept = []
        for ex in examples:
            if ex.label in allowed:
                kept.append(ex)
                continue
            reason = f"label {ex.label!r} is not in the label set ({whence}: {', '.join(labels)})"
            key = text_key(ex.inputs)
            if key in ledger.shown:  # the symptom of a text labelled twice: name that instead
                reason += f": {ledger.conflict_text(key)}"
            elif too_few:
                reason += f". {too_few}"
            bad(split, ex.source, reason, "label not in the label set")
        parts[split] = kept
    present = {ex.label for ex in parts["train"]}
    if len(present) < 2:
        only = ", ".join(sorted(present)) or "none"
        why = f": {ledger.conflict_text()}" if ledger.conflicts() else f". {too_few}" if too_few else ""
        raise DataError(
            f"train split of {', '.join(sources)}",
            f"only one class in train ({only}); classification needs at least two{why}",
        )
    if ledger.conflicts():  # a few such rows are common in real data (annotators disagree): a note, not an error
        first = ledger.conflicts()[0]
        notes.append(f"{len(ledger.conflicts())} texts carry more than one label, e.g. {ledger.described(first)}")
    return labels
