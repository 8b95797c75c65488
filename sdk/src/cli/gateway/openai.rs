//! The OpenAI chat-completions API as the gateway speaks it: the request it reads, the
//! response and stream chunks it writes, and errors in OpenAI's shape
//! (`{"error": {"message", "type", "param", "code"}}`) with OpenAI's HTTP statuses, so the
//! official clients raise their usual exceptions.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use nesa_engine::{Role, Turn};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Most turns of one conversation.
pub const MAX_MESSAGES: usize = 256;

/// Most stop sequences (as OpenAI allows).
pub const MAX_STOP_SEQUENCES: usize = 4;

/// Most tokens of an answer when the request names no limit.
pub const DEFAULT_MAX_TOKENS: u32 = 256;

/// An error as the OpenAI API returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    /// `invalid_request_error`, `authentication_error`, `insufficient_quota`, `rate_limit_error`
    /// or `server_error`.
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub param: Option<&'static str>,
    pub message: String,
    /// Tells OpenAI's clients not to retry (`x-should-retry: false`): the request cannot
    /// succeed as sent, or it already locked escrow and a retry would pay again.
    pub no_retry: bool,
}

impl ApiError {
    /// A request the gateway cannot serve as written (400).
    pub fn invalid(param: Option<&'static str>, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code: None,
            param,
            message: message.into(),
            no_retry: false,
        }
    }

    /// A model the gateway does not serve (404 `model_not_found`).
    pub fn model_not_found(model: &str, available: &[String]) -> Self {
        let listed = if available.is_empty() {
            "none is available".to_owned()
        } else {
            format!("available: {}", available.join(", "))
        };
        ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            code: Some("model_not_found"),
            param: Some("model"),
            message: format!("The model `{model}` does not exist or you do not have access to it ({listed}; GET /v1/models lists them)"),
            no_retry: false,
        }
    }

    /// A conversation that does not fit the model's context (400 `context_length_exceeded`).
    pub fn context_too_long(message: impl Into<String>) -> Self {
        ApiError {
            code: Some("context_length_exceeded"),
            ..ApiError::invalid(Some("messages"), message)
        }
    }

    /// Missing or wrong API key (401).
    pub fn unauthorized() -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            kind: "invalid_request_error",
            code: Some("invalid_api_key"),
            param: None,
            message: "Incorrect API key provided: pass the gateway's key (printed by `nesa gateway` at start, kept in its api-key file) as the bearer token".to_owned(),
            no_retry: false,
        }
    }

    /// The wallet cannot pay, or a spending cap forbids it (429 `insufficient_quota`, as
    /// OpenAI answers an account out of credit). Nothing was spent.
    pub fn insufficient_quota(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            kind: "insufficient_quota",
            code: Some("insufficient_quota"),
            param: None,
            message: message.into(),
            // Retrying cannot fund the wallet or raise a cap.
            no_retry: true,
        }
    }

    /// Too many requests in flight (429 `rate_limit_exceeded`).
    pub fn busy(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            kind: "rate_limit_error",
            code: Some("rate_limit_exceeded"),
            param: None,
            message: message.into(),
            no_retry: false,
        }
    }

    /// The chain or the market failed the request (502), with `code` naming how.
    pub fn upstream(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_GATEWAY,
            kind: "server_error",
            code: Some(code),
            param: None,
            message: message.into(),
            no_retry: false,
        }
    }

    /// Marks an error that came after the query was submitted: a retry would pay again.
    pub fn after_submission(self) -> Self {
        ApiError {
            no_retry: true,
            ..self
        }
    }

    /// The error body.
    pub fn body(&self) -> Value {
        json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if self.no_retry {
            response.headers_mut().insert(
                "x-should-retry",
                axum::http::HeaderValue::from_static("false"),
            );
        }
        response
    }
}

/// A JSON body as `T`, or a 400 naming what it should have been.
pub fn read_body<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::invalid(None, format!("the body is not {what}: {error}")))
}

/// `POST /v1/chat/completions`, the fields the gateway reads. Unknown fields are ignored, as
/// OpenAI-compatible servers do; fields it cannot honour are refused by [`ChatRequest::check`].
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub seed: Option<i64>,
    #[serde(default)]
    pub n: Option<u32>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub stop: Option<Stop>,
    #[serde(default)]
    pub tools: Option<Value>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub functions: Option<Value>,
    #[serde(default)]
    pub function_call: Option<Value>,
    #[serde(default)]
    pub logprobs: Option<bool>,
    #[serde(default)]
    pub top_logprobs: Option<u32>,
    #[serde(default)]
    pub response_format: Option<Value>,
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
    #[serde(default)]
    pub logit_bias: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// `stop`: one sequence or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

/// One message of the conversation.
#[derive(Debug, Deserialize)]
pub struct Message {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
}

/// A message's content: text, or parts of which only text is read.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

/// A request checked for what the gateway can serve.
#[derive(Debug, PartialEq)]
pub struct Checked {
    /// (role, text) in order; `developer` turns read as system turns.
    pub turns: Vec<(Role, String)>,
    pub max_tokens: u32,
    pub temperature: f64,
    pub top_p: f64,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
}

impl Checked {
    /// The turns as the tokenizer's chat format takes them.
    pub fn conversation(&self) -> Vec<Turn<'_>> {
        self.turns
            .iter()
            .map(|(role, text)| Turn {
                role: *role,
                content: text,
            })
            .collect()
    }
}

impl ChatRequest {
    /// The request as the gateway will serve it, or why it cannot.
    pub fn check(&self) -> Result<Checked, ApiError> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::invalid(
                Some("n"),
                "n must be 1: each completion is one query on chain (send several requests)",
            ));
        }
        let given = |v: &Option<Value>| v.as_ref().is_some_and(|v| !v.is_null());
        for (param, present) in [
            ("tools", given(&self.tools)),
            ("tool_choice", given(&self.tool_choice)),
            ("functions", given(&self.functions)),
            ("function_call", given(&self.function_call)),
        ] {
            if present {
                return Err(ApiError::invalid(
                    Some(param),
                    format!("{param}: tool calls are not supported by this gateway's models"),
                ));
            }
        }
        if self.logprobs == Some(true) || self.top_logprobs.is_some_and(|n| n > 0) {
            return Err(ApiError::invalid(
                Some("logprobs"),
                "logprobs are not returned: the market settles on the tokens, not their probabilities",
            ));
        }
        if let Some(format) = self.response_format.as_ref().filter(|f| !f.is_null()) {
            if format.get("type").and_then(Value::as_str) != Some("text") {
                return Err(ApiError::invalid(
                    Some("response_format"),
                    "response_format: only {\"type\": \"text\"} is supported",
                ));
            }
        }
        for (param, value) in [
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ] {
            if value.is_some_and(|v| v != 0.0) {
                return Err(ApiError::invalid(
                    Some(param),
                    format!("{param} is not supported: the market's sampler takes temperature, top_p and seed"),
                ));
            }
        }
        if self
            .logit_bias
            .as_ref()
            .is_some_and(|b| b.as_object().is_some_and(|o| !o.is_empty()))
        {
            return Err(ApiError::invalid(
                Some("logit_bias"),
                "logit_bias is not supported",
            ));
        }
        if self.messages.is_empty() {
            return Err(ApiError::invalid(
                Some("messages"),
                "messages must hold at least one message",
            ));
        }
        if self.messages.len() > MAX_MESSAGES {
            return Err(ApiError::invalid(
                Some("messages"),
                format!("at most {MAX_MESSAGES} messages per request"),
            ));
        }
        let mut turns = Vec::with_capacity(self.messages.len());
        for (i, message) in self.messages.iter().enumerate() {
            let role = match message.role.as_str() {
                "system" | "developer" => Role::System,
                "user" => Role::User,
                "assistant" => Role::Assistant,
                other => {
                    return Err(ApiError::invalid(
                        Some("messages"),
                        format!("messages[{i}].role `{other}` is not one of system, developer, user, assistant"),
                    ))
                }
            };
            let text = match &message.content {
                Some(Content::Text(text)) => text.clone(),
                Some(Content::Parts(parts)) => {
                    let mut text = String::new();
                    for part in parts {
                        match (part.kind.as_str(), &part.text) {
                            ("text", Some(part)) => text.push_str(part),
                            (kind, _) => {
                                return Err(ApiError::invalid(
                                    Some("messages"),
                                    format!(
                                    "messages[{i}] holds a `{kind}` part: only text is supported"
                                ),
                                ))
                            }
                        }
                    }
                    text
                }
                None => {
                    return Err(ApiError::invalid(
                        Some("messages"),
                        format!("messages[{i}].content is missing"),
                    ))
                }
            };
            turns.push((role, text));
        }
        if !turns.iter().any(|(role, _)| *role == Role::User) {
            return Err(ApiError::invalid(
                Some("messages"),
                "messages must hold at least one user message",
            ));
        }
        let max_tokens = self
            .max_completion_tokens
            .or(self.max_tokens)
            .unwrap_or(DEFAULT_MAX_TOKENS);
        if max_tokens == 0 {
            return Err(ApiError::invalid(
                Some("max_tokens"),
                "max_tokens must be at least 1",
            ));
        }
        let temperature = self.temperature.unwrap_or(1.0);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(ApiError::invalid(
                Some("temperature"),
                format!("temperature {temperature} is out of range: use 0 to 2"),
            ));
        }
        let top_p = self.top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ApiError::invalid(
                Some("top_p"),
                format!("top_p {top_p} is out of range: use a number above 0, at most 1"),
            ));
        }
        let stop = match &self.stop {
            None => Vec::new(),
            Some(Stop::One(one)) => vec![one.clone()],
            Some(Stop::Many(many)) => many.clone(),
        };
        if stop.len() > MAX_STOP_SEQUENCES || stop.iter().any(String::is_empty) {
            return Err(ApiError::invalid(
                Some("stop"),
                format!("stop takes at most {MAX_STOP_SEQUENCES} non-empty sequences"),
            ));
        }
        Ok(Checked {
            turns,
            max_tokens,
            temperature,
            top_p,
            // OpenAI's seed is a signed integer: its bits seed the market's sampler.
            seed: self.seed.map(|s| s as u64),
            stop,
        })
    }
}

/// `text` cut before the first stop sequence, and whether one was found.
pub fn apply_stop(text: &str, stop: &[String]) -> (String, bool) {
    match stop.iter().filter_map(|s| text.find(s.as_str())).min() {
        Some(at) => (text[..at].to_owned(), true),
        None => (text.to_owned(), false),
    }
}

/// Token counts, as OpenAI reports them.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

impl Usage {
    pub fn new(prompt_tokens: u32, completion_tokens: u32) -> Self {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value) -> ChatRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn a_plain_request_reads_with_openai_defaults() {
        let checked = request(json!({
            "model": "m",
            "messages": [{"role": "user", "content": "Hi"}],
        }))
        .check()
        .unwrap();
        assert_eq!(checked.turns, vec![(Role::User, "Hi".to_owned())]);
        assert_eq!(checked.max_tokens, DEFAULT_MAX_TOKENS);
        assert_eq!((checked.temperature, checked.top_p), (1.0, 1.0));
        assert_eq!(checked.seed, None);
        let nulls = request(json!({
            "model": "m",
            "stream": null,
            "tools": null,
            "logprobs": false,
            "response_format": {"type": "text"},
            "frequency_penalty": 0,
            "messages": [{"role": "user", "content": "Hi"}],
        }));
        assert!(
            nulls.check().is_ok(),
            "OpenAI's defaults spelled out are accepted"
        );
        assert_eq!(nulls.stream, None);
    }

    #[test]
    fn text_parts_join_and_developer_turns_read_as_system() {
        let checked = request(json!({
            "model": "m",
            "max_completion_tokens": 9,
            "max_tokens": 50,
            "seed": -1,
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
            ],
        }))
        .check()
        .unwrap();
        assert_eq!(
            checked.turns,
            vec![
                (Role::System, "Be brief.".to_owned()),
                (Role::User, "Hi there".to_owned())
            ]
        );
        assert_eq!(checked.max_tokens, 9, "max_completion_tokens wins");
        assert_eq!(checked.seed, Some(u64::MAX));
    }

    #[test]
    fn what_the_gateway_cannot_honour_is_refused_naming_the_parameter() {
        let cases = [
            (json!({"n": 2}), "n"),
            (json!({"temperature": 2.5}), "temperature"),
            (json!({"top_p": 0}), "top_p"),
            (json!({"max_tokens": 0}), "max_tokens"),
            (json!({"stop": ["a", "b", "c", "d", "e"]}), "stop"),
            (json!({"tools": [{"type": "function"}]}), "tools"),
            (json!({"logprobs": true}), "logprobs"),
            (
                json!({"response_format": {"type": "json_object"}}),
                "response_format",
            ),
            (json!({"frequency_penalty": 0.5}), "frequency_penalty"),
            (json!({"logit_bias": {"1": 5}}), "logit_bias"),
            (json!({"messages": []}), "messages"),
            (
                json!({"messages": [{"role": "tool", "content": "x"}]}),
                "messages",
            ),
            (
                json!({"messages": [{"role": "system", "content": "x"}]}),
                "messages",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
                "messages",
            ),
        ];
        for (overrides, param) in cases {
            let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}]});
            for (k, v) in overrides.as_object().unwrap() {
                body[k] = v.clone();
            }
            let error = request(body).check().unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{overrides}");
            assert_eq!(error.param, Some(param), "{overrides}");
            assert_eq!(error.body()["error"]["type"], "invalid_request_error");
        }
    }

    #[test]
    fn stop_sequences_cut_at_the_earliest() {
        let stop = vec!["\n\n".to_owned(), "END".to_owned()];
        assert_eq!(
            apply_stop("Paris END.\n\nMore", &stop),
            ("Paris ".to_owned(), true)
        );
        assert_eq!(apply_stop("Paris", &stop), ("Paris".to_owned(), false));
    }

    #[test]
    fn errors_have_openais_shape() {
        let error = ApiError::model_not_found("gpt-4", &["smollm2".to_owned()]);
        let body = error.body();
        assert_eq!(error.status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "model_not_found");
        assert_eq!(body["error"]["param"], "model");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("smollm2"));
        assert_eq!(
            ApiError::insufficient_quota("x").body()["error"]["type"],
            "insufficient_quota"
        );
        let retry = |e: ApiError| e.into_response().headers().get("x-should-retry").cloned();
        assert_eq!(retry(ApiError::insufficient_quota("x")).unwrap(), "false");
        assert_eq!(
            retry(ApiError::upstream("query_disputed", "x").after_submission()).unwrap(),
            "false",
            "a retry after submission would pay again"
        );
        assert!(retry(ApiError::busy("x")).is_none());
    }
}
