//! Printing results as text for people or JSON for scripts.

use serde::Serialize;

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Human-readable lines
    Text,
    /// One JSON document
    Json,
}

/// Prints `value` as pretty JSON, or as the text `render` produces.
pub fn emit<T: Serialize>(
    format: OutputFormat,
    value: &T,
    render: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(value)?),
        OutputFormat::Text => println!("{}", render(value).trim_end()),
    }
    Ok(())
}

/// `amount` unes written in whole NES, e.g. 1500000 → "1.5".
pub fn unes_as_nes(amount: u128) -> String {
    let whole = amount / nesa_sdk::UNES_PER_NES;
    let fraction = amount % nesa_sdk::UNES_PER_NES;
    if fraction == 0 {
        return whole.to_string();
    }
    let fraction = format!("{fraction:06}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unes_are_shown_in_whole_nes_without_trailing_zeros() {
        assert_eq!(unes_as_nes(1_500_000), "1.5");
        assert_eq!(unes_as_nes(2_000_000), "2");
        assert_eq!(unes_as_nes(1), "0.000001");
    }
}
