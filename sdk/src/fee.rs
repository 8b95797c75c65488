//! Gas limits and fees: `--gas <n|auto>`, `--gas-prices 0.025unes`, `--fees <coins>`.

use std::{fmt, str::FromStr};

use crate::coin::{validate_denom, Coin, CoinError, Coins};

/// Gas limit of a hand-built [`crate::TxBuilder`] and of the copy signed for simulation.
pub const DEFAULT_GAS_LIMIT: u64 = 200_000;
/// Gas price used when the caller gives neither prices nor fees.
pub const DEFAULT_GAS_PRICE: &str = "0.025unes";
/// Margin over simulated gas, in tenths (1.3×, the Cosmos CLIs' usual `--gas-adjustment`;
/// CosmJS's "auto" uses 1.4): execution may touch more state than the simulation did, e.g. a
/// `settle` after one more reveal landed. Gas here is deterministic, so 1.3 leaves room
/// without overpaying.
pub const GAS_ADJUSTMENT_TENTHS: u64 = 13;

/// Most decimals a gas price may have (the Cosmos SDK `Dec` precision).
const MAX_PRICE_DECIMALS: u32 = 18;

/// Why a gas or fee setting could not be parsed or computed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FeeError {
    /// `--gas` is neither a number nor `auto`.
    #[error("invalid gas '{0}': expected a positive integer or 'auto'")]
    InvalidGas(String),
    /// The gas price amount is not a non-negative decimal.
    #[error("invalid gas price '{0}': expected a decimal amount followed by a denom, like {DEFAULT_GAS_PRICE}")]
    InvalidGasPrice(String),
    /// The gas price denom is invalid.
    #[error(transparent)]
    Denom(#[from] CoinError),
    /// gas limit × price does not fit in 128 bits.
    #[error("fee for {gas_limit} gas at {price} overflows")]
    Overflow { gas_limit: u64, price: String },
}

/// How the gas limit of a transaction is chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GasSetting {
    /// Use exactly this gas limit (`--gas <n>`).
    Fixed(u64),
    /// Simulate the transaction and use the gas it used × 1.3 (the default, as CosmJS's
    /// "auto"): a contract call never runs out of a guessed limit.
    #[default]
    Auto,
}

impl FromStr for GasSetting {
    type Err = FeeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "auto" => Ok(Self::Auto),
            number => match number.parse::<u64>() {
                Ok(limit) if limit > 0 => Ok(Self::Fixed(limit)),
                _ => Err(FeeError::InvalidGas(text.to_owned())),
            },
        }
    }
}

/// The gas limit to request for a transaction that used `gas_used` in simulation.
pub fn adjusted_gas_limit(gas_used: u64) -> u64 {
    gas_used.saturating_mul(GAS_ADJUSTMENT_TENTHS).div_ceil(10)
}

/// A price per unit of gas, e.g. `0.025unes`, kept as an exact decimal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GasPrice {
    /// Price × 10^decimals, so that `0.025` is `25` with 3 decimals.
    scaled_amount: u128,
    decimals: u32,
    denom: String,
}

impl GasPrice {
    /// The fee for `gas_limit` gas at this price, rounded up so it never falls below the minimum.
    pub fn fee_for(&self, gas_limit: u64) -> Result<Coin, FeeError> {
        let overflow = || FeeError::Overflow {
            gas_limit,
            price: self.to_string(),
        };
        let scaled_fee = u128::from(gas_limit)
            .checked_mul(self.scaled_amount)
            .ok_or_else(overflow)?;
        let amount = scaled_fee.div_ceil(10u128.pow(self.decimals));
        Ok(Coin {
            amount,
            denom: self.denom.clone(),
        })
    }

    /// Denomination fees are paid in.
    pub fn denom(&self) -> &str {
        &self.denom
    }
}

impl Default for GasPrice {
    fn default() -> Self {
        DEFAULT_GAS_PRICE
            .parse()
            .expect("default gas price is valid")
    }
}

impl FromStr for GasPrice {
    type Err = FeeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || FeeError::InvalidGasPrice(text.to_owned());
        let text = text.trim();
        let number_end = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, denom) = text.split_at(number_end);
        validate_denom(denom)?;
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let all_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
        if (whole.is_empty() && fraction.is_empty())
            || !all_digits(whole)
            || !all_digits(fraction)
            || fraction.len() > MAX_PRICE_DECIMALS as usize
        {
            return Err(invalid());
        }
        let scaled_amount = format!("{whole}{fraction}")
            .parse::<u128>()
            .map_err(|_| invalid())?;
        Ok(Self {
            scaled_amount,
            decimals: fraction.len() as u32,
            denom: denom.to_owned(),
        })
    }
}

impl fmt::Display for GasPrice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scale = 10u128.pow(self.decimals);
        let whole = self.scaled_amount / scale;
        if self.decimals == 0 {
            return write!(f, "{whole}{}", self.denom);
        }
        let fraction = self.scaled_amount % scale;
        let width = self.decimals as usize;
        write!(f, "{whole}.{fraction:0width$}{}", self.denom)
    }
}

/// How the fee of a transaction is chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeeSetting {
    /// Pay gas limit × price (rounded up).
    GasPrice(GasPrice),
    /// Pay exactly these coins, whatever the gas limit.
    Fixed(Coins),
}

impl Default for FeeSetting {
    fn default() -> Self {
        Self::GasPrice(GasPrice::default())
    }
}

impl FeeSetting {
    /// The fee coins for a transaction with `gas_limit`.
    pub fn fee_for(&self, gas_limit: u64) -> Result<Coins, FeeError> {
        match self {
            Self::GasPrice(price) => Ok(price.fee_for(gas_limit)?.into()),
            Self::Fixed(coins) => Ok(coins.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_fee_is_gas_limit_times_default_price() {
        let fee = FeeSetting::default().fee_for(DEFAULT_GAS_LIMIT).unwrap();
        assert_eq!(fee, Coin::unes(5_000).into());
    }

    #[test]
    fn fee_is_rounded_up_to_a_whole_unit() {
        let price: GasPrice = "0.025unes".parse().unwrap();
        assert_eq!(price.fee_for(1).unwrap(), Coin::unes(1));
        assert_eq!(price.fee_for(41).unwrap(), Coin::unes(2));
        assert_eq!(price.fee_for(0).unwrap(), Coin::unes(0));
    }

    #[test]
    fn gas_price_displays_as_written() {
        for text in ["0.025unes", "1unes", "12.500unes", ".5unes"] {
            let price: GasPrice = text.parse().unwrap();
            let expected = if text.starts_with('.') {
                format!("0{text}")
            } else {
                text.to_owned()
            };
            assert_eq!(price.to_string(), expected);
        }
    }

    #[test]
    fn malformed_gas_prices_are_rejected() {
        assert!(matches!(
            "unes".parse::<GasPrice>(),
            Err(FeeError::InvalidGasPrice(_))
        ));
        assert!(matches!(
            "1.2.3unes".parse::<GasPrice>(),
            Err(FeeError::InvalidGasPrice(_))
        ));
        assert!(matches!(
            "-1unes".parse::<GasPrice>(),
            Err(FeeError::Denom(_))
        ));
        assert!(matches!(
            "0.025".parse::<GasPrice>(),
            Err(FeeError::Denom(_))
        ));
    }

    #[test]
    fn gas_is_simulated_unless_a_limit_is_given() {
        assert_eq!(GasSetting::default(), GasSetting::Auto);
    }

    #[test]
    fn gas_setting_parses_numbers_and_auto() {
        assert_eq!("auto".parse::<GasSetting>().unwrap(), GasSetting::Auto);
        assert_eq!(
            "300000".parse::<GasSetting>().unwrap(),
            GasSetting::Fixed(300_000)
        );
        assert!("0".parse::<GasSetting>().is_err());
        assert!("lots".parse::<GasSetting>().is_err());
    }

    #[test]
    fn simulated_gas_gets_a_thirty_percent_margin() {
        assert_eq!(adjusted_gas_limit(100_000), 130_000);
        assert_eq!(adjusted_gas_limit(1), 2);
    }
}
