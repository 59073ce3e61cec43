"""Trains the tiny demo chat model and converts it with ANEMLL 0.3.5 (issue 8).

    tools/.venv-llm/bin/python tools/train_demo.py --anemll tools/.anemll-0.3.5 \\
        [--minutes 10] [--work /tmp/demo-chat-work]

Text: documentation that ships with CPython itself (PSF License 2.0): the
docstrings of the builtins and of the methods of str, list and dict, and the
plain-text help topics of 18 statements (`pydoc_data.topics`, the text of
`help("for")`), plus three greetings. Each becomes a chat sample ("What
does str.split do?" -> the docstring's first sentences, at most 30 words),
in two phrasings, rendered with the LLaMA 3 chat
template of llm_tokenizers, so the template matters to the model. The loss
counts the answer tokens (and their `<|eot_id|>`) only.

Model: transformers LlamaForCausalLM, hidden 128, 2 layers, 4 heads (2 kv),
FFN 384, vocabulary 1024 (a byte-level BPE trained on the same text), for
a fixed wall-clock budget on CPU (AdamW, batches of 16 samples of similar
length). The point is a model that answers its known questions in
readable text, not a general one. Then ANEMLL 0.3.5's convert_model.sh
(context 512, batch 64, 6-bit LUT for FFN and head, 1 chunk) writes the
bundle to assets/demo-chat/, and a few answers are printed by transformers
running the bundle's own dequantized weights (greedy).
"""
from __future__ import annotations

import argparse
import inspect
import math
import random
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import anemll_convert  # noqa: E402
import llm_reference  # noqa: E402
import llm_tokenizers  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TYPES = [str, list]
QUESTIONS = ["What does {} do?", "Explain {}."]
TOPICS = ["for", "while", "if", "with", "try", "import", "return", "yield", "lambda", "class",
          "global", "nonlocal", "assert", "break", "continue", "pass", "raise", "del"]
TOPIC_QUESTIONS = ["What is the {} statement?", "Explain the {} statement."]
SYSTEMS = [None, "You are a helpful assistant."]
GREETINGS = [("Hello", "Hello! I am a tiny model trained on Python's documentation. "
              "Ask me what a built-in function or a statement does."),
             ("Hi", "Hi! Ask me about Python: a built-in function, a method or a statement."),
             ("Who are you?", "I am a tiny language model trained on Python's documentation. "
              "I can tell you what Python functions and statements do.")]
DEMO_PROMPTS = ["What does str.split do?", "Explain the for statement.",
                "What does len do?", "Hello", "What does sorted do?", "What does abs do?"]


def _first_paragraph(doc: str, limit: int = 30) -> str | None:
    paras = [" ".join(p.split()) for p in inspect.cleandoc(doc).split("\n\n")]
    for p in paras:
        # Skip signature lines ("split(sep=None)", "B.lower() -> copy of B") and grammar.
        head = p.split("(")[0]
        if (not p or "::=" in p or "->" in p[:80] or (p.endswith(")") and " " not in head)
                or len(p.split()) < 4):
            continue
        words = p.split()
        if len(words) > limit:  # whole sentences up to the limit
            cut = " ".join(words[:limit])
            return cut[:cut.rfind(". ") + 1] if ". " in cut else cut + " ..."
        return p
    return None


def qa_pairs() -> list[tuple[str, str]]:
    """(question, answer) pairs from CPython's own documentation, fixed order."""
    import builtins
    from pydoc_data.topics import topics
    out = []

    def add(name, doc):
        ans = _first_paragraph(doc or "")
        if ans and len(ans) > 20:
            out.extend((q.format(name), ans) for q in QUESTIONS)

    for name in sorted(dir(builtins)):
        obj = getattr(builtins, name)
        if not name.startswith("_") and callable(obj) and not name[0].isupper():
            add(name, obj.__doc__)
    for t in TYPES:
        for name in sorted(vars(t)):
            if not name.startswith("_"):
                add(f"{t.__name__}.{name}", getattr(t, name).__doc__)
    for key in TOPICS:
        text = topics[key].split("\n\n", 1)[-1]
        ans = _first_paragraph(text, 40)
        if ans:
            out.extend((q.format(key), ans) for q in TOPIC_QUESTIONS)
    for q, a in GREETINGS:
        out.extend([(q, a)] * 4)
    return out


def encode_samples(tok, pairs, rng, max_len):
    """Token ids and loss masks of each sample rendered with the chat template."""
    samples = []
    for q, a in pairs:
        system = rng.choice(SYSTEMS)
        msgs = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": q}]
        prompt = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        a_ids = tok(a, add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids("<|eot_id|>")]
        ids = (p_ids + a_ids)[:max_len]
        mask = ([0] * len(p_ids) + [1] * len(a_ids))[:max_len]
        samples.append((ids, mask))
    return samples


def train(model, samples, minutes, batch, pad_id, seed):
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.95), weight_decay=0.01)
    start, step, deadline = time.time(), 0, time.time() + minutes * 60
    est_steps = None
    model.train()
    while time.time() < deadline:
        # Neighbours in length order: little padding per batch.
        at = rng.randrange(0, max(1, len(samples) - batch))
        chunk = samples[at:at + batch]
        width = max(len(s[0]) for s in chunk)
        ids = torch.full((batch, width), pad_id)
        labels = torch.full((batch, width), -100)
        for i, (s, m) in enumerate(chunk):
            ids[i, :len(s)] = torch.tensor(s)
            labels[i, :len(s)] = torch.tensor([t if k else -100 for t, k in zip(s, m)])
        frac = (time.time() - start) / (minutes * 60)
        lr = 3e-3 * min(1.0, (step + 1) / 30) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 20 == 0:
            print(f"step {step} loss {loss.item():.3f} lr {lr:.2e} "
                  f"{time.time() - start:.0f}s", flush=True)
    model.eval()
    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--anemll", type=Path, required=True, help="ANEMLL 0.3.5 checkout")
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/demo-chat-work"))
    ap.add_argument("--out", type=Path, default=ROOT / "assets/demo-chat")
    args = ap.parse_args()
    torch.manual_seed(0)
    rng = random.Random(0)
    pairs = qa_pairs()
    print(f"{len(pairs)} chat samples", flush=True)
    texts = [q for q, _ in pairs] + [a for _, a in pairs]
    hf_dir = args.work / "demo-chat"
    tok_raw = llm_tokenizers.train("llama3", 1024, texts)
    llm_tokenizers.write(tok_raw, "llama3", hf_dir, 512)
    tok = llm_reference.tokenizer(hf_dir)
    samples = sorted(encode_samples(tok, pairs, rng, 128), key=lambda s: len(s[0]))
    import transformers
    vocab = -(-tok_raw.get_vocab_size() // 128) * 128
    cfg = transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=128, intermediate_size=384, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=512,
        rms_norm_eps=1e-5, rope_theta=10_000.0, tie_word_embeddings=False,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = transformers.LlamaForCausalLM(cfg)
    steps = train(model, samples, args.minutes, 16, tok.pad_token_id, 0)
    print(f"trained {steps} steps", flush=True)
    model.save_pretrained(hf_dir, safe_serialization=True)
    import json
    data = json.loads((hf_dir / "config.json").read_text())
    data["rope_theta"] = cfg.rope_theta
    (hf_dir / "config.json").write_text(json.dumps(data, indent=2) + "\n")

    out = args.work / "out"
    anemll_convert.convert(args.anemll.resolve(), hf_dir.resolve(), out.resolve(), context=512,
                           batch=64, chunks=1, lut=(None, 6, 6))
    if args.out.exists():
        shutil.rmtree(args.out)
    shutil.copytree(out, args.out)
    ref, _ = llm_reference.reference_model("llama3", hf_dir, args.out, model)
    btok = llm_reference.tokenizer(args.out)
    stops = llm_reference.stop_ids(btok)
    for prompt in DEMO_PROMPTS:
        ids = btok.apply_chat_template([{"role": "user", "content": prompt}],
                                       add_generation_prompt=True, tokenize=True)
        res = llm_reference.greedy(ref, list(ids), 80, stops)
        print(f"> {prompt}\n{btok.decode(res['greedy_ids'])}\n", flush=True)


if __name__ == "__main__":
    main()
