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

/// A bech32 address cut to its start and end for one-line displays, e.g. `nesa1qxy2k…k3fz`.
pub fn short_address(address: &str) -> String {
    const HEAD: usize = 10;
    const TAIL: usize = 4;
    if address.len() <= HEAD + TAIL + 1 || !address.is_ascii() {
        return address.to_owned();
    }
    format!("{}…{}", &address[..HEAD], &address[address.len() - TAIL..])
}

/// A fixed-point ×1000 parameter (temperature, top-p) as a decimal, e.g. 700 → "0.7".
pub fn milli(value: u32) -> String {
    let fraction = format!("{:03}", value % 1000);
    match fraction.trim_end_matches('0') {
        "" => (value / 1000).to_string(),
        digits => format!("{}.{digits}", value / 1000),
    }
}

/// A fraction as a percentage, e.g. 0.05 → "5%".
pub fn percent(fraction: cosmwasm_std::Decimal) -> String {
    format!(
        "{}%",
        fraction * cosmwasm_std::Decimal::from_ratio(100u128, 1u128)
    )
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

    #[test]
    fn long_addresses_are_shortened_and_short_ones_kept() {
        assert_eq!(
            short_address("nesa1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh"),
            "nesa1qxy2k…0wlh"
        );
        assert_eq!(short_address("nesa1user"), "nesa1user");
    }

    #[test]
    fn milli_values_and_fractions_read_as_decimals() {
        assert_eq!(milli(700), "0.7");
        assert_eq!(milli(1000), "1");
        assert_eq!(milli(1250), "1.25");
        assert_eq!(milli(0), "0");
        assert_eq!(percent(cosmwasm_std::Decimal::percent(5)), "5%");
        assert_eq!(percent(cosmwasm_std::Decimal::permille(125)), "12.5%");
    }
}
