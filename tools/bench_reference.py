"""PyTorch eager timings of the benchmark models, printed as `candle-coreml bench` prints them.

    tools/.venv/bin/python tools/bench_reference.py resnet18 [--dtype fp32] [--threads N] [--json]
    tools/.venv/bin/python tools/bench_reference.py qwen25-0.5b --dtype bf16 [--prompt-tokens 128]
        [--gen-tokens 64] [--threads N] [--json]

CNNs (resnet18, efficientnet_b0, mobilenet_v3_small, squeezenet1_1): the
torchvision model built by tools/bench_models.py, as tools/gen_bench_models.py builds it (same
seed, eval mode) run on the same [1, 3, 224, 224] input under
torch.inference_mode(); `load_ms` is the model construction. Keys: load_ms,
peak_rss_bytes, min_ms, median_ms, p90_ms, mean_ms.

qwen25-0.5b: transformers' Qwen2ForCausalLM with the Qwen2.5-0.5B geometry of
tools/gen_bench_bundle.py (random weights), in --dtype. One generation per
run, as `bench BUNDLE` measures it: prefill is one forward over all prompt
tokens but the last, with a KV cache; then one forward per generated token
(the first feeds the prompt's last token), greedy. Keys as `bench BUNDLE`:
load_ms, peak_rss_bytes, ttft_ms, prefill_tokens_per_s, decode_tokens_per_s,
and min_ms/median_ms/p90_ms of one decoding step. Medians over --iters runs.

--threads N calls torch.set_num_threads(N) (and set_num_interop_threads(1)),
the counterpart of `bench --threads N`.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_models  # noqa: E402

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kB


def latency(ms: list[float]) -> dict:
    s = sorted(ms)
    rank = max(1, -(-len(s) * 9 // 10))
    return {"min_ms": s[0], "median_ms": statistics.median(s), "p90_ms": s[rank - 1],
            "mean_ms": statistics.fmean(s)}


@torch.inference_mode()
def bench_cnn(name: str, dtype, warmup: int, iters: int) -> dict:
    import torchvision  # noqa: F401  (imported before the clock starts)

    t0 = time.perf_counter()
    model = bench_models.cnn_module(name).to(dtype)
    load_ms = (time.perf_counter() - t0) * 1e3
    x = bench_models.cnn_input().to(dtype)
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        model(x)
        times.append((time.perf_counter() - t) * 1e3)
    return {"model": name, "load_ms": load_ms, "iters": iters, "warmup": warmup,
            "peak_rss_bytes": peak_rss(), **latency(times)}


@torch.inference_mode()
def generate(model, ids: list[int], new_tokens: int) -> tuple[float, float, float, list[float]]:
    """(ttft s, prefill s, decode s, step ms) of one greedy generation."""
    t0 = time.perf_counter()
    out = model(torch.tensor([ids[:-1]]), use_cache=True)
    t1 = time.perf_counter()
    past = out.past_key_values
    token = torch.tensor([[ids[-1]]])
    steps = []
    first = None
    for _ in range(new_tokens):
        ts = time.perf_counter()
        out = model(token, past_key_values=past, use_cache=True)
        past = out.past_key_values
        token = out.logits[:, -1:].argmax(-1)
        te = time.perf_counter()
        steps.append((te - ts) * 1e3)
        first = first or te
    t2 = time.perf_counter()
    return first - t0, t1 - t0, t2 - t1, steps[1:]


def bench_llm(dtype, args) -> dict:
    import transformers

    import gen_bench_bundle

    t0 = time.perf_counter()
    cfg = gen_bench_bundle.qwen25_config(args.prompt_tokens + args.gen_tokens + 1)
    torch.manual_seed(gen_bench_bundle.SEED)
    model = transformers.Qwen2ForCausalLM(cfg).to(dtype).eval()
    load_ms = (time.perf_counter() - t0) * 1e3
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 2048, (args.prompt_tokens,), generator=g).tolist()
    for _ in range(args.warmup):
        generate(model, ids, args.gen_tokens)
    runs = [generate(model, ids, args.gen_tokens) for _ in range(args.iters)]
    steps = [s for r in runs for s in r[3]]
    n_prefill = len(ids) - 1
    return {
        "model": "qwen25-0.5b", "dtype": args.dtype, "load_ms": load_ms, "runs": args.iters,
        "prompt_tokens": len(ids), "generated_tokens": args.gen_tokens,
        "ttft_ms": statistics.median(r[0] * 1e3 for r in runs),
        "prefill_tokens_per_s": statistics.median(n_prefill / r[1] for r in runs),
        "decode_tokens_per_s": statistics.median(args.gen_tokens / r[2] for r in runs),
        "peak_rss_bytes": peak_rss(), **latency(steps),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a torchvision CNN name, or qwen25-0.5b")
    ap.add_argument("--dtype", choices=DTYPES, default="fp32")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=None, help="default 20 (CNN) or 3 (LLM)")
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        torch.set_num_interop_threads(1)
    dtype = DTYPES[args.dtype]
    if args.model == "qwen25-0.5b":
        args.iters = args.iters or 3
        args.warmup = min(args.warmup, 1)
        rep = bench_llm(dtype, args)
    else:
        rep = bench_cnn(args.model, dtype, args.warmup, args.iters or 20)
    rep.update({"dtype": args.dtype, "threads": torch.get_num_threads(),
                "torch": torch.__version__})
    if args.json:
        print(json.dumps(rep))
    else:
        for k, v in rep.items():
            print(f"{k:>22}: {v:.2f}" if isinstance(v, float) else f"{k:>22}: {v}")


if __name__ == "__main__":
    main()
