//! `GET /v1/models`: the active kernels the gateway can serve — it holds their tokenizer and,
//! for an ee-v1 kernel, the user's key. A model's id is its kernel's name (`name:v<version>`
//! where several versions are active); requests may also name `kernel-<id>`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use nesa_market::registry::{Encryption, Kernel};
use nesa_sdk::ee::Vocabulary;
use nesa_sdk::tokenizer::Tokenizer;
use serde_json::{json, Value};

use super::openai::ApiError;
use super::Gateway;

/// Most nodes counted as serving a model.
const NODES_COUNTED: usize = 1000;

/// A kernel the gateway can serve.
pub struct Model {
    pub id: String,
    pub kernel: Kernel,
    pub tokenizer: Arc<Tokenizer>,
}

impl Model {
    /// The user's id mapping for an ee-v1 kernel (`None` for plaintext kernels).
    pub fn vocabulary(&self, gateway: &Gateway) -> Result<Option<Vocabulary>, ApiError> {
        if self.kernel.encryption == Encryption::None {
            return Ok(None);
        }
        let key = gateway
            .keystore()
            .find(self.kernel.weights_sha256.as_slice())
            .map_err(|e| {
                ApiError::invalid(
                    Some("model"),
                    format!("model `{}` is encrypted (ee-v1) and the gateway's wallet holds no key for it: {e}", self.id),
                )
            })?;
        let vocabulary = key.vocabulary();
        vocabulary
            .check_size(self.tokenizer.vocab_size())
            .map_err(|e| ApiError::invalid(Some("model"), e.to_string()))?;
        Ok(Some(vocabulary))
    }
}

/// The models the gateway serves now, in kernel id order.
pub async fn served(gateway: &Gateway) -> Result<Vec<Model>, nesa_sdk::ClientError> {
    let kernels = gateway.market().all_kernels(None).await?;
    let keystore = gateway.keystore();
    let mut models: Vec<Model> = kernels
        .into_iter()
        .filter(|k| k.is_active())
        .filter(|k| {
            k.encryption == Encryption::None || keystore.find(k.weights_sha256.as_slice()).is_ok()
        })
        .filter_map(|kernel| {
            let tokenizer = gateway
                .tokenizers
                .iter()
                .find(|t| kernel.tokenizer_sha256.as_slice() == t.sha256())?
                .clone();
            Some(Model {
                id: kernel.name.clone(),
                kernel,
                tokenizer,
            })
        })
        .collect();
    let names: Vec<String> = models.iter().map(|m| m.kernel.name.clone()).collect();
    for model in &mut models {
        if names.iter().filter(|n| **n == model.kernel.name).count() > 1 {
            model.id = format!("{}:v{}", model.kernel.name, model.kernel.version);
        }
    }
    Ok(models)
}

/// The served model a request names.
pub async fn resolve(gateway: &Gateway, name: &str) -> Result<Model, ApiError> {
    let models = served(gateway)
        .await
        .map_err(|e| ApiError::upstream("chain_unavailable", e.to_string()))?;
    let by_id = name
        .strip_prefix("kernel-")
        .and_then(|id| id.parse::<u64>().ok());
    let ids: Vec<String> = models.iter().map(|m| m.id.clone()).collect();
    if let Some(model) = models
        .into_iter()
        .find(|m| m.id == name || Some(m.kernel.id) == by_id)
    {
        return Ok(model);
    }
    let mut error = ApiError::model_not_found(name, &ids);
    // A kernel of that name exists but this gateway cannot serve it: say why.
    let kernels = gateway.market().all_kernels(None).await.unwrap_or_default();
    if let Some(kernel) = kernels
        .iter()
        .rev()
        .find(|k| k.name == name || Some(k.id) == by_id)
    {
        error.message = format!(
            "The model `{name}` (kernel {}) cannot be served by this gateway: {}",
            kernel.id,
            why_not_served(gateway, kernel)
        );
    }
    Err(error)
}

/// Why an existing kernel is not among the served models.
fn why_not_served(gateway: &Gateway, kernel: &Kernel) -> String {
    if !kernel.is_active() {
        return format!("it is {:?} in the registry", kernel.status).to_lowercase();
    }
    if !gateway
        .tokenizers
        .iter()
        .any(|t| kernel.tokenizer_sha256.as_slice() == t.sha256())
    {
        return format!(
            "the gateway holds no GGUF with its tokenizer (sha256 {}): start it with --model <the kernel's GGUF>",
            kernel.tokenizer_sha256
        );
    }
    format!(
        "it is encrypted (ee-v1) and the wallet holds no key for it: import the kernel's key with `nesa keys ee import <file>` (weights sha256 {})",
        kernel.weights_sha256
    )
}

/// A model as OpenAI lists it, with what a Nesa user picks by.
async fn describe(gateway: &Gateway, model: &Model) -> Value {
    let kernel = &model.kernel;
    let nodes = gateway
        .market()
        .candidates(kernel.id, NODES_COUNTED)
        .await
        .ok();
    json!({
        "id": model.id,
        "object": "model",
        "created": 0,
        "owned_by": kernel.owner,
        "nesa": {
            "kernel_id": kernel.id,
            "name": kernel.name,
            "version": kernel.version,
            "description": kernel.description,
            "encryption": match kernel.encryption {
                Encryption::None => "none",
                Encryption::EeV1 => "ee-v1",
            },
            "denom": "unes",
            "price_per_input_token": kernel.price_per_input_token,
            "price_per_output_token": kernel.price_per_output_token,
            "context_length": kernel.context_length,
            "shards": kernel.shard_layout.len().max(1),
            "min_redundancy": kernel.min_redundancy,
            "nodes_serving": nodes,
        }
    })
}

/// `GET /v1/models`.
pub async fn list(State(gateway): State<Arc<Gateway>>) -> Response {
    let models = match served(&gateway).await {
        Ok(models) => models,
        Err(error) => {
            return ApiError::upstream("chain_unavailable", error.to_string()).into_response()
        }
    };
    let mut data = Vec::with_capacity(models.len());
    for model in &models {
        data.push(describe(&gateway, model).await);
    }
    Json(json!({"object": "list", "data": data})).into_response()
}

/// `GET /v1/models/{model}`.
pub async fn one(State(gateway): State<Arc<Gateway>>, Path(name): Path<String>) -> Response {
    match resolve(&gateway, &name).await {
        Ok(model) => Json(describe(&gateway, &model).await).into_response(),
        Err(error) => error.into_response(),
    }
}
