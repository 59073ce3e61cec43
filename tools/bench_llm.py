"""Prefill and decode speed of an ANEMLL bundle: `candle-coreml chat` next to
Hugging Face transformers running the same model, in one run.

    python tools/bench_llm.py --bundle BUNDLE_DIR --hf HF_MODEL_DIR \
        [--binary target/release/candle-coreml] [--new-tokens 64] [--repeats 3] [--threads N]

candle-coreml: the release binary's one-shot `chat --raw --json --ignore-eos` (greedy,
portable backend unless --backend says otherwise) reports prefill and decode
tokens/s of the generation itself (model loading excluded); the median of
--repeats runs is taken.

transformers: the HF model (fp32, CPU, the model's default attention, torch's
default threads) fed the same prompt ids, split the same way: prefill is one
forward over all prompt tokens but the last, with a KV cache; decode is one
forward per generated token (the first one feeds the prompt's last token),
greedy. Median of --repeats runs after one warm-up.

Both sides see the same token counts and, with --threads N, the same number
of CPU threads (RAYON_NUM_THREADS for candle, torch.set_num_threads for
torch); on a busy machine one thread each gives steadier figures. The ratio
is candle-coreml / transformers.
Needs the tools venv with torch and transformers (tools/requirements-llm.txt).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

import torch
import transformers

PROMPT = (
    "The for statement is used to iterate over the elements of a sequence (such as a "
    "string, tuple or list) or other iterable object. The expression list is evaluated "
    "once; it should yield an iterable object. An iterator is created for the result of "
    "the expression list. The suite is then executed once for each item provided by the "
    "iterator, in the order returned by the iterator. Each item in turn is assigned to "
    "the target list using the standard rules for assignments, and then the suite is "
    "executed. When the items are exhausted, the suite in the else clause, if present, "
    "is executed, and the loop terminates."
)


def run_ours(args) -> dict:
    cmd = [args.binary, "chat", str(args.bundle), "--raw", "--prompt", args.prompt,
           "--max-tokens", str(args.new_tokens), "--ignore-eos", "--temperature", "0", "--json",
           "--backend", args.backend, "--device", args.device]
    env = dict(os.environ)
    if args.threads:
        env["RAYON_NUM_THREADS"] = str(args.threads)
    runs = []
    for _ in range(args.repeats):
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
        runs.append(json.loads(out))
    return {
        "prompt_ids": runs[0]["prompt_ids"],
        "generated": len(runs[0]["generated_ids"]),
        "prefill_tokens_per_s": statistics.median(r["prefill_tokens_per_s"] for r in runs),
        "decode_tokens_per_s": statistics.median(r["decode_tokens_per_s"] for r in runs),
        "ttft_ms": statistics.median(r["ttft_ms"] for r in runs),
    }


@torch.no_grad()
def run_transformers(model, ids: list[int], new_tokens: int) -> tuple[float, float]:
    x = torch.tensor([ids[:-1]])
    t0 = time.perf_counter()
    out = model(x, use_cache=True)
    t1 = time.perf_counter()
    past = out.past_key_values
    token = torch.tensor([[ids[-1]]])
    for _ in range(new_tokens):
        out = model(token, past_key_values=past, use_cache=True)
        past = out.past_key_values
        token = out.logits[:, -1:].argmax(-1)
    t2 = time.perf_counter()
    return (len(ids) - 1) / (t1 - t0), new_tokens / (t2 - t1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--hf", type=Path, required=True, help="the Hugging Face model folder")
    ap.add_argument("--binary", default="target/release/candle-coreml")
    ap.add_argument("--prompt", default=PROMPT)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backend", default="portable")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for both (0: each library's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    ours = run_ours(args)
    ids = ours["prompt_ids"]
    n = ours["generated"]
    model = transformers.AutoModelForCausalLM.from_pretrained(args.hf, dtype=torch.float32).eval()
    run_transformers(model, ids, n)  # warm-up
    theirs = [run_transformers(model, ids, n) for _ in range(args.repeats)]
    hf_prefill = statistics.median(t[0] for t in theirs)
    hf_decode = statistics.median(t[1] for t in theirs)
    report = {
        "bundle": str(args.bundle),
        "prompt_tokens": len(ids),
        "generated_tokens": n,
        "threads": args.threads or "default",
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "candle_coreml": {k: ours[k] for k in ("prefill_tokens_per_s", "decode_tokens_per_s", "ttft_ms")},
        "transformers": {"prefill_tokens_per_s": hf_prefill, "decode_tokens_per_s": hf_decode,
                         "version": transformers.__version__, "torch": torch.__version__},
        "ratio": {"prefill": ours["prefill_tokens_per_s"] / hf_prefill,
                  "decode": ours["decode_tokens_per_s"] / hf_decode},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
