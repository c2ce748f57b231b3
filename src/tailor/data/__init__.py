"""A task's examples: data files or a hub dataset read row by row, validated, mapped to :class:`tailor.types.Example`
and split.

- :mod:`.rows`: reading JSONL, CSV and Parquet line by line, an unreadable line named by file and number;
- :mod:`.load`: fields, bad-row policy, content-hash splits (and too few rows for them), the sealed test split and
  leak checks;
- :mod:`.labels`: label spellings, the label set, and texts that carry more than one label.

May import :mod:`tailor.config`, :mod:`tailor.errors` and :mod:`tailor.types`; never models.
"""
