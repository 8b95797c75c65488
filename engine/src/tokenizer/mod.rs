//! A model's tokenizer, built from its GGUF metadata (`tokenizer.ggml.*`) rather than a
//! separate tokenizer.json, so a model is one file. Byte-level BPE as in GPT-2, with the
//! pre-tokenizer SmolLM2 uses (digits split one by one); this matches llama.cpp on mixed
//! text, including the tokens right after special tokens.
//!
//! Users encode prompts and decode answers with it, node runners feed the engine with it, and
//! both compute the same [`Tokenizer::sha256`] that a kernel registers on chain.

mod chat;
#[doc(hidden)]
#[cfg(any(test, feature = "testing"))]
pub mod fixture;

use std::path::Path;

use sha2::{Digest, Sha256};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior};

use crate::gguf::{self, GgufError, Metadata, MetadataError, Value};
use chat::ChatTemplate;
pub use chat::{Role, Turn};

/// GPT-2's pre-tokenizer pattern (contractions, letters, numbers, punctuation, spaces).
const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// GGUF token type of ordinary vocabulary entries; every other type is a special token.
const TOKEN_TYPE_NORMAL: i64 = 1;

/// Every way building or using a tokenizer can fail.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error(transparent)]
    File(#[from] GgufError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("tokenizer model `{0}` is not supported: only byte-level BPE (`gpt2`) is")]
    UnsupportedModel(String),
    #[error("tokenizer metadata is malformed: {0}")]
    Malformed(String),
    #[error("cannot build the tokenizer: {0}")]
    Build(String),
    #[error("cannot encode text: {0}")]
    Encode(String),
    #[error("cannot decode tokens: {0}")]
    Decode(String),
}

/// Results of tokenizer operations.
pub type Result<T, E = TokenizerError> = std::result::Result<T, E>;

/// Text to token ids and back, plus the model's chat format.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    bos_token: Option<u32>,
    add_bos: bool,
    stop_tokens: Vec<u32>,
    chat: ChatTemplate,
    sha256: [u8; 32],
}

impl Tokenizer {
    /// Reads the tokenizer of a GGUF model file.
    pub fn load(path: &Path) -> Result<Self> {
        Self::from_gguf_metadata(&gguf::read_content(path)?.metadata)
    }

    /// Builds the tokenizer from `tokenizer.ggml.*` metadata (model `gpt2`).
    pub fn from_gguf_metadata(metadata: &Metadata) -> Result<Self> {
        let model = gguf::metadata_string(metadata, "tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(TokenizerError::UnsupportedModel(model.to_string()));
        }
        let tokens = gguf::metadata_strings(metadata, "tokenizer.ggml.tokens")?;
        let merge_lines = gguf::metadata_strings(metadata, "tokenizer.ggml.merges")?;
        let sha256 = vocabulary_sha256(&tokens, &merge_lines);
        let merges = merge_lines
            .iter()
            .map(|merge| {
                merge
                    .split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| {
                        TokenizerError::Malformed(format!("merge `{merge}` is not two tokens"))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let token_types = token_types(metadata, tokens.len())?;

        let mut vocab = tokenizers::models::bpe::Vocab::with_capacity(tokens.len());
        for (id, token) in tokens.iter().enumerate() {
            vocab.entry(token.to_string()).or_insert(id as u32);
        }
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| TokenizerError::Build(format!("BPE: {e}")))?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        let split = |pattern: &str| -> Result<Split> {
            Split::new(
                SplitPattern::Regex(pattern.into()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| TokenizerError::Build(format!("split pattern: {e}")))
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
        inner
            .add_special_tokens(specials)
            .map_err(|e| TokenizerError::Build(format!("special tokens: {e}")))?;

        let token_id = |key: &str| -> Option<u32> {
            gguf::metadata_usize(metadata, key)
                .ok()
                .and_then(|id| u32::try_from(id).ok())
        };
        let bos_token = token_id("tokenizer.ggml.bos_token_id");
        let add_bos = metadata
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(false);
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
            chat: ChatTemplate::from_gguf_metadata(metadata),
            sha256,
        })
    }

    /// Token ids of `text`; special-token markers in it (`<|im_start|>`) become their ids, and
    /// the BOS token is prepended when the model asks for it.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
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
            .map_err(|e| TokenizerError::Decode(e.to_string()))
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

    /// A whole conversation in the model's chat format, ending where the assistant speaks
    /// next (the template's default system turn first when the conversation has none).
    pub fn chat_conversation(&self, turns: &[Turn<'_>]) -> String {
        self.chat.render_conversation(turns)
    }

    /// The tokenizer hash a kernel registers on chain (`tokenizer_sha256`): sha256 over
    /// `tokenizer.ggml.tokens` then `tokenizer.ggml.merges`, each item's bytes followed by a
    /// 0 byte. Users check it against the kernel before asking, so both sides tokenize alike.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
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

/// The on-chain tokenizer hash. Its byte definition is consensus between users and kernel
/// owners: changing it changes every registered `tokenizer_sha256`.
fn vocabulary_sha256(tokens: &[&str], merges: &[&str]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for item in tokens.iter().chain(merges) {
        hasher.update(item.as_bytes());
        hasher.update([0u8]);
    }
    hasher.finalize().into()
}

/// `tokenizer.ggml.token_type`, or every token normal when the key is absent.
fn token_types(metadata: &Metadata, token_count: usize) -> Result<Vec<i64>> {
    const KEY: &str = "tokenizer.ggml.token_type";
    if !metadata.contains_key(KEY) {
        return Ok(vec![TOKEN_TYPE_NORMAL; token_count]);
    }
    let types = gguf::metadata_array(metadata, KEY)?
        .iter()
        .map(|v| match v {
            Value::I32(t) => Ok(*t as i64),
            Value::U32(t) => Ok(*t as i64),
            other => Err(MetadataError::new(
                KEY,
                format!("token type {other:?} is not an integer"),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if types.len() != token_count {
        return Err(TokenizerError::Malformed(format!(
            "{} token types for {token_count} tokens",
            types.len()
        )));
    }
    Ok(types)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Tokenizer {
        Tokenizer::from_gguf_metadata(&fixture::metadata()).unwrap()
    }

    #[test]
    fn text_round_trips_through_the_byte_level_vocabulary() {
        let tokenizer = tiny();
        assert_eq!(tokenizer.vocab_size(), fixture::tokens().len());
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
    fn a_conversation_keeps_its_turns_in_order_and_ends_where_the_assistant_speaks() {
        let tokenizer = tiny();
        let turns = [
            Turn::user("Hi"),
            Turn::assistant("Hello!"),
            Turn::user("Bye"),
        ];
        assert_eq!(
            tokenizer.chat_conversation(&turns),
            "<|im_start|>system\nYou are tiny.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"
        );
        let own_system = [Turn::system("Be brief."), Turn::user("Hi")];
        assert_eq!(
            tokenizer.chat_conversation(&own_system),
            tokenizer.chat_prompt(Some("Be brief."), "Hi")
        );
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

    #[test]
    fn the_hash_covers_tokens_then_merges_each_followed_by_a_zero_byte() {
        let mut expected = Sha256::new();
        for token in fixture::tokens() {
            expected.update(token.as_bytes());
            expected.update([0u8]);
        }
        for (a, b) in fixture::MERGES {
            expected.update(format!("{a} {b}").as_bytes());
            expected.update([0u8]);
        }
        let expected: [u8; 32] = expected.finalize().into();
        assert_eq!(tiny().sha256(), expected);
    }

    #[test]
    fn a_different_vocabulary_has_a_different_hash() {
        let mut metadata = fixture::metadata();
        let merges = Value::Array(
            fixture::MERGES[..5]
                .iter()
                .map(|(a, b)| Value::String(format!("{a} {b}")))
                .collect(),
        );
        metadata.insert("tokenizer.ggml.merges".into(), merges);
        let fewer_merges = Tokenizer::from_gguf_metadata(&metadata).unwrap();
        assert_ne!(fewer_merges.sha256(), tiny().sha256());
    }

    #[test]
    fn a_tokenizer_loads_from_a_gguf_file() {
        let metadata = fixture::metadata();
        let entries: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let path =
            std::env::temp_dir().join(format!("nesa-sdk-tokenizer-{}.gguf", std::process::id()));
        let mut file = std::fs::File::create(&path).unwrap();
        candle_core::quantized::gguf_file::write(&mut file, &entries, &[]).unwrap();
        drop(file);
        let loaded = Tokenizer::load(&path);
        std::fs::remove_file(&path).unwrap();
        let loaded = loaded.unwrap();
        assert_eq!(loaded.sha256(), tiny().sha256());
        assert_eq!(
            loaded.encode("hello").unwrap(),
            tiny().encode("hello").unwrap()
        );
    }

    #[test]
    fn unsupported_and_broken_metadata_are_clear_errors() {
        let mut metadata = fixture::metadata();
        metadata.insert("tokenizer.ggml.model".into(), Value::String("llama".into()));
        assert!(matches!(
            Tokenizer::from_gguf_metadata(&metadata),
            Err(TokenizerError::UnsupportedModel(model)) if model == "llama"
        ));
        let mut metadata = fixture::metadata();
        metadata.remove("tokenizer.ggml.merges");
        let error = Tokenizer::from_gguf_metadata(&metadata).err().unwrap();
        assert!(
            error.to_string().contains("tokenizer.ggml.merges"),
            "{error}"
        );
        assert!(matches!(
            Tokenizer::load(Path::new("/nonexistent/model.gguf")),
            Err(TokenizerError::File(GgufError::Open { .. }))
        ));
    }
}
