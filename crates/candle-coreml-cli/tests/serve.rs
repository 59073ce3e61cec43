//! `candle-coreml serve` as a process on a loopback port: answers checked
//! against the transformers references of the LLM fixture bundles, the
//! prompt cache, bad input and the API key.

mod server;

use serde_json::{json, Value};
use server::{case, get, ids, joined, post, post_raw, Server, Stream, BUNDLE};

/// The chat request of a reference case, greedy, with token ids back.
fn chat_body(c: &Value, max_tokens: usize) -> Value {
    let mut body = json!({
        "model": BUNDLE,
        "messages": c["messages"],
        "temperature": 0,
        "max_tokens": max_tokens,
        "return_token_ids": true,
    });
    if let Some(t) = c["template_kwargs"]["enable_thinking"].as_bool() {
        body["chat_template_kwargs"] = json!({"enable_thinking": t});
    }
    body
}

#[test]
fn chat_and_completions_match_the_reference() {
    let s = Server::start(BUNDLE, &[]);
    let chat = case(BUNDLE, "chat");
    let greedy = ids(&chat["greedy_ids"]);
    let a = post(&s.url("/v1/chat/completions"), &chat_body(&chat, 32));
    assert_eq!(a.status, 200, "{}", a.body);
    let b = &a.body;
    assert_eq!(b["object"], "chat.completion");
    assert_eq!(b["model"], BUNDLE);
    assert_eq!(ids(&b["prompt_token_ids"]), ids(&chat["prompt_ids"]));
    assert_eq!(ids(&b["choices"][0]["token_ids"]), greedy);
    assert_eq!(b["choices"][0]["finish_reason"], "length");
    assert_eq!(b["choices"][0]["message"]["role"], "assistant");
    let text = b["choices"][0]["message"]["content"].as_str().unwrap();
    // The reference's next turn quotes transformers' decoding of the answer.
    let turn = case(BUNDLE, "multi_turn");
    assert_eq!(text, turn["messages"][2]["content"].as_str().unwrap());
    let u = &b["usage"];
    assert_eq!(
        u["prompt_tokens"],
        chat["prompt_ids"].as_array().unwrap().len()
    );
    assert_eq!(u["completion_tokens"], 32);
    assert_eq!(u["total_tokens"], u["prompt_tokens"].as_u64().unwrap() + 32);

    // The same streamed: the same ids and text, then the usage, then [DONE].
    let mut body = chat_body(&chat, 32);
    body["stream_options"] = json!({"include_usage": true});
    let mut st = Stream::open(&s.url("/v1/chat/completions"), &body);
    let events = st.rest();
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(events
        .iter()
        .all(|e| e["object"] == "chat.completion.chunk"));
    let (streamed, streamed_ids) = joined(&events);
    assert_eq!(streamed, text);
    assert_eq!(streamed_ids, greedy);
    let n = events.len();
    assert_eq!(events[n - 2]["choices"][0]["finish_reason"], "length");
    assert_eq!(events[n - 1]["choices"], json!([]));
    assert_eq!(events[n - 1]["usage"]["completion_tokens"], 32);

    // Completions tokenize the prompt as given (special tokens, no template).
    let raw = case(BUNDLE, "raw");
    let body = json!({"model": BUNDLE, "prompt": raw["text"], "max_tokens": 32,
        "temperature": 0, "return_token_ids": true});
    let a = post(&s.url("/v1/completions"), &body);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["object"], "text_completion");
    assert_eq!(ids(&a.body["prompt_token_ids"]), ids(&raw["prompt_ids"]));
    assert_eq!(
        ids(&a.body["choices"][0]["token_ids"]),
        ids(&raw["greedy_ids"])
    );
    let text = a.body["choices"][0]["text"].as_str().unwrap().to_string();
    let mut st = Stream::open(&s.url("/v1/completions"), &body);
    let (streamed, streamed_ids) = joined(&st.rest());
    assert_eq!(
        (streamed, streamed_ids),
        (text.clone(), ids(&raw["greedy_ids"]))
    );
    stop_seed_and_defaults(&s, &raw, &text);
}

/// A stop string ends the text before it; a seed repeats a sample (at a
/// temperature that flattens the tiny model's peaked logits);
/// completions default to 16 tokens.
fn stop_seed_and_defaults(s: &Server, raw: &Value, greedy_text: &str) {
    let url = s.url("/v1/completions");
    // A stop string from the middle of the greedy answer.
    let (cut, _) = greedy_text
        .char_indices()
        .nth(greedy_text.chars().count() / 2)
        .unwrap();
    let stop = &greedy_text[cut..(cut + 3).min(greedy_text.len())];
    let want = &greedy_text[..greedy_text.find(stop).unwrap()];
    let body = json!({"model": BUNDLE, "prompt": raw["text"], "max_tokens": 32,
        "temperature": 0, "stop": [stop]});
    let a = post(&url, &body);
    assert_eq!(a.body["choices"][0]["text"], want, "stop {stop:?}");
    assert_eq!(a.body["choices"][0]["finish_reason"], "stop");
    let sample = |seed: u64| {
        let body = json!({"model": BUNDLE, "prompt": raw["text"], "temperature": 10.0,
            "seed": seed, "return_token_ids": true});
        let a = post(&url, &body);
        assert_eq!(a.status, 200, "{}", a.body);
        ids(&a.body["choices"][0]["token_ids"])
    };
    let (a, b, c) = (sample(7), sample(7), sample(8));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.len(), 16);
}

/// Through the chat endpoint: the conversation rendered again reuses the
/// session holding `held` as far as the template renders it as before (Qwen
/// 3 drops the empty think block of an earlier answer), and answers as the
/// reference does.
fn chat_turn_reuses_the_session(s: &Server, held: &[u32]) {
    let turn = case(BUNDLE, "multi_turn");
    let third = post(&s.url("/v1/chat/completions"), &chat_body(&turn, 32));
    assert_eq!(third.status, 200, "{}", third.body);
    let shared = held
        .iter()
        .zip(&ids(&turn["prompt_ids"]))
        .take_while(|(a, b)| a == b)
        .count();
    assert!(shared > 0);
    assert_eq!(
        third.body["usage"]["prompt_tokens_details"]["cached_tokens"],
        shared
    );
    assert_eq!(
        ids(&third.body["choices"][0]["token_ids"]),
        ids(&turn["greedy_ids"])
    );
}

/// A request that extends an earlier conversation gets its session and
/// prefills only the new tokens; the answer is still the reference's.
#[test]
fn a_request_extending_an_earlier_one_prefills_only_its_new_tokens() {
    let s = Server::start(BUNDLE, &["--max-sessions", "2"]);
    let url = s.url("/v1/completions");
    let chat = case(BUNDLE, "chat");
    let first = post(
        &url,
        &json!({"model": BUNDLE, "prompt": chat["prompt_ids"], "max_tokens": 32,
            "temperature": 0, "return_token_ids": true}),
    );
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(
        first.body["usage"]["prompt_tokens_details"]["cached_tokens"],
        0
    );
    assert_eq!(
        ids(&first.body["choices"][0]["token_ids"]),
        ids(&chat["greedy_ids"])
    );

    // An unrelated request in between takes the other session.
    let raw = case(BUNDLE, "raw_window_aligned");
    let other = post(
        &url,
        &json!({"model": BUNDLE, "prompt": raw["prompt_ids"], "max_tokens": 4, "temperature": 0}),
    );
    assert_eq!(other.status, 200);
    assert_eq!(
        other.body["usage"]["prompt_tokens_details"]["cached_tokens"],
        0
    );

    // The reference's continuation: chat prompt + answer + the next turn.
    let next = case(BUNDLE, "multi_turn_continued");
    let prompt = ids(&next["prompt_ids"]);
    let append = ids(&next["append_ids"]);
    let prefill_before = s.metric(None, "candle_coreml_prefill_tokens_total");
    let second = post(
        &url,
        &json!({"model": BUNDLE, "prompt": prompt, "max_tokens": 32, "temperature": 0,
            "return_token_ids": true}),
    );
    assert_eq!(second.status, 200, "{}", second.body);
    // Every token of the first exchange but its last answer token (never
    // fed: generation stopped after sampling it) is in the state.
    let cached = prompt.len() - append.len() - 1;
    assert_eq!(
        second.body["usage"]["prompt_tokens_details"]["cached_tokens"],
        cached
    );
    assert_eq!(second.body["timings"]["cache_n"], cached);
    assert_eq!(second.body["timings"]["prompt_n"], append.len() + 1);
    let prefilled = s.metric(None, "candle_coreml_prefill_tokens_total") - prefill_before;
    // The new tokens but the last, which goes through the first decoding step.
    assert_eq!(prefilled as usize, append.len());
    assert_eq!(
        ids(&second.body["choices"][0]["token_ids"]),
        ids(&next["greedy_ids"])
    );

    chat_turn_reuses_the_session(&s, &prompt);
    assert!(s.metric(None, "candle_coreml_cached_prompt_tokens_total") > 0.0);
    assert_eq!(s.metric(None, "candle_coreml_sessions_created"), 2.0);
}

fn error_param(a: &server::Answer) -> Option<String> {
    let e = &a.body["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        a.body
    );
    assert!(e["type"].is_string(), "{}", a.body);
    e["param"].as_str().map(str::to_string)
}

/// A chat body with `field` set to `v` (`null`: left out).
fn chat_with(field: &str, v: Value) -> String {
    let mut b = json!({"model": BUNDLE, "messages": [{"role": "user", "content": "hi"}]});
    match v {
        Value::Null => b.as_object_mut().unwrap().remove(field),
        v => b.as_object_mut().unwrap().insert(field.into(), v),
    };
    b.to_string()
}

/// A completions body with `prompt`.
fn prompt(p: Value) -> String {
    json!({"model": BUNDLE, "prompt": p}).to_string()
}

#[test]
fn bad_input_gets_an_openai_error_naming_the_field() {
    let s = Server::start(BUNDLE, &["--body-limit", "65536"]);
    let (chat, completions) = (s.url("/v1/chat/completions"), s.url("/v1/completions"));
    let long = "word ".repeat(400);
    let user = |c: Value| json!([{"role": "user", "content": c}]);
    let wizard = json!([{"role": "wizard", "content": "hi"}]);
    // (endpoint, body, status, param)
    #[rustfmt::skip]
    let cases: Vec<(&str, String, u16, Option<&str>)> = vec![
        (&chat, "{\"model\": ".into(), 400, None),
        (&chat, "[]".into(), 400, None),
        (&chat, chat_with("temperature", json!("hot")), 400, Some("temperature")),
        (&chat, chat_with("messages", json!("hi")), 400, Some("messages")),
        (&chat, chat_with("messages", user(json!(5))), 400, Some("messages[0].content")),
        (&chat, chat_with("model", json!("gpt-4o")), 404, Some("model")),
        (&chat, chat_with("model", Value::Null), 400, Some("model")),
        (&chat, chat_with("messages", json!([])), 400, Some("messages")),
        (&chat, chat_with("messages", user(json!(long))), 400, Some("messages")),
        (&chat, chat_with("max_tokens", json!(-1)), 400, Some("max_tokens")),
        (&chat, chat_with("max_tokens", json!(1u64 << 40)), 400, Some("max_tokens")),
        (&chat, chat_with("max_completion_tokens", json!(0)), 400, Some("max_completion_tokens")),
        (&chat, chat_with("messages", wizard), 400, Some("messages[0].role")),
        (&chat, chat_with("top_p", json!(1.5)), 400, Some("top_p")),
        (&chat, chat_with("n", json!(3)), 400, Some("n")),
        (&chat, chat_with("x", json!("y".repeat(70_000))), 413, None),
        (&completions, prompt(Value::Null), 400, Some("prompt")),
        (&completions, prompt(json!("")), 400, Some("prompt")),
        (&completions, prompt(json!([1, 99999])), 400, Some("prompt")),
        (&completions, prompt(json!(["a", "b"])), 400, Some("prompt")),
        (&completions, prompt(json!(long.repeat(2))), 400, Some("prompt")),
    ];
    for (url, body, status, param) in &cases {
        let a = post_raw(url, body, None);
        let shown = &body[..body.len().min(120)];
        assert_eq!(a.status, *status, "{shown}: {}", a.body);
        assert_eq!(error_param(&a).as_deref(), *param, "{shown}: {}", a.body);
    }
    let too_long = post_raw(&chat, &cases[8].1, None);
    assert_eq!(too_long.body["error"]["code"], "context_length_exceeded");
    let missing = get(&s.url("/v1/nothing"), None);
    assert_eq!(missing.status, 404);
    error_param(&missing);
    let wrong_method = get(&chat, None);
    assert_eq!(wrong_method.status, 405);
    error_param(&wrong_method);
    // Still serving.
    let ok = post_raw(&chat, &chat_with("max_tokens", json!(2)), None);
    assert_eq!(ok.status, 200, "{}", ok.body);
    let route = "candle_coreml_requests_total{route=\"/v1/chat/completions\",status=\"400\"}";
    assert!(s.metric(None, route) >= 12.0);
}

#[test]
fn api_key_guards_v1_and_metrics_but_not_health() {
    let key = "s3cret-key";
    let s = Server::start(BUNDLE, &["--api-key", key]);
    assert_eq!(get(&s.url("/health"), None).status, 200);
    for path in ["/v1/models", "/metrics"] {
        let a = get(&s.url(path), None);
        assert_eq!(a.status, 401, "{path}");
        assert_eq!(a.body["error"]["type"], "authentication_error");
        assert_eq!(get(&s.url(path), Some("s3cret-kez")).status, 401, "{path}");
        assert_eq!(get(&s.url(path), Some("s3cret")).status, 401, "{path}");
    }
    let models = get(&s.url("/v1/models"), Some(key));
    assert_eq!(models.status, 200);
    assert_eq!(models.body["data"][0]["id"], BUNDLE);
    let body =
        json!({"model": BUNDLE, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
            .to_string();
    let url = s.url("/v1/chat/completions");
    assert_eq!(post_raw(&url, &body, None).status, 401);
    assert_eq!(post_raw(&url, &body, Some(key)).status, 200);
    assert_eq!(
        s.metric(
            Some(key),
            "candle_coreml_generations_total{reason=\"max_tokens\"}"
        ),
        1.0
    );

    // Without --api-key, no key is needed.
    let open = Server::start(BUNDLE, &[]);
    assert_eq!(get(&open.url("/v1/models"), None).status, 200);
    assert_eq!(
        post_raw(&open.url("/v1/chat/completions"), &body, None).status,
        200
    );
}
