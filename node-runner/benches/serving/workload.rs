//! What every run of the serving and swarm benchmarks feeds: the prompt (real English, so
//! the ids are those of a real query) and the number of alternating rounds.

use std::path::Path;

use anyhow::{bail, Context, Result};
use nesa_engine::Tokenizer;

/// Tokens of every benchmark prompt.
pub const PROMPT_TOKENS: usize = 64;

/// The prompt's source; its first `PROMPT_TOKENS` tokens are the prompt.
const PROMPT_TEXT: &str =
    "The history of the printing press begins in the fifteenth century, when \
    Johannes Gutenberg combined movable metal type, oil-based inks and a screw press adapted from \
    wine making. Books, which had been copied by hand for centuries, could now be produced in \
    hundreds of identical copies, and their price fell quickly. Within fifty years presses \
    operated in more than two hundred cities across Europe, and millions of volumes had been \
    printed. The new technology spread scientific ideas, religious debates and news faster than \
    ever before.";

/// The first `PROMPT_TOKENS` token ids of the prompt text, by the model's own tokenizer.
pub fn prompt_ids(model: &Path) -> Result<Vec<u32>> {
    let tokenizer = Tokenizer::load(model)?;
    let mut ids = tokenizer.encode(PROMPT_TEXT)?;
    if ids.len() < PROMPT_TOKENS {
        bail!(
            "the prompt text has {} tokens, fewer than {PROMPT_TOKENS}",
            ids.len()
        );
    }
    ids.truncate(PROMPT_TOKENS);
    Ok(ids)
}

/// Alternating rounds: `NESA_BENCH_ROUNDS`, 3 by default.
pub fn rounds() -> Result<usize> {
    match std::env::var("NESA_BENCH_ROUNDS") {
        Ok(value) => value
            .parse()
            .ok()
            .filter(|&rounds| rounds > 0)
            .context("NESA_BENCH_ROUNDS must be a positive whole number"),
        Err(_) => Ok(3),
    }
}
