//! The model's tokenizer, built from the GGUF metadata (`tokenizer.ggml.*`) rather than a
//! separate tokenizer.json, so a model is one file. Byte-level BPE as in GPT-2, with the
//! pre-tokenizer SmolLM2 uses (digits split one by one); this matches llama.cpp on mixed
//! text, including the tokens right after special tokens (DESIGN.md §4).

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior};

use super::config::{metadata_array, metadata_string, metadata_usize};
use super::error::{EngineError, Result};

/// GPT-2's pre-tokenizer pattern (contractions, letters, numbers, punctuation, spaces).
const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// GGUF token type of ordinary vocabulary entries; every other type is a special token.
const TOKEN_TYPE_NORMAL: i64 = 1;

/// Text to token ids and back, plus the model's chat format.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    bos_token: Option<u32>,
    add_bos: bool,
    stop_tokens: Vec<u32>,
    chat: ChatTemplate,
}

impl Tokenizer {
    /// Reads the tokenizer of a GGUF model file.
    pub fn load(path: &Path) -> Result<Self> {
        let mut file = std::fs::File::open(path).map_err(|source| EngineError::ModelFile {
            path: path.to_owned(),
            source,
        })?;
        let content =
            gguf_file::Content::read(&mut file).map_err(|source| EngineError::NotGguf {
                path: path.to_owned(),
                source,
            })?;
        Self::from_gguf_metadata(&content.metadata)
    }

    /// Builds the tokenizer from `tokenizer.ggml.*` metadata (model `gpt2`).
    pub fn from_gguf_metadata(metadata: &HashMap<String, Value>) -> Result<Self> {
        let model = metadata_string(metadata, "tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(EngineError::Tokenizer(format!(
                "tokenizer model `{model}` is not supported: only byte-level BPE (`gpt2`) is"
            )));
        }
        let tokens = strings(
            metadata_array(metadata, "tokenizer.ggml.tokens")?,
            "tokenizer.ggml.tokens",
        )?;
        let merges = strings(
            metadata_array(metadata, "tokenizer.ggml.merges")?,
            "tokenizer.ggml.merges",
        )?
        .into_iter()
        .map(|merge| {
            merge
                .split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| EngineError::Tokenizer(format!("merge `{merge}` is not two tokens")))
        })
        .collect::<Result<Vec<_>>>()?;
        let token_types: Vec<i64> = match metadata.get("tokenizer.ggml.token_type") {
            Some(_) => metadata_array(metadata, "tokenizer.ggml.token_type")?
                .iter()
                .map(|v| match v {
                    Value::I32(t) => Ok(*t as i64),
                    Value::U32(t) => Ok(*t as i64),
                    other => Err(EngineError::Tokenizer(format!(
                        "token type {other:?} is not an integer"
                    ))),
                })
                .collect::<Result<_>>()?,
            None => vec![TOKEN_TYPE_NORMAL; tokens.len()],
        };
        if token_types.len() != tokens.len() {
            return Err(EngineError::Tokenizer(format!(
                "{} token types for {} tokens",
                token_types.len(),
                tokens.len()
            )));
        }

        let mut vocab = tokenizers::models::bpe::Vocab::with_capacity(tokens.len());
        for (id, token) in tokens.iter().enumerate() {
            vocab.entry(token.to_string()).or_insert(id as u32);
        }
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| EngineError::Tokenizer(format!("cannot build BPE: {e}")))?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        let split = |pattern: &str| -> Result<Split> {
            Split::new(
                SplitPattern::Regex(pattern.into()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| EngineError::Tokenizer(format!("bad split pattern: {e}")))
        };
        inner.with_pre_tokenizer(Some(Sequence::new(vec![
            split(r"\p{N}")?.into(),
            split(GPT2_PATTERN)?.into(),
            ByteLevel::default()
                .add_prefix_space(false)
                .use_regex(false)
                .into(),
        ])));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        let specials: Vec<AddedToken> = tokens
            .iter()
            .zip(&token_types)
            .filter(|(_, &kind)| kind != TOKEN_TYPE_NORMAL)
            .map(|(token, _)| AddedToken::from(token.to_string(), true))
            .collect();
        inner.add_special_tokens(&specials);

        let token_id = |key: &str| -> Option<u32> {
            metadata
                .get(key)
                .and_then(|_| metadata_usize(metadata, key).ok())
                .map(|id| id as u32)
        };
        let bos_token = token_id("tokenizer.ggml.bos_token_id");
        let add_bos = metadata
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(false);
        let chat = ChatTemplate::from_gguf_metadata(metadata);
        let mut stop_tokens: Vec<u32> = token_id("tokenizer.ggml.eos_token_id")
            .into_iter()
            .collect();
        for marker in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>"] {
            if let Some(id) = inner.token_to_id(marker) {
                if !stop_tokens.contains(&id) {
                    stop_tokens.push(id);
                }
            }
        }
        Ok(Self {
            inner,
            bos_token,
            add_bos,
            stop_tokens,
            chat,
        })
    }

    /// Token ids of `text`; special-token markers in it (`<|im_start|>`) become their ids, and
    /// the BOS token is prepended when the model asks for it.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| EngineError::Tokenizer(format!("cannot encode text: {e}")))?;
        let mut ids = Vec::with_capacity(encoding.len() + 1);
        if self.add_bos {
            ids.extend(self.bos_token);
        }
        ids.extend_from_slice(encoding.get_ids());
        Ok(ids)
    }

    /// The text of `ids`, without special tokens.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| EngineError::Tokenizer(format!("cannot decode tokens: {e}")))
    }

    /// A decoder that turns tokens into text as they arrive (holding back incomplete UTF-8).
    pub fn stream_decoder(&self) -> TextStream<'_> {
        TextStream {
            tokenizer: self,
            ids: Vec::new(),
            emitted: 0,
        }
    }

    /// Tokens that end an answer: end-of-sequence and end-of-turn markers.
    pub fn stop_tokens(&self) -> &[u32] {
        &self.stop_tokens
    }

    /// Number of tokens, special ones included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Wraps a user message in the model's chat format, ending where the assistant speaks.
    pub fn chat_prompt(&self, system: Option<&str>, user: &str) -> String {
        self.chat.render(system, user)
    }
}

/// Incremental detokenization for printing an answer while it is generated.
pub struct TextStream<'a> {
    tokenizer: &'a Tokenizer,
    ids: Vec<u32>,
    emitted: usize,
}

impl TextStream<'_> {
    /// Adds a token and returns the newly complete text, if any.
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.ids.push(id);
        let text = self.tokenizer.decode(&self.ids)?;
        // A multi-byte character split across tokens decodes to U+FFFD until it is complete.
        if text.ends_with('\u{FFFD}') || text.len() < self.emitted {
            return Ok(String::new());
        }
        let new = text[self.emitted..].to_string();
        self.emitted = text.len();
        Ok(new)
    }
}

/// The ChatML turn format (`<|im_start|>role\n…<|im_end|>\n`), with the default system prompt
/// the model's own template inserts when none is given.
#[derive(Clone, Debug, Default)]
struct ChatTemplate {
    default_system: Option<String>,
}

impl ChatTemplate {
    fn from_gguf_metadata(metadata: &HashMap<String, Value>) -> Self {
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

    fn render(&self, system: Option<&str>, user: &str) -> String {
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

fn strings<'a>(values: &'a [Value], key: &str) -> Result<Vec<&'a str>> {
    values
        .iter()
        .map(|v| v.to_string().map(String::as_str))
        .collect::<candle_core::Result<Vec<_>>>()
        .map_err(|e| EngineError::Metadata {
            key: key.into(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tiny::{tiny_model_file, tiny_vocab_size, TinyModelSpec};

    fn tiny() -> Tokenizer {
        Tokenizer::load(&tiny_model_file(&TinyModelSpec::default()).unwrap()).unwrap()
    }

    #[test]
    fn text_round_trips_through_the_byte_level_vocabulary() {
        let tokenizer = tiny();
        assert_eq!(tokenizer.vocab_size(), tiny_vocab_size());
        for text in ["hello the world", "café 你好 12345!", "  spaced\n\nlines  "] {
            let ids = tokenizer.encode(text).unwrap();
            assert_eq!(tokenizer.decode(&ids).unwrap(), text);
        }
    }

    #[test]
    fn merges_apply_and_digits_split_one_by_one() {
        let tokenizer = tiny();
        let the = tokenizer.encode(" the").unwrap();
        assert_eq!(the.len(), 1, "` the` merges to one token: {the:?}");
        assert_eq!(tokenizer.encode("123").unwrap().len(), 3);
    }

    #[test]
    fn special_token_markers_become_their_ids_and_are_dropped_when_decoding() {
        let tokenizer = tiny();
        let ids = tokenizer
            .encode("<|im_start|>user\nhello<|im_end|>")
            .unwrap();
        assert_eq!(ids.first(), Some(&1));
        assert_eq!(ids.last(), Some(&2));
        assert_eq!(tokenizer.decode(&ids).unwrap(), "user\nhello");
        assert_eq!(tokenizer.stop_tokens()[0], 2);
        assert!(tokenizer.stop_tokens().contains(&0));
    }

    #[test]
    fn the_chat_prompt_uses_the_template_default_system_turn() {
        let tokenizer = tiny();
        assert_eq!(
            tokenizer.chat_prompt(None, "Hi"),
            "<|im_start|>system\nYou are tiny.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert!(tokenizer
            .chat_prompt(Some("Be brief."), "Hi")
            .starts_with("<|im_start|>system\nBe brief.<|im_end|>\n"));
    }

    #[test]
    fn streamed_text_holds_back_split_characters() {
        let tokenizer = tiny();
        let ids = tokenizer.encode("é!").unwrap();
        assert_eq!(ids.len(), 3, "é is two byte tokens");
        let mut stream = tokenizer.stream_decoder();
        let pieces: Vec<String> = ids.iter().map(|&id| stream.push(id).unwrap()).collect();
        assert_eq!(pieces, vec!["".to_string(), "é".into(), "!".into()]);
    }
}
