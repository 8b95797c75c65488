//! The model's chat format: ChatML turns (`<|im_start|>role\n…<|im_end|>\n`).

use crate::gguf::Metadata;

/// The ChatML turn format, with the default system prompt the model's own template inserts
/// when none is given.
#[derive(Clone, Debug, Default)]
pub(super) struct ChatTemplate {
    default_system: Option<String>,
}

impl ChatTemplate {
    /// Reads the default system turn from `tokenizer.chat_template`, if the template has one.
    pub(super) fn from_gguf_metadata(metadata: &Metadata) -> Self {
        let template = metadata
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok());
        // SmolLM2's Jinja template writes a fixed system turn when the conversation has none;
        // read it from the template rather than hard-coding it.
        let default_system = template.and_then(|t| {
            let start = t.find("<|im_start|>system\n")? + "<|im_start|>system\n".len();
            let len = t[start..].find("<|im_end|>")?;
            Some(t[start..start + len].to_string())
        });
        Self { default_system }
    }

    /// The prompt for one user turn, ending where the assistant speaks.
    pub(super) fn render(&self, system: Option<&str>, user: &str) -> String {
        let mut prompt = String::new();
        if let Some(system) = system.or(self.default_system.as_deref()) {
            prompt.push_str(&format!("<|im_start|>system\n{system}<|im_end|>\n"));
        }
        prompt.push_str(&format!(
            "<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
        ));
        prompt
    }
}
