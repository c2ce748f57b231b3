"""The task file, and the files of an adapted folder, as data: pydantic models whose fields carry their own
documentation, validated on load with errors naming the file, the key and what was expected.

- :mod:`.task`: the task file (:class:`TaskSpec`), loading it and ``key=value`` overrides;
- :mod:`.model`: a model spec (a hub id, a local folder, a GGUF file or a served endpoint, and its price);
- :mod:`.packaged`: the grammar of a model named by a file in a pinned wheel (``pypi:DIST==VERSION/PATH#sha256=HEX``);
- :mod:`.costs`: the prices of local compute (``costs:``);
- :mod:`.curve`: a learning curve's sizes and seeds (``curve:``);
- :mod:`.strict`: the one strict base every section derives from (unknown keys are errors, values frozen);
- :mod:`.saved`: an adapted folder's files (``adapted.json``, and any JSON file a method saves), read the same way.

May import :mod:`tailor.errors` and :mod:`tailor.types` only: a config is read before anything else exists.
"""
