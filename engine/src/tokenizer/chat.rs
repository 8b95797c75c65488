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
        let mut turns = Vec::with_capacity(2);
        if let Some(system) = system {
            turns.push(Turn::system(system));
        }
        turns.push(Turn::user(user));
        self.render_conversation(&turns)
    }

    /// The prompt for a conversation, ending where the assistant speaks next. A conversation
    /// that does not open with a system turn gets the template's default one, as the model's
    /// own template does.
    pub(super) fn render_conversation(&self, turns: &[Turn<'_>]) -> String {
        let mut prompt = String::new();
        let opens_with_system = turns.first().is_some_and(|t| t.role == Role::System);
        if let (false, Some(system)) = (opens_with_system, self.default_system.as_deref()) {
            push_turn(&mut prompt, Role::System, system);
        }
        for turn in turns {
            push_turn(&mut prompt, turn.role, turn.content);
        }
        prompt.push_str("<|im_start|>assistant\n");
        prompt
    }
}

fn push_turn(prompt: &mut String, role: Role, content: &str) {
    prompt.push_str("<|im_start|>");
    prompt.push_str(role.as_str());
    prompt.push('\n');
    prompt.push_str(content);
    prompt.push_str("<|im_end|>\n");
}

/// Who speaks a turn of a conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    /// The role's name in the chat format (and in the OpenAI API).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One turn of a conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Turn<'a> {
    pub role: Role,
    pub content: &'a str,
}

impl<'a> Turn<'a> {
    pub fn system(content: &'a str) -> Self {
        Turn {
            role: Role::System,
            content,
        }
    }

    pub fn user(content: &'a str) -> Self {
        Turn {
            role: Role::User,
            content,
        }
    }

    pub fn assistant(content: &'a str) -> Self {
        Turn {
            role: Role::Assistant,
            content,
        }
    }
}
