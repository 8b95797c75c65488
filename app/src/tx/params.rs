//! Chain parameters the transaction pipeline enforces, parsed once from genesis.

use nesa_genesis::ChainParams;

/// Fixed-point scale of the minimum gas price (18 decimals, like the SDK's `Dec`).
const PRICE_SCALE: u128 = 1_000_000_000_000_000_000;

/// Parsed chain parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// Minimum gas price × 10^18.
    min_gas_price_scaled: u128,
    pub fee_denom: String,
    pub max_tx_bytes: u64,
    pub max_tx_gas: u64,
    pub max_memo_characters: u64,
    source: ChainParams,
}

impl Params {
    /// Parses genesis parameters.
    pub fn from_genesis(params: &ChainParams) -> Result<Self, String> {
        Ok(Params {
            min_gas_price_scaled: parse_decimal(&params.min_gas_price)?,
            fee_denom: params.fee_denom.clone(),
            max_tx_bytes: params.max_tx_bytes,
            max_tx_gas: params.max_tx_gas,
            max_memo_characters: params.max_memo_characters,
            source: params.clone(),
        })
    }

    /// The genesis form, for storing in state.
    pub fn to_genesis(&self) -> &ChainParams {
        &self.source
    }

    /// The smallest fee (in `fee_denom`) accepted for `gas_limit`: ceil(limit × min price).
    pub fn required_fee(&self, gas_limit: u64) -> u128 {
        let scaled = (gas_limit as u128).saturating_mul(self.min_gas_price_scaled);
        scaled.div_ceil(PRICE_SCALE)
    }
}

fn parse_decimal(text: &str) -> Result<u128, String> {
    let error = || {
        format!("min_gas_price `{text}` must be a non-negative decimal with at most 18 fractional digits")
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || fraction.len() > 18
        || !whole
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit())
    {
        return Err(error());
    }
    let whole: u128 = whole.parse().map_err(|_| error())?;
    let fraction_scaled: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse::<u128>().map_err(|_| error())? * 10u128.pow(18 - fraction.len() as u32)
    };
    whole
        .checked_mul(PRICE_SCALE)
        .and_then(|w| w.checked_add(fraction_scaled))
        .ok_or_else(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_required_fee_rounds_up() {
        let params = Params::from_genesis(&ChainParams::default()).unwrap();
        assert_eq!(params.required_fee(200_000), 5_000);
        assert_eq!(params.required_fee(1), 1);
        assert_eq!(params.required_fee(0), 0);
    }

    #[test]
    fn malformed_gas_prices_are_rejected() {
        for bad in ["", ".5", "1e3", "-1", "0.1234567890123456789"] {
            let params = ChainParams {
                min_gas_price: bad.into(),
                ..ChainParams::default()
            };
            assert!(Params::from_genesis(&params).is_err(), "{bad}");
        }
    }
}
