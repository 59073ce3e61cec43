//! Request bodies of `/v1/chat/completions` and `/v1/completions`, checked
//! and turned into a prompt and generation settings. Every error names the
//! field at fault.

use candle_coreml_llm::{GenerateParams, Message, Prompt, SamplingParams};
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;

/// The fields of both endpoints (each endpoint reads its own); unknown
/// fields are ignored, as most OpenAI-compatible servers do.
#[derive(Debug, Default, Deserialize)]
pub struct Request {
    /// The served model's name.
    pub model: Option<String>,
    /// Chat messages.
    pub messages: Option<Vec<MessageIn>>,
    /// Completion prompt: a string, token ids, or a one-element array of either.
    pub prompt: Option<Value>,
    /// Stream server-sent events.
    pub stream: Option<bool>,
    /// `include_usage`: a last chunk with the token counts.
    pub stream_options: Option<StreamOptions>,
    /// Most tokens to generate (older name).
    pub max_tokens: Option<i64>,
    /// Most tokens to generate.
    pub max_completion_tokens: Option<i64>,
    /// Sampling temperature (0: greedy).
    pub temperature: Option<f64>,
    /// Nucleus mass.
    pub top_p: Option<f64>,
    /// Keep the k most likely tokens (0 or -1: off).
    pub top_k: Option<i64>,
    /// Minimum probability relative to the most likely token.
    pub min_p: Option<f64>,
    /// Seed of the draw.
    pub seed: Option<i64>,
    /// Stop strings: one string or an array of them.
    pub stop: Option<Value>,
    /// OpenAI's additive frequency penalty.
    pub frequency_penalty: Option<f64>,
    /// OpenAI's additive presence penalty.
    pub presence_penalty: Option<f64>,
    /// Multiplicative repetition penalty (transformers' definition).
    pub repetition_penalty: Option<f64>,
    /// Number of choices (only 1).
    pub n: Option<i64>,
    /// Log-probabilities (not supported).
    pub logprobs: Option<Value>,
    /// Tools (not supported).
    pub tools: Option<Value>,
    /// Completions: echo the prompt (not supported).
    pub echo: Option<bool>,
    /// Completions: text after the insertion point (not supported).
    pub suffix: Option<Value>,
    /// Completions: server-side best-of (only 1).
    pub best_of: Option<i64>,
    /// Chat-template variables (`enable_thinking`...), as vLLM takes them.
    pub chat_template_kwargs: Option<serde_json::Map<String, Value>>,
    /// Go on past end tokens (vLLM's extension).
    pub ignore_eos: Option<bool>,
    /// Return token ids with the text (vLLM's extension).
    pub return_token_ids: Option<bool>,
}

/// One chat message as sent.
#[derive(Debug, Deserialize)]
pub struct MessageIn {
    /// `system`, `developer`, `user` or `assistant`.
    pub role: Option<String>,
    /// A string, an array of text parts, or null (assistant only).
    #[serde(default)]
    pub content: Value,
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with `usage`.
    pub include_usage: Option<bool>,
}

/// What a request asks for, checked.
#[derive(Debug)]
pub struct Plan {
    /// The prompt.
    pub prompt: Prompt,
    /// The request field holding it (`messages` or `prompt`), for errors.
    pub prompt_param: &'static str,
    /// Generation settings; `max_tokens` is set later, from the context.
    pub params: GenerateParams,
    /// The requested token limit and the field that gave it.
    pub max_tokens: Option<(usize, &'static str)>,
    /// Stream server-sent events.
    pub stream: bool,
    /// Streaming: a last chunk with usage.
    pub include_usage: bool,
    /// Return token ids (vLLM's `return_token_ids`).
    pub return_token_ids: bool,
}

/// Parses a body: malformed JSON and wrong types become 400s naming the
/// place or the field.
pub fn parse(body: &[u8]) -> Result<Request, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("The request body is not valid JSON: {e}"))
            .with_code("invalid_json")
    })?;
    if !value.is_object() {
        return Err(
            ApiError::bad_request("The request body must be a JSON object.")
                .with_code("invalid_json"),
        );
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ApiError::invalid(
            path.clone(),
            format!("Invalid type for '{path}': {}.", e.inner()),
        )
        .with_code("invalid_type")
    })
}

/// Checks `model` against the served name.
pub fn check_model(req: &Request, served: &str) -> Result<(), ApiError> {
    match &req.model {
        None => Err(ApiError::invalid(
            "model",
            "You must provide a model parameter.",
        )),
        Some(m) if m != served => Err(ApiError::model_not_found(m, served)),
        Some(_) => Ok(()),
    }
}

/// A chat request's plan.
pub fn chat_plan(req: &Request, sampling: SamplingParams) -> Result<Plan, ApiError> {
    let messages = req
        .messages
        .as_ref()
        .ok_or_else(|| ApiError::invalid("messages", "'messages' is required."))?;
    if messages.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "'messages' must hold at least one message.",
        ));
    }
    let messages = messages
        .iter()
        .enumerate()
        .map(|(i, m)| message(i, m))
        .collect::<Result<Vec<_>, _>>()?;
    if req.logprobs.as_ref().is_some_and(truthy) {
        return Err(unsupported("logprobs", "Log-probabilities are"));
    }
    if req
        .tools
        .as_ref()
        .is_some_and(|t| t.as_array().is_none_or(|a| !a.is_empty()) && !t.is_null())
    {
        return Err(unsupported("tools", "Tool calls are"));
    }
    plan(req, sampling, Prompt::Chat(messages), "messages")
}

/// A completion request's plan: the prompt is tokenized as given.
pub fn completion_plan(req: &Request, sampling: SamplingParams) -> Result<Plan, ApiError> {
    let prompt = completion_prompt(
        req.prompt
            .as_ref()
            .ok_or_else(|| ApiError::invalid("prompt", "'prompt' is required."))?,
    )?;
    if req.echo == Some(true) {
        return Err(unsupported("echo", "Echoing the prompt is"));
    }
    if req
        .suffix
        .as_ref()
        .is_some_and(|s| !s.is_null() && s.as_str() != Some(""))
    {
        return Err(unsupported("suffix", "A suffix is"));
    }
    if req.best_of.is_some_and(|b| b != 1) {
        return Err(ApiError::invalid("best_of", "Only best_of=1 is supported."));
    }
    if req.logprobs.as_ref().is_some_and(truthy) {
        return Err(unsupported("logprobs", "Log-probabilities are"));
    }
    plan(req, sampling, prompt, "prompt")
}

fn unsupported(param: &str, what: &str) -> ApiError {
    ApiError::invalid(param, format!("{what} not supported by this server."))
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => false,
        Value::Number(n) => n.as_f64() != Some(0.0),
        _ => true,
    }
}

fn message(i: usize, m: &MessageIn) -> Result<Message, ApiError> {
    let at = |f: &str| format!("messages[{i}].{f}");
    let role = match m.role.as_deref() {
        None => {
            return Err(ApiError::invalid(
                at("role"),
                "Each message needs a 'role'.",
            ))
        }
        Some("developer") => "system",
        Some(r @ ("system" | "user" | "assistant")) => r,
        Some(other) => {
            return Err(ApiError::invalid(
                at("role"),
                format!("Unknown role '{other}' (expected system, developer, user or assistant)."),
            ))
        }
    };
    let content = match &m.content {
        Value::String(s) => s.clone(),
        Value::Null if role == "assistant" => String::new(),
        Value::Array(parts) => text_parts(i, parts)?,
        _ => {
            return Err(ApiError::invalid(
                at("content"),
                "'content' must be a string or an array of text parts.",
            ))
        }
    };
    Ok(Message::new(role, content))
}

/// The text of `[{"type": "text", "text": ...}, ...]`, parts joined by newlines.
fn text_parts(i: usize, parts: &[Value]) -> Result<String, ApiError> {
    let mut texts = vec![];
    for (j, p) in parts.iter().enumerate() {
        let at = format!("messages[{i}].content[{j}]");
        match (p.get("type").and_then(Value::as_str), p.get("text")) {
            (Some("text"), Some(Value::String(t))) => texts.push(t.as_str()),
            (Some("text"), _) => {
                return Err(ApiError::invalid(
                    format!("{at}.text"),
                    "A text part needs a string 'text'.",
                ))
            }
            (Some(other), _) => {
                return Err(ApiError::invalid(
                    format!("{at}.type"),
                    format!("Content parts of type '{other}' are not supported (only 'text')."),
                ))
            }
            (None, _) => {
                return Err(ApiError::invalid(
                    format!("{at}.type"),
                    "Each content part needs a 'type'.",
                ))
            }
        }
    }
    Ok(texts.join("\n"))
}

/// A string, token ids, or a one-element array of either.
fn completion_prompt(v: &Value) -> Result<Prompt, ApiError> {
    match v {
        Value::String(s) => Ok(Prompt::Raw(s.clone())),
        Value::Array(a) if a.is_empty() => {
            Err(ApiError::invalid("prompt", "'prompt' must not be empty."))
        }
        Value::Array(a) if a.iter().all(Value::is_number) => token_ids(a, "prompt"),
        Value::Array(a) if a.len() == 1 => match &a[0] {
            Value::String(s) => Ok(Prompt::Raw(s.clone())),
            Value::Array(ids) => token_ids(ids, "prompt[0]"),
            _ => Err(ApiError::invalid(
                "prompt[0]",
                "Expected a string or an array of token ids.",
            )),
        },
        Value::Array(_) => Err(ApiError::invalid(
            "prompt",
            "Batched prompts are not supported: send one prompt per request.",
        )),
        _ => Err(ApiError::invalid(
            "prompt",
            "'prompt' must be a string or an array of token ids.",
        )),
    }
}

fn token_ids(a: &[Value], at: &str) -> Result<Prompt, ApiError> {
    a.iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_u64()
                .and_then(|x| u32::try_from(x).ok())
                .ok_or_else(|| {
                    ApiError::invalid(format!("{at}[{i}]"), format!("{v} is not a token id."))
                })
        })
        .collect::<Result<Vec<u32>, _>>()
        .map(Prompt::Tokens)
}

/// The settings both endpoints share.
fn plan(
    req: &Request,
    mut s: SamplingParams,
    prompt: Prompt,
    prompt_param: &'static str,
) -> Result<Plan, ApiError> {
    if req.n.is_some_and(|n| n != 1) {
        return Err(ApiError::invalid("n", "Only n=1 is supported."));
    }
    sampling(req, &mut s)?;
    let max_tokens = match (req.max_completion_tokens, req.max_tokens) {
        (Some(n), _) => Some((n, "max_completion_tokens")),
        (None, Some(n)) => Some((n, "max_tokens")),
        (None, None) => None,
    };
    let max_tokens = match max_tokens {
        Some((n, field)) if n < 1 => {
            return Err(ApiError::invalid(
                field,
                format!("'{field}' must be at least 1, got {n}."),
            ))
        }
        Some((n, field)) => Some((usize::try_from(n).unwrap_or(usize::MAX), field)),
        None => None,
    };
    let mut params = GenerateParams {
        sampling: s,
        stop_strings: stop_strings(req.stop.as_ref())?,
        ignore_eos: req.ignore_eos.unwrap_or(false),
        ..Default::default()
    };
    for (k, v) in req.chat_template_kwargs.iter().flatten() {
        match (k.as_str(), v) {
            ("enable_thinking", Value::Bool(b)) => params.template.enable_thinking = Some(*b),
            ("enable_thinking", _) => {
                return Err(ApiError::invalid(
                    "chat_template_kwargs.enable_thinking",
                    "'enable_thinking' must be true or false.",
                ))
            }
            // The server always opens the assistant turn.
            ("add_generation_prompt", _) => {}
            _ => {
                params.template.extra.insert(k.clone(), v.clone());
            }
        }
    }
    let stream = req.stream.unwrap_or(false);
    Ok(Plan {
        prompt,
        prompt_param,
        params,
        max_tokens,
        stream,
        include_usage: stream
            && req
                .stream_options
                .as_ref()
                .and_then(|o| o.include_usage)
                .unwrap_or(false),
        return_token_ids: req.return_token_ids.unwrap_or(false),
    })
}

/// Request values over the bundle's defaults, each range-checked.
fn sampling(req: &Request, s: &mut SamplingParams) -> Result<(), ApiError> {
    let range = |name: &str, v: Option<f64>, ok: fn(f64) -> bool, what: &str| match v {
        Some(x) if !(x.is_finite() && ok(x)) => Err(ApiError::invalid(
            name,
            format!("'{name}' must be {what}, got {x}."),
        )),
        _ => Ok(v.map(|x| x as f32)),
    };
    if let Some(t) = range("temperature", req.temperature, |x| x >= 0.0, ">= 0")? {
        s.temperature = t;
    }
    if let Some(p) = range("top_p", req.top_p, |x| x > 0.0 && x <= 1.0, "in (0, 1]")? {
        s.top_p = p;
    }
    if let Some(p) = range(
        "min_p",
        req.min_p,
        |x| (0.0..=1.0).contains(&x),
        "in [0, 1]",
    )? {
        s.min_p = p;
    }
    let rp = req.repetition_penalty;
    if let Some(r) = range("repetition_penalty", rp, |x| x > 0.0, "> 0")? {
        s.repeat_penalty = r;
    }
    let pm2 = |x: f64| (-2.0..=2.0).contains(&x);
    let fp = req.frequency_penalty;
    if let Some(f) = range("frequency_penalty", fp, pm2, "in [-2, 2]")? {
        s.frequency_penalty = f;
    }
    let pp = req.presence_penalty;
    if let Some(p) = range("presence_penalty", pp, pm2, "in [-2, 2]")? {
        s.presence_penalty = p;
    }
    match req.top_k {
        Some(k) if k < -1 => {
            return Err(ApiError::invalid(
                "top_k",
                format!("'top_k' must be >= 0 (or -1: off), got {k}."),
            ))
        }
        Some(k) => s.top_k = usize::try_from(k).unwrap_or(0),
        None => {}
    }
    if let Some(seed) = req.seed {
        s.seed = Some(seed as u64);
    }
    Ok(())
}

fn stop_strings(v: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let strings = match v {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.as_str().map(str::to_string).ok_or_else(|| {
                    ApiError::invalid(format!("stop[{i}]"), "Stop sequences must be strings.")
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::invalid(
                "stop",
                "'stop' must be a string or an array of strings.",
            ))
        }
    };
    Ok(strings.into_iter().filter(|s| !s.is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> ApiError {
        let req = match parse(body.as_bytes()) {
            Ok(r) => r,
            Err(e) => return e,
        };
        if let Err(e) = check_model(&req, "m") {
            return e;
        }
        let p = if req.prompt.is_some() {
            completion_plan(&req, SamplingParams::greedy())
        } else {
            chat_plan(&req, SamplingParams::greedy())
        };
        p.expect_err(body)
    }

    fn param(body: &str) -> Option<String> {
        err(body).param
    }

    #[test]
    fn bad_bodies_name_the_field() {
        assert_eq!(err("{not json").code, Some("invalid_json"));
        assert_eq!(err("[1]").code, Some("invalid_json"));
        let e = err(r#"{"model":"m","messages":[],"temperature":"hot"}"#);
        assert_eq!(e.param.as_deref(), Some("temperature"));
        assert!(e.message.contains("temperature"), "{}", e.message);
        let m = r#""messages":[{"role":"user","content":"hi"}]"#;
        assert_eq!(param(&format!(r#"{{{m}}}"#)).as_deref(), Some("model"));
        assert_eq!(err(&format!(r#"{{"model":"x",{m}}}"#)).status, 404);
        assert_eq!(
            param(r#"{"model":"m","messages":[]}"#).as_deref(),
            Some("messages")
        );
        assert_eq!(param(r#"{"model":"m"}"#).as_deref(), Some("messages"));
        let bad_role = r#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"robot","content":"b"}]}"#;
        assert_eq!(param(bad_role).as_deref(), Some("messages[1].role"));
        let bad_type = r#"{"model":"m","messages":[{"role":3,"content":"a"}]}"#;
        assert_eq!(param(bad_type).as_deref(), Some("messages[0].role"));
        let image =
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#;
        assert_eq!(param(image).as_deref(), Some("messages[0].content[0].type"));
        for (field, v) in [
            ("max_tokens", "-3"),
            ("max_completion_tokens", "0"),
            ("top_p", "0"),
            ("temperature", "-1"),
            ("top_k", "-5"),
            ("min_p", "2"),
            ("frequency_penalty", "3"),
            ("repetition_penalty", "0"),
            ("n", "2"),
        ] {
            let body = format!(r#"{{"model":"m",{m},"{field}":{v}}}"#);
            assert_eq!(param(&body).as_deref(), Some(field), "{body}");
        }
        let stop = format!(r#"{{"model":"m",{m},"stop":["a",1]}}"#);
        assert_eq!(param(&stop).as_deref(), Some("stop[1]"));
        assert_eq!(
            param(r#"{"model":"m","prompt":[[1],[2]]}"#).as_deref(),
            Some("prompt")
        );
        assert_eq!(
            param(r#"{"model":"m","prompt":[1,-2]}"#).as_deref(),
            Some("prompt[1]")
        );
        assert_eq!(
            param(r#"{"model":"m","prompt":"a","echo":true}"#).as_deref(),
            Some("echo")
        );
    }

    #[test]
    fn good_bodies() {
        let req = parse(
            br#"{"model":"m","messages":[{"role":"developer","content":"be brief"},
                {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
                {"role":"assistant","content":null}],
                "max_tokens":5,"temperature":0.5,"top_k":-1,"stop":"END","seed":-1,
                "frequency_penalty":0.5,"stream":true,"stream_options":{"include_usage":true},
                "chat_template_kwargs":{"enable_thinking":false}}"#,
        )
        .unwrap();
        check_model(&req, "m").unwrap();
        let p = chat_plan(&req, SamplingParams::greedy()).unwrap();
        assert_eq!(
            p.prompt,
            Prompt::Chat(vec![
                Message::system("be brief"),
                Message::user("a\nb"),
                Message::assistant("")
            ])
        );
        assert_eq!(p.max_tokens, Some((5, "max_tokens")));
        assert_eq!(p.params.sampling.temperature, 0.5);
        assert_eq!(p.params.sampling.top_k, 0);
        assert_eq!(p.params.sampling.seed, Some(u64::MAX));
        assert_eq!(p.params.sampling.frequency_penalty, 0.5);
        assert_eq!(p.params.stop_strings, vec!["END"]);
        assert_eq!(p.params.template.enable_thinking, Some(false));
        assert!(p.stream && p.include_usage);
        let req = parse(br#"{"model":"m","prompt":[[5,6]]}"#).unwrap();
        let p = completion_plan(&req, SamplingParams::greedy()).unwrap();
        assert_eq!(p.prompt, Prompt::Tokens(vec![5, 6]));
        assert_eq!(p.prompt_param, "prompt");
    }
}
