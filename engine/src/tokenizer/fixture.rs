//! A tiny byte-level BPE vocabulary in GGUF metadata form for tests (`testing` feature) — the
//! tokenizer's here and the engine's tiny test model: the same layout as SmolLM2 (special
//! tokens first, then the 256 byte characters, then merges), small enough to reason about.

use crate::gguf::{Metadata, Value};

/// Special tokens first, as in SmolLM2: `<|endoftext|>` = 0, `<|im_start|>` = 1, `<|im_end|>` = 2.
const SPECIAL_TOKENS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
pub const MERGES: [(&str, &str); 6] = [
    ("Ġ", "t"),
    ("h", "e"),
    ("Ġt", "he"),
    ("l", "l"),
    ("e", "ll"),
    ("o", "r"),
];

/// GPT-2's byte-to-character map: printable bytes stand for themselves, the rest are shifted
/// past U+0100 so every byte is a visible character.
fn byte_level_alphabet() -> Vec<String> {
    let printable = |b: u32| {
        (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b)
    };
    let mut shifted = 0;
    (0u32..256)
        .map(|b| {
            let c = if printable(b) {
                b
            } else {
                shifted += 1;
                255 + shifted
            };
            char::from_u32(c).expect("valid char").to_string()
        })
        .collect()
}

/// The tiny vocabulary, special tokens included.
pub fn tokens() -> Vec<String> {
    let mut tokens: Vec<String> = SPECIAL_TOKENS.iter().map(|t| t.to_string()).collect();
    tokens.extend(byte_level_alphabet());
    tokens.extend(MERGES.iter().map(|(a, b)| format!("{a}{b}")));
    tokens
}

/// The `tokenizer.*` metadata of a GGUF file carrying the tiny vocabulary.
pub fn metadata() -> Metadata {
    let tokens = tokens();
    let token_types = (0..tokens.len())
        .map(|i| Value::I32(if i < SPECIAL_TOKENS.len() { 3 } else { 1 }))
        .collect();
    let strings = |items: Vec<String>| Value::Array(items.into_iter().map(Value::String).collect());
    [
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("smollm".into())),
        ("tokenizer.ggml.tokens", strings(tokens)),
        ("tokenizer.ggml.token_type", Value::Array(token_types)),
        (
            "tokenizer.ggml.merges",
            strings(MERGES.iter().map(|(a, b)| format!("{a} {b}")).collect()),
        ),
        ("tokenizer.ggml.bos_token_id", Value::U32(1)),
        ("tokenizer.ggml.eos_token_id", Value::U32(2)),
        ("tokenizer.ggml.add_bos_token", Value::Bool(false)),
        (
            "tokenizer.chat_template",
            Value::String("{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are tiny.<|im_end|>\n' }}{% endif %}".into()),
        ),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value))
    .collect()
}
