"""Models behind an OpenAI-compatible server (vLLM, llama.cpp, ``transformers serve``, hosted APIs).

- :mod:`.endpoint`: the generative backend for a served model; :mod:`.probe`: what the server can do, asked once;
- :mod:`.dispatch`: bounded, adaptive concurrency with retries; :mod:`.transport`: the HTTP clients;
- :mod:`.limits`: rate limits read from the server's answers; :mod:`.cache`: the response cache on disk.
"""
