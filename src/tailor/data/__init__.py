"""A task's examples: data files or a hub dataset read row by row, validated, mapped to :class:`tailor.types.Example`
and split.

- :mod:`.rows`: reading JSONL, CSV and Parquet line by line, an unreadable line named by file and number;
- :mod:`.load`: fields, labels, bad-row policy, content-hash splits, the sealed test split and leak checks.

May import :mod:`tailor.config`, :mod:`tailor.errors` and :mod:`tailor.types`; never models.
"""
