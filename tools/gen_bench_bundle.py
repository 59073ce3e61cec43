"""A Qwen2.5-0.5B-shaped ANEMLL bundle with random weights, for `candle-coreml bench` (issue 14).

    tools/.venv-llm/bin/python tools/gen_bench_bundle.py --anemll tools/.anemll-0.3.5 \\
        [--out target/bench-models/qwen25_0.5b_lut4] [--work target/bench-models/work] \\
        [--context 512] [--batch 64] [--chunks 2]

Geometry of Qwen2.5-0.5B (hidden 896, 24 layers, 14 heads, 2 KV heads, head
dim 64, FFN 4864, vocabulary 151936, q/k/v biases), random weights with a
fixed seed, untied embeddings and LM head. The Hugging Face folder is written
in fp16 with a small trained Qwen-style tokenizer (llm_tokenizers; its ids
are all below the model's vocabulary), then ANEMLL's own converter
(anemll_convert, run from the checkout given by --anemll, never installed)
turns it into a bundle in ANEMLL's layout: fp16 embeddings, FFN in 4-bit LUT,
LM head in 6-bit LUT (ANEMLL's defaults, k-means per group of 8 channels).
The k-means palettization of 0.5B weights takes a long time on few cores
(hours on 2): run it niced in the background. The bundle (~560 MB) is not
committed; the Hugging Face folder is deleted afterwards unless --keep-hf.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent))
import anemll_convert  # noqa: E402
import llm_tokenizers  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
QWEN25_05B = dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14,
                  num_key_value_heads=2, intermediate_size=4864, vocab_size=151936)
SEED = 14


def qwen25_config(context: int, ids: dict | None = None) -> transformers.Qwen2Config:
    """The Qwen2.5-0.5B geometry (head dim 896/14 = 64) as a transformers config."""
    ids = ids or {}
    return transformers.Qwen2Config(
        **QWEN25_05B, max_position_embeddings=max(context, 32768), rms_norm_eps=1e-6,
        rope_theta=1_000_000.0, hidden_act="silu", tie_word_embeddings=False,
        use_sliding_window=False, bos_token_id=ids.get("<|endoftext|>"),
        eos_token_id=ids.get("<|im_end|>"), pad_token_id=ids.get("<|endoftext|>"),
        torch_dtype="float16")


def randomize(model: torch.nn.Module, seed: int = SEED) -> None:
    """N(0, 1/fan_in) matrices, small biases, norm weights near 1 (keeps fp16 finite)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("bias"):
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
            elif p.ndim == 1:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5)


def build_hf(out_dir: Path, context: int) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    fam = llm_tokenizers.FAMILIES["qwen3"]
    tok = llm_tokenizers.train("qwen3", 2048 - len(fam["added"]))
    ids = llm_tokenizers.write(tok, "qwen3", out_dir, context)
    cfg = qwen25_config(context, ids)
    torch.manual_seed(SEED)
    model = transformers.Qwen2ForCausalLM(cfg).eval()
    randomize(model)
    model = model.to(torch.float16)
    model.save_pretrained(out_dir, safe_serialization=True)
    data = json.loads((out_dir / "config.json").read_text())
    data["rope_theta"] = cfg.rope_theta  # ANEMLL reads it from the top level
    (out_dir / "config.json").write_text(json.dumps(data, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--anemll", type=Path, required=True, help="ANEMLL 0.3.5 checkout")
    ap.add_argument("--out", type=Path, default=ROOT / "target/bench-models/qwen25_0.5b_lut4")
    ap.add_argument("--work", type=Path, default=ROOT / "target/bench-models/work")
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--chunks", type=int, default=2)
    ap.add_argument("--keep-hf", action="store_true")
    ap.add_argument("--resume-step", type=int, default=1,
                    help="resume an interrupted conversion at this step of ANEMLL's script "
                         "(its log names the last step started)")
    args = ap.parse_args()

    hf = args.work / "qwen25_0.5b_hf"
    t0 = time.time()
    if not (hf / "model.safetensors").exists():
        build_hf(hf, args.context)
        print(f"Hugging Face folder {hf} ({time.time() - t0:.0f} s)", flush=True)
    log = anemll_convert.convert(args.anemll, hf, args.out, context=args.context,
                                 batch=args.batch, chunks=args.chunks, lut=(None, 4, 6),
                                 restart=args.resume_step)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"bundle {args.out}: {size / 1e6:.0f} MB in {time.time() - t0:.0f} s (log {log})")
    if not args.keep_hf:
        shutil.rmtree(hf)


if __name__ == "__main__":
    main()
