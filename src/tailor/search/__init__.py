"""The prompt search: seeded optuna over a space of ordinary prompts, scored on dev minibatches under a hard budget.

- :mod:`.searcher`: the search itself (trials, finalists, the honest final choice on held-out dev);
- :mod:`.space` and :mod:`.space_lm`: the candidates (instruction, demonstrations, their number and order), and
  instructions proposed by a language model through :mod:`.proposer` and edited by :mod:`.edits`;
- :mod:`.partition`: dev cut into a search part and a select part; :mod:`.evidence`: judging candidates by their
  minibatch scores; :mod:`.budget`: the budget in money, FLOPs or seconds; :mod:`.ledger` and :mod:`.trials`: the
  search's resumable record.

Used by the ``prompt-search`` method (:mod:`tailor.methods.prompt_search`); may import the prompt route
(:mod:`tailor.prompting`), stats and costs, never the runner or the report.
"""
