//! Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`
//! with the HTTP status that goes with them.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use candle_coreml_llm::Error as LlmError;

/// An error answered to the client.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong, for a person.
    pub message: String,
    /// OpenAI's error type (`invalid_request_error`, `authentication_error`,
    /// `rate_limit_error`, `server_error`...).
    pub kind: &'static str,
    /// The request field at fault (`messages[1].role`, `max_tokens`...).
    pub param: Option<String>,
    /// A machine-readable code (`model_not_found`, `context_length_exceeded`...).
    pub code: Option<&'static str>,
    /// Seconds for a `Retry-After` header (429 and 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after: None,
        }
    }

    /// A 400 about one request field.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message);
        e.param = Some(param.into());
        e
    }

    /// A 400 about the request as a whole.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// Sets the machine-readable code.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// A 404 for a model this server does not serve.
    pub fn model_not_found(name: &str, served: &str) -> Self {
        let mut e = Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("The model '{name}' does not exist; this server serves '{served}'."),
        );
        e.param = Some("model".into());
        e.with_code("model_not_found")
    }

    /// A 401: no key, or the wrong one.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", message)
            .with_code("invalid_api_key")
    }

    /// A 429: the wait queue is full.
    pub fn queue_full(retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "Every session is busy and the wait queue is full; retry later.",
        )
        .with_code("queue_full");
        e.retry_after = Some(retry_after);
        e
    }

    /// A 503: waited in the queue too long.
    pub fn queue_timeout(retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "Every session stayed busy for the whole queue timeout; retry later.",
        )
        .with_code("queue_timeout");
        e.retry_after = Some(retry_after);
        e
    }

    /// A 503: the server is shutting down.
    pub fn shutting_down() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "The server is shutting down.",
        )
        .with_code("shutting_down")
    }

    /// A 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    /// An error of the LLM crate; `prompt_param` names the request field
    /// that held the prompt (`messages` or `prompt`).
    pub fn from_llm(e: LlmError, prompt_param: &str) -> Self {
        match &e {
            LlmError::PromptTooLong { .. } => {
                Self::invalid(prompt_param, e.to_string()).with_code("context_length_exceeded")
            }
            LlmError::InvalidParameter { name, message } => Self::invalid(
                openai_name(name),
                format!("{}: {message}", openai_name(name)),
            ),
            // A template that refuses the conversation (raise_exception:
            // roles out of order...) is about the messages.
            LlmError::Template { .. } => Self::invalid(prompt_param, e.to_string()),
            _ => Self::internal(e.to_string()),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

/// The request field a sampling parameter of the LLM crate came from.
fn openai_name(name: &str) -> &str {
    match name {
        "repeat_penalty" => "repetition_penalty",
        other => other,
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_openai_fields() {
        let e = ApiError::invalid("messages[0].role", "unknown role 'robot'");
        assert_eq!(
            e.body(),
            serde_json::json!({"error": {
                "message": "unknown role 'robot'",
                "type": "invalid_request_error",
                "param": "messages[0].role",
                "code": null,
            }})
        );
    }

    #[test]
    fn llm_errors_name_the_field() {
        let e = ApiError::from_llm(
            LlmError::PromptTooLong {
                tokens: 300,
                limit: 256,
            },
            "messages",
        );
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.param.as_deref(), Some("messages"));
        assert_eq!(e.code, Some("context_length_exceeded"));
        let e = ApiError::from_llm(
            LlmError::InvalidParameter {
                name: "repeat_penalty",
                message: "0 is not > 0".into(),
            },
            "prompt",
        );
        assert_eq!(e.param.as_deref(), Some("repetition_penalty"));
    }

    #[test]
    fn retry_after_header() {
        let r = ApiError::queue_full(2).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }
}
