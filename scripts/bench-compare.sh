#!/usr/bin/env bash
# Runs `candle-coreml bench` and tools/bench_reference.py (PyTorch eager) on the
# benchmark models with the same thread counts and prints one table with the
# ratios (ours / PyTorch for latency, ours / PyTorch for tokens/s).
#
#   scripts/bench-compare.sh [--threads "1 2"] [--iters N] [--models "resnet18 ..."]
#                            [--bundle DIR] [--no-cnn] [--json-dir DIR]
#                            [--prompt-tokens N] [--gen-tokens N] [--llm-warmup N] [--llm-iters N]
#
# Needs: target/bench-models from tools/gen_bench_models.py (the CNNs) and, for
# the LLM rows, the bundle from tools/gen_bench_bundle.py (default
# target/bench-models/qwen25_0.5b_lut4); the release binary (built here with
# `cargo build --release -p candle-coreml-cli` when missing); the tools venv
# (PYTHON, default tools/.venv/bin/python) with torch, torchvision, transformers.
# Each JSON result is kept under --json-dir (default target/bench-results).
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS="1 2"
ITERS=20
MODELS="resnet18 efficientnet_b0 mobilenet_v3_small squeezenet1_1"
BUNDLE=target/bench-models/qwen25_0.5b_lut4
CNN=1
OUT=target/bench-results
PROMPT=128
GEN=64
LLM_WARMUP=3
LLM_ITERS=3
PYTHON=${PYTHON:-tools/.venv/bin/python}
BIN=${BIN:-target/release/candle-coreml}
while [ $# -gt 0 ]; do
    case "$1" in
        --threads) THREADS=$2; shift 2 ;;
        --iters) ITERS=$2; shift 2 ;;
        --models) MODELS=$2; shift 2 ;;
        --bundle) BUNDLE=$2; shift 2 ;;
        --no-cnn) CNN=0; shift ;;
        --json-dir) OUT=$2; shift 2 ;;
        --prompt-tokens) PROMPT=$2; shift 2 ;;
        --gen-tokens) GEN=$2; shift 2 ;;
        --llm-warmup) LLM_WARMUP=$2; shift 2 ;;
        --llm-iters) LLM_ITERS=$2; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -x "$BIN" ] || cargo build --release -p candle-coreml-cli
mkdir -p "$OUT"
M=target/bench-models
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

for t in $THREADS; do
    if [ "$CNN" = 1 ]; then
        for m in $MODELS; do
            for p in fp32 fp16; do
                echo "bench $m $p, $t threads" >&2
                "$BIN" bench "$M/${m}_$p.mlpackage" --inputs-npz "$M/$m.npz" --threads "$t" \
                    --iters "$ITERS" --json > "$OUT/ours_${m}_${p}_t$t.json"
            done
            echo "torch $m, $t threads" >&2
            "$PYTHON" tools/bench_reference.py "$m" --threads "$t" --iters "$ITERS" --json \
                > "$OUT/torch_${m}_fp32_t$t.json"
        done
    fi
    if [ -d "$BUNDLE" ]; then
        echo "bench bundle, $t threads" >&2
        LLM_ARGS=(--threads "$t" --prompt-tokens "$PROMPT" --gen-tokens "$GEN"
                  --warmup "$LLM_WARMUP" --iters "$LLM_ITERS" --json)
        "$BIN" bench "$BUNDLE" "${LLM_ARGS[@]}" > "$OUT/ours_llm_t$t.json"
        for d in fp32 bf16 fp16; do
            echo "torch qwen25-0.5b $d, $t threads" >&2
            "$PYTHON" tools/bench_reference.py qwen25-0.5b --dtype "$d" "${LLM_ARGS[@]}" \
                > "$OUT/torch_llm_${d}_t$t.json"
        done
    fi
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

"$PYTHON" - "$OUT" "$THREADS" "$MODELS" "$CNN" <<'EOF'
import json, sys
from pathlib import Path

out, threads, models, cnn = Path(sys.argv[1]), sys.argv[2].split(), sys.argv[3].split(), sys.argv[4] == "1"
load = lambda n: json.loads((out / n).read_text()) if (out / n).exists() else None
if cnn:
    print("| model | threads | ours fp32 (ms) | ours fp16 (ms) | PyTorch fp32 (ms) | ratio fp32 | ratio fp16 |")
    print("|---|---|---|---|---|---|---|")
    for t in threads:
        for m in models:
            a, b, r = load(f"ours_{m}_fp32_t{t}.json"), load(f"ours_{m}_fp16_t{t}.json"), load(f"torch_{m}_fp32_t{t}.json")
            if not (a and b and r):
                continue
            print(f"| {m} | {t} | {a['median_ms']:.2f} (min {a['min_ms']:.2f}) | {b['median_ms']:.2f} "
                  f"| {r['median_ms']:.2f} (min {r['min_ms']:.2f}) | {a['median_ms'] / r['median_ms']:.2f}x "
                  f"| {b['median_ms'] / r['median_ms']:.2f}x |")
rows = []
for t in threads:
    o = load(f"ours_llm_t{t}.json")
    refs = {d: load(f"torch_llm_{d}_t{t}.json") for d in ("fp32", "bf16", "fp16")}
    refs = {d: r for d, r in refs.items() if r}
    if not (o and refs):
        continue
    best = max(refs, key=lambda d: refs[d]["decode_tokens_per_s"])
    bp = max(refs, key=lambda d: refs[d]["prefill_tokens_per_s"])
    rows.append((t, o, refs, best, bp))
if rows:
    print()
    print("| threads | decode ours (tok/s) | decode PyTorch best (tok/s) | ratio | floor (tok/s) | of floor "
          "| prefill ours | prefill PyTorch best | ratio | ttft ours (ms) | peak RSS / model bytes | load (ms) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for t, o, refs, best, bp in rows:
        r, rp = refs[best], refs[bp]
        print(f"| {t} | {o['decode_tokens_per_s']:.2f} | {r['decode_tokens_per_s']:.2f} ({best}) "
              f"| {o['decode_tokens_per_s'] / r['decode_tokens_per_s']:.2f}x | {o['decode_floor_tokens_per_s']:.1f} "
              f"| {100 * o['decode_of_floor']:.0f}% | {o['prefill_tokens_per_s']:.1f} "
              f"| {rp['prefill_tokens_per_s']:.1f} ({bp}) | {o['prefill_tokens_per_s'] / rp['prefill_tokens_per_s']:.2f}x "
              f"| {o['ttft_ms']:.0f} | {o['peak_rss_bytes'] / o['model_bytes']:.2f} | {o['load_ms']:.0f} |")
    for t, o, refs, best, bp in rows:
        print(f"threads {t}: PyTorch decode tok/s " + ", ".join(
            f"{d} {r['decode_tokens_per_s']:.2f}" for d, r in refs.items()))
EOF
