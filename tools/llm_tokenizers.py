"""Small tokenizers and chat templates for the LLM test bundles and the demo.

No Hugging Face hub here, so each family's tokenizer is trained with the
`tokenizers` package on offline text and written as `tokenizer.json` +
`tokenizer_config.json` (with a Jinja `chat_template` written for this
project in each family's documented prompt format):

- Qwen 3 / LLaMA 3: byte-level BPE (GPT-2 style byte alphabet, the family's
  split regex), with the family's real special tokens.
- Gemma 3: SentencePiece-style BPE (Metaspace `▁` for spaces, `<0xNN>` byte
  fallback tokens), `<bos>` added by the template.

Training text (`corpus_text`): the plain-text help topics that CPython ships
in its standard library (`pydoc_data.topics`, the text behind `help("if")`),
PSF License 2.0. It is part of every Python installation, so the tokenizers
are reproducible offline.
"""
from __future__ import annotations

import json
from pathlib import Path

from tokenizers import (Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors,
                        trainers)

QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# Jinja chat templates (written for this project; each family's turn format).
QWEN3_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- set content = message['content'] -%}"
    "{%- if '</think>' in content -%}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') -%}"
    "{%- endif -%}"
    "{{- '<|im_start|>assistant\\n' + content + '<|im_end|>\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}"
    "{{- '<think>\\n\\n</think>\\n\\n' -}}"
    "{%- endif -%}"
    "{%- endif -%}"
)

LLAMA3_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}"
    "{%- endif -%}"
)

GEMMA3_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- set ns = namespace(system='') -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "{%- set ns.system = message['content'] + '\\n\\n' -%}"
    "{%- else -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{- '<start_of_turn>' + role + '\\n' + ns.system + message['content'] | trim + '<end_of_turn>\\n' -}}"
    "{%- set ns.system = '' -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<start_of_turn>model\\n' -}}"
    "{%- endif -%}"
)

FAMILIES = {
    "qwen3": {
        "special": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        "added": ["<think>", "</think>"],   # added tokens, not special (as in Qwen 3)
        "config": {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                   "unk_token": None, "add_bos_token": False, "add_eos_token": False,
                   "tokenizer_class": "Qwen2Tokenizer"},
        "template": QWEN3_TEMPLATE,
    },
    "llama3": {
        "special": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                    "<|end_header_id|>", "<|eot_id|>"],
        "added": [],
        "config": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
                   "pad_token": "<|end_of_text|>", "unk_token": None,
                   "tokenizer_class": "PreTrainedTokenizerFast"},
        "template": LLAMA3_TEMPLATE,
    },
    "gemma3": {
        "special": ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"],
        "added": [],
        "config": {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>",
                   "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False,
                   "tokenizer_class": "GemmaTokenizerFast"},
        "template": GEMMA3_TEMPLATE,
    },
}


def corpus_text() -> list[str]:
    """CPython's shipped help topics (PSF-2.0), one paragraph per item, fixed order."""
    from pydoc_data.topics import topics
    out = []
    for key in sorted(topics):
        out.extend(p.strip() for p in topics[key].split("\n\n") if p.strip())
    return out


def _byte_level(vocab_size: int, split: str, special: list[str], texts) -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def _sentencepiece_style(vocab_size: int, special: list[str], texts) -> Tokenizer:
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse()])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special + byte_tokens,
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    # The trainer put the byte tokens into the vocabulary (ids right after the
    # specials); they must not stay "added tokens", or text like "<0x41>" would
    # match them literally.
    data = json.loads(tok.to_str())
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] not in byte_tokens]
    return Tokenizer.from_str(json.dumps(data))


def train(family: str, vocab_size: int, texts=None) -> Tokenizer:
    """A tokenizer of `family` ("qwen3", "llama3", "gemma3") with about `vocab_size` ids."""
    fam = FAMILIES[family]
    texts = corpus_text() if texts is None else texts
    if family == "gemma3":
        tok = _sentencepiece_style(vocab_size, fam["special"], texts)
    else:
        split = QWEN_SPLIT if family == "qwen3" else LLAMA3_SPLIT
        tok = _byte_level(vocab_size, split, fam["special"], texts)
    bos = fam["config"].get("bos_token")
    if bos is not None:  # LLaMA 3 and Gemma 3 tokenizers add their BOS to plain encodes
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))])
    if fam["added"]:
        from tokenizers import AddedToken
        tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in fam["added"]])
    return tok


def write(tok: Tokenizer, family: str, out_dir: Path, max_length: int) -> dict:
    """Writes tokenizer.json and tokenizer_config.json; returns special token ids."""
    fam = FAMILIES[family]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tokenizer.json").write_text(tok.to_str(pretty=True), encoding="utf-8")
    if family == "qwen3":  # Qwen ships vocab.json + merges.txt for its slow tokenizer class too
        tok.model.save(str(out_dir))
    decoder = {}
    for t in fam["special"] + fam["added"]:
        tid = tok.token_to_id(t)
        decoder[str(tid)] = {"content": t, "lstrip": False, "normalized": False,
                             "rstrip": False, "single_word": False,
                             "special": t in fam["special"]}
    cfg = dict(fam["config"])
    cfg.update({"added_tokens_decoder": decoder, "chat_template": fam["template"],
                "clean_up_tokenization_spaces": False, "model_max_length": max_length,
                "errors": "replace", "split_special_tokens": False})
    (out_dir / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n",
                                                   encoding="utf-8")
    return {t: tok.token_to_id(t) for t in fam["special"] + fam["added"]}
