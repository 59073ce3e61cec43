//! The HTTP layer: routes, API-key check, request counting, and the
//! handlers, which only turn requests into generation jobs.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use candle_coreml_llm::{GenerateParams, Llm};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::request::{self, Plan};
use crate::response::{Kind, Reply};
use crate::worker::{self, Job};
use crate::App;

/// The router over `app`.
pub fn router(app: Arc<App>) -> Router {
    let keyed = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/v1/models/{*id}", get(model))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(app.clone(), auth));
    Router::new()
        .route("/health", get(health))
        .merge(keyed)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), count))
        .layer(DefaultBodyLimit::max(app.config.body_limit))
        .with_state(app)
}

/// The bearer token of `Authorization`.
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let v = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = v.split_at(v.iter().position(|&b| b == b' ')?);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| token.trim_ascii())
}

/// With `--api-key`, requests need `Authorization: Bearer KEY`. The key is
/// compared in constant time (`subtle`); only its length can leak.
async fn auth(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if let Some(key) = &app.config.api_key {
        match bearer(req.headers()) {
            None => {
                return ApiError::unauthorized(
                    "You didn't provide an API key: send 'Authorization: Bearer KEY'.",
                )
                .into_response()
            }
            Some(token) if !bool::from(token.ct_eq(key.as_bytes())) => {
                return ApiError::unauthorized("Incorrect API key provided.").into_response()
            }
            Some(_) => {}
        }
    }
    next.run(req).await
}

/// Counts every answer by route and status.
async fn count(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |m| m.as_str().to_string());
    let r = next.run(req).await;
    app.metrics.request(&route, r.status().as_u16());
    r
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    let mut e = ApiError::bad_request(format!("Unknown request URL: {method} {uri}."));
    e.status = StatusCode::NOT_FOUND;
    e.with_code("unknown_url")
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    let mut e = ApiError::bad_request(format!("{method} is not allowed on {uri}."));
    e.status = StatusCode::METHOD_NOT_ALLOWED;
    e.with_code("method_not_allowed")
}

async fn health(State(app): State<Arc<App>>) -> Response {
    let s = app.pool.status();
    let closing = app.pool.is_closed();
    let body = json!({
        "status": if closing { "shutting_down" } else { "ok" },
        "model": app.config.model_name,
        "sessions": {"max": s.max_sessions, "created": s.created, "busy": s.busy},
        "queue": {"waiting": s.waiting, "max": app.config.max_queue},
    });
    let status = if closing {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, Json(body)).into_response()
}

fn model_object(app: &App) -> Value {
    json!({
        "id": app.config.model_name,
        "object": "model",
        "created": app.created,
        "owned_by": "candle-coreml",
        "context_length": app.llm.context_length(),
    })
}

async fn models(State(app): State<Arc<App>>) -> Json<Value> {
    Json(json!({"object": "list", "data": [model_object(&app)]}))
}

async fn model(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if id != app.config.model_name {
        return Err(ApiError::model_not_found(&id, &app.config.model_name));
    }
    Ok(Json(model_object(&app)))
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let text = app
        .metrics
        .render(app.pool.status(), &app.config.model_name);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// A body over the limit (413) or unreadable, as an OpenAI error.
fn body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    b.map_err(|r| {
        let mut e = ApiError::bad_request(r.body_text());
        e.status = r.status();
        if e.status == StatusCode::PAYLOAD_TOO_LARGE {
            e.code = Some("request_too_large");
        }
        e
    })
}

async fn chat(State(app): State<Arc<App>>, b: Result<Bytes, BytesRejection>) -> Response {
    let answer = async {
        let req = request::parse(&body(b)?)?;
        request::check_model(&req, &app.config.model_name)?;
        let plan = request::chat_plan(&req, app.llm.default_sampling())?;
        respond(&app, plan, Kind::Chat).await
    };
    answer.await.unwrap_or_else(IntoResponse::into_response)
}

async fn completions(State(app): State<Arc<App>>, b: Result<Bytes, BytesRejection>) -> Response {
    let answer = async {
        let req = request::parse(&body(b)?)?;
        request::check_model(&req, &app.config.model_name)?;
        let plan = request::completion_plan(&req, app.llm.default_sampling())?;
        respond(&app, plan, Kind::Completion).await
    };
    answer.await.unwrap_or_else(IntoResponse::into_response)
}

/// `max_tokens` of a text completion that gives none (OpenAI's default).
const COMPLETION_DEFAULT_MAX_TOKENS: usize = 16;

/// Tokenizes (on a blocking thread), checks the prompt against the
/// context, waits for a session and answers.
async fn respond(app: &Arc<App>, plan: Plan, kind: Kind) -> Result<Response, ApiError> {
    let (llm, prompt, params) = (app.llm.clone(), plan.prompt.clone(), plan.params.clone());
    let at = plan.prompt_param;
    let ids = tokio::task::spawn_blocking(move || {
        llm.prompt_ids(&prompt, &params)
            .map_err(|e| ApiError::from_llm(e, at))
    })
    .await
    .map_err(|e| ApiError::internal(format!("tokenizing the prompt: {e}")))??;
    let params = limits(&app.llm, &plan, &ids)?;
    let reply = Reply::new(
        kind,
        &app.config.model_name,
        plan.return_token_ids.then(|| ids.clone()),
    );
    let job = Job {
        ids,
        params,
        prompt_param: plan.prompt_param,
        kind,
    };
    let running = worker::start(app, job).await?;
    if plan.stream {
        worker::stream(running, reply, plan.include_usage).await
    } else {
        worker::collect(running, reply).await
    }
}

/// Checks the prompt's ids and sets `max_tokens`: what was asked, capped by
/// the room the context leaves. Without a value, chat answers may fill the
/// context and text completions stop after 16 tokens (OpenAI's defaults).
/// Asking for more than the whole context is an error.
fn limits(llm: &Llm, plan: &Plan, ids: &[u32]) -> Result<GenerateParams, ApiError> {
    let at = plan.prompt_param;
    if ids.is_empty() {
        return Err(ApiError::invalid(at, "The prompt has no tokens."));
    }
    let vocab = llm
        .meta()
        .vocab_size
        .unwrap_or_else(|| llm.tokenizer().vocab_size());
    if let Some(bad) = ids.iter().find(|&&i| i as usize >= vocab) {
        return Err(ApiError::invalid(
            at,
            format!("Token id {bad} is outside the model's vocabulary of {vocab} tokens."),
        ));
    }
    let ctx = llm.context_length();
    if ids.len() > ctx {
        return Err(ApiError::invalid(
            at,
            format!(
                "The prompt has {} tokens; the model's context holds {ctx}.",
                ids.len()
            ),
        )
        .with_code("context_length_exceeded"));
    }
    // The last prompt token's step yields the first answer token, so a full
    // context still answers one token.
    let room = ctx + 1 - ids.len();
    let max = match plan.max_tokens {
        Some((n, field)) if n > ctx => {
            return Err(ApiError::invalid(
                field,
                format!("'{field}' is {n}; the model's context holds {ctx} tokens."),
            ))
        }
        Some((n, _)) => n.min(room),
        None if plan.prompt_param == "prompt" => COMPLETION_DEFAULT_MAX_TOKENS.min(room),
        None => room,
    };
    Ok(GenerateParams {
        max_tokens: Some(max),
        ..plan.params.clone()
    })
}
