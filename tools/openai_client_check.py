#!/usr/bin/env python3
"""Checks `candle-coreml serve` with clients the project did not write: the
official `openai` Python package (chat and text completions, streamed and
not, models, errors, the prompt cache through `usage`) and
`prometheus_client`'s parser for /metrics.

Either start a server yourself and point the check at it:

    candle-coreml serve BUNDLE --port 8080 &
    tools/.venv-openai/bin/python tools/openai_client_check.py \\
        --base-url http://127.0.0.1:8080/v1 --model NAME

or let the check start (and stop, with SIGTERM) the built binary on a free
port, with an API key:

    tools/.venv-openai/bin/python tools/openai_client_check.py \\
        --binary target/release/candle-coreml \\
        --bundle crates/candle-coreml-llm/tests/fixtures/bundles/qwen3_035_1chunk_lut \\
        --reference crates/candle-coreml-llm/tests/fixtures/references/qwen3_035_1chunk_lut.json

With --reference (a transformers reference of the LLM fixtures), greedy
answers are compared with the reference's token ids.

Environment: python3 -m venv tools/.venv-openai &&
tools/.venv-openai/bin/pip install -r tools/requirements-openai.txt
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request

import openai
from prometheus_client.parser import text_string_to_metric_families


class Check:
    def __init__(self):
        self.failed = 0

    def __call__(self, name, ok, detail=""):
        print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f": {detail}" if detail and not ok else ""))
        if not ok:
            self.failed += 1


def start_server(binary, bundle, key):
    p = subprocess.Popen(
        [binary, "serve", bundle, "--port", "0", "--api-key", key, "--backend", "portable"],
        stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        sys.stderr.write("server: " + line)
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            # Keep draining stderr so the server never blocks on it.
            threading.Thread(target=lambda: [sys.stderr.write("server: " + l) for l in p.stderr],
                             daemon=True).start()
            return p, m.group(1)
    raise SystemExit(f"the server did not start (exit {p.wait()})")


def error_param(e):
    body = e.body if isinstance(e.body, dict) else {}
    return body.get("param", body.get("error", {}).get("param"))


def check_chat(c, client, model, reference):
    chat = next((x for x in (reference or {}).get("cases", []) if x["name"] == "chat"), None)
    messages = chat["messages"] if chat else [
        {"role": "system", "content": "You answer briefly."},
        {"role": "user", "content": "Say something about Python lists."}]
    extra = {"return_token_ids": True, "chat_template_kwargs": {"enable_thinking": False}}
    r = client.chat.completions.create(model=model, messages=messages, max_tokens=16,
                                       temperature=0, extra_body=extra)
    text = r.choices[0].message.content
    c("chat: a chat.completion with text", r.object == "chat.completion" and isinstance(text, str))
    c("chat: usage counts", r.usage.prompt_tokens > 0 and r.usage.completion_tokens == 16
      and r.usage.total_tokens == r.usage.prompt_tokens + 16, str(r.usage))
    c("chat: finish_reason length", r.choices[0].finish_reason == "length", r.choices[0].finish_reason)
    if chat:
        got = (r.choices[0].model_extra or {}).get("token_ids")
        c("chat: greedy ids equal the transformers reference", got == chat["greedy_ids"][:16],
          f"{got} vs {chat['greedy_ids'][:16]}")
    stream = client.chat.completions.create(
        model=model, messages=messages, max_tokens=16, temperature=0, stream=True,
        stream_options={"include_usage": True}, extra_body=extra)
    chunks = list(stream)
    streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    c("chat stream: same text as without streaming", streamed == text, f"{streamed!r} vs {text!r}")
    c("chat stream: role first, usage last",
      chunks[0].choices[0].delta.role == "assistant" and chunks[-1].usage is not None
      and chunks[-1].usage.completion_tokens == 16)
    # The next turn reuses the conversation's session.
    follow = messages + [{"role": "assistant", "content": text},
                         {"role": "user", "content": "And tuples?"}]
    r2 = client.chat.completions.create(model=model, messages=follow, max_tokens=8,
                                        temperature=0, extra_body=extra)
    cached = r2.usage.prompt_tokens_details.cached_tokens
    c("chat: the next turn's prompt comes from the cache", cached >= r.usage.prompt_tokens // 2,
      f"cached_tokens={cached} of {r2.usage.prompt_tokens}")


def check_completions(c, client, model, reference):
    raw = next((x for x in (reference or {}).get("cases", []) if x["name"] == "raw"), None)
    prompt = raw["text"] if raw else "The for statement is used to"
    r = client.completions.create(model=model, prompt=prompt, max_tokens=12, temperature=0,
                                  extra_body={"return_token_ids": True})
    c("completions: a text_completion", r.object == "text_completion" and isinstance(r.choices[0].text, str))
    if raw:
        got = (r.choices[0].model_extra or {}).get("token_ids")
        c("completions: greedy ids equal the transformers reference", got == raw["greedy_ids"][:12],
          f"{got} vs {raw['greedy_ids'][:12]}")
    s = client.completions.create(model=model, prompt=prompt, max_tokens=12, temperature=0, stream=True)
    streamed = "".join(ch.choices[0].text for ch in s if ch.choices)
    c("completions stream: same text", streamed == r.choices[0].text, f"{streamed!r} vs {r.choices[0].text!r}")
    seeded = [client.completions.create(model=model, prompt=prompt, max_tokens=12, temperature=0.8,
                                        top_p=0.9, seed=7, frequency_penalty=0.5).choices[0].text
              for _ in range(2)]
    c("completions: a seed repeats its sample", seeded[0] == seeded[1], str(seeded))


def check_errors(c, client, model, base_url, key):
    msgs = [{"role": "user", "content": "hi"}]
    cases = [
        ("unknown model", openai.NotFoundError, "model",
         lambda: client.chat.completions.create(model="gpt-4o", messages=msgs)),
        ("temperature of the wrong type", openai.BadRequestError, "temperature",
         lambda: client.chat.completions.create(model=model, messages=msgs, temperature="hot")),
        ("empty messages", openai.BadRequestError, "messages",
         lambda: client.chat.completions.create(model=model, messages=[])),
        ("unknown role", openai.BadRequestError, "messages[0].role",
         lambda: client.chat.completions.create(model=model, messages=[{"role": "wizard", "content": "x"}])),
        ("negative max_tokens", openai.BadRequestError, "max_tokens",
         lambda: client.chat.completions.create(model=model, messages=msgs, max_tokens=-1)),
        ("prompt over the context", openai.BadRequestError, "messages",
         lambda: client.chat.completions.create(model=model, messages=[{"role": "user", "content": "word " * 5000}])),
    ]
    for name, kind, param, call in cases:
        try:
            call()
            c(f"error: {name}", False, "no error")
        except kind as e:
            c(f"error: {name} -> {e.status_code}, param {param}", error_param(e) == param, str(e.body))
    if key:
        bad = openai.OpenAI(base_url=base_url, api_key=key + "x", max_retries=0)
        try:
            bad.models.list()
            c("error: wrong API key", False, "no error")
        except openai.AuthenticationError as e:
            c("error: wrong API key -> 401", e.status_code == 401)


def check_metrics(c, base_url, key):
    req = urllib.request.Request(base_url.rsplit("/v1", 1)[0] + "/metrics")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    text = urllib.request.urlopen(req).read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    c("metrics: prometheus_client parses /metrics", "candle_coreml_generated_tokens" in families,
      ", ".join(sorted(families)))
    cached = families.get("candle_coreml_cached_prompt_tokens")
    c("metrics: cached prompt tokens counted", cached is not None and cached.samples[0].value > 0)
    health = json.load(urllib.request.urlopen(base_url.rsplit("/v1", 1)[0] + "/health"))
    c("health: ok without a key", health.get("status") == "ok", str(health))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", help="http://HOST:PORT/v1 of a running server")
    ap.add_argument("--model", help="the served model name (default: the first of /v1/models)")
    ap.add_argument("--api-key", default=os.environ.get("CANDLE_COREML_API_KEY"))
    ap.add_argument("--binary", help="start this candle-coreml binary (with --bundle)")
    ap.add_argument("--bundle")
    ap.add_argument("--reference", help="transformers reference JSON of the bundle")
    a = ap.parse_args()
    proc = None
    key = a.api_key
    if a.binary:
        key = key or "check-key"
        proc, url = start_server(a.binary, a.bundle, key)
        a.base_url = url + "/v1"
    if not a.base_url:
        ap.error("give --base-url, or --binary and --bundle")
    reference = json.load(open(a.reference)) if a.reference else None
    client = openai.OpenAI(base_url=a.base_url, api_key=key or "none", max_retries=0)
    c = Check()
    models = client.models.list().data
    model = a.model or models[0].id
    c("models: list holds the model", any(m.id == model for m in models), str(models))
    c("models: retrieve", client.models.retrieve(model).id == model)
    check_chat(c, client, model, reference)
    check_completions(c, client, model, reference)
    check_errors(c, client, model, a.base_url, key)
    check_metrics(c, a.base_url, key)
    if proc:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        c("server: exits 0 on SIGTERM", code == 0, f"exit {code}")
    print(f"openai {openai.__version__}: {'all checks passed' if not c.failed else f'{c.failed} failed'}")
    sys.exit(1 if c.failed else 0)


if __name__ == "__main__":
    main()
