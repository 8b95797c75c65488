//! Token amounts: `Coin` ("1000unes") and `Coins` ("10unes,5foo"), as the Cosmos SDK writes them.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::BASE_DENOM;

/// Why a coin or coin list could not be parsed or converted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CoinError {
    /// Nothing was given where a coin was expected.
    #[error("empty coin: expected an amount followed by a denom, like 1000{BASE_DENOM}")]
    Empty,
    /// The text does not start with an integer amount.
    #[error("'{0}' has no integer amount: expected an amount followed by a denom, like 1000{BASE_DENOM}")]
    MissingAmount(String),
    /// The amount does not fit in 128 bits.
    #[error("amount in '{0}' is too large")]
    AmountTooLarge(String),
    /// The denom breaks the Cosmos SDK rule `[a-zA-Z][a-zA-Z0-9/:._-]{{2,127}}`.
    #[error("'{0}' is not a valid denom: it must start with a letter and be 3-128 letters, digits or /:._-")]
    InvalidDenom(String),
    /// A coin list names the same denom twice.
    #[error("denom '{0}' appears twice in the coin list")]
    DuplicateDenom(String),
    /// A coin list contains a zero amount, which the chain rejects.
    #[error("'{0}' has a zero amount: every coin in a list must be positive")]
    ZeroAmount(String),
}

/// An amount of one denomination, in its smallest unit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Coin {
    /// Amount in the smallest unit of `denom`.
    pub amount: u128,
    /// Denomination, e.g. `unes`.
    pub denom: String,
}

impl Coin {
    /// A coin of `amount` `denom`, checking the denom.
    pub fn new(amount: u128, denom: &str) -> Result<Self, CoinError> {
        validate_denom(denom)?;
        Ok(Self {
            amount,
            denom: denom.to_owned(),
        })
    }

    /// A coin from its amount as a decimal string and its denom, as protobuf and genesis
    /// carry them.
    pub fn from_parts(amount: &str, denom: &str) -> Result<Self, CoinError> {
        let amount = amount
            .parse()
            .map_err(|_| CoinError::MissingAmount(format!("{amount}{denom}")))?;
        Self::new(amount, denom)
    }

    /// An amount of the base denom `unes`.
    pub fn unes(amount: u128) -> Self {
        Self {
            amount,
            denom: BASE_DENOM.to_owned(),
        }
    }
}

impl FromStr for Coin {
    type Err = CoinError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(CoinError::Empty);
        }
        let digits_end = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        if digits_end == 0 {
            return Err(CoinError::MissingAmount(text.to_owned()));
        }
        let (digits, denom) = text.split_at(digits_end);
        let amount = digits
            .parse()
            .map_err(|_| CoinError::AmountTooLarge(text.to_owned()))?;
        // The Cosmos SDK accepts whitespace between amount and denom ("10 unes"); so do we.
        Self::new(amount, denom.trim_start())
    }
}

impl fmt::Display for Coin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.amount, self.denom)
    }
}

/// A list of coins with distinct denoms, kept sorted by denom as the chain requires.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coins(Vec<Coin>);

impl Coins {
    /// Builds a sorted list, rejecting duplicate denoms.
    pub fn new(mut coins: Vec<Coin>) -> Result<Self, CoinError> {
        coins.sort_by(|a, b| a.denom.cmp(&b.denom));
        if let Some(pair) = coins.windows(2).find(|pair| pair[0].denom == pair[1].denom) {
            return Err(CoinError::DuplicateDenom(pair[0].denom.clone()));
        }
        Ok(Self(coins))
    }

    /// The coins, sorted by denom.
    pub fn as_slice(&self) -> &[Coin] {
        &self.0
    }

    /// True when the list holds no coin.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The amount of `denom` in the list (zero when absent).
    pub fn amount_of(&self, denom: &str) -> u128 {
        self.0
            .iter()
            .find(|c| c.denom == denom)
            .map_or(0, |c| c.amount)
    }
}

impl From<Coin> for Coins {
    fn from(coin: Coin) -> Self {
        Self(vec![coin])
    }
}

impl IntoIterator for Coins {
    type Item = Coin;
    type IntoIter = std::vec::IntoIter<Coin>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl FromStr for Coins {
    type Err = CoinError;

    /// Parses "10unes,5foo"; an empty string is an empty list, as in the Cosmos SDK.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let coins = text
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<Coin>, _>>()?;
        validate_coin_list(&coins)?;
        Self::new(coins)
    }
}

impl fmt::Display for Coins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_coins(&self.0))
    }
}

/// Formats coins as the SDK does in events and on the command line: `10unes,5uatom`.
pub fn format_coins(coins: &[Coin]) -> String {
    coins
        .iter()
        .map(Coin::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Checks a coin list as the chain accepts it in messages: every amount positive and no denom
/// twice (in the order given, which is kept).
pub fn validate_coin_list(coins: &[Coin]) -> Result<(), CoinError> {
    for (i, coin) in coins.iter().enumerate() {
        if coin.amount == 0 {
            return Err(CoinError::ZeroAmount(coin.to_string()));
        }
        if coins[..i].iter().any(|c| c.denom == coin.denom) {
            return Err(CoinError::DuplicateDenom(coin.denom.clone()));
        }
    }
    Ok(())
}

/// True for a valid denom: the Cosmos SDK rule `[a-zA-Z][a-zA-Z0-9/:._-]{2,127}`.
pub fn is_valid_denom(denom: &str) -> bool {
    validate_denom(denom).is_ok()
}

/// Checks the Cosmos SDK denom rule `[a-zA-Z][a-zA-Z0-9/:._-]{2,127}`.
pub fn validate_denom(denom: &str) -> Result<(), CoinError> {
    let starts_with_letter = denom
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic());
    let allowed_chars = denom
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | ':' | '.' | '_' | '-'));
    if starts_with_letter && allowed_chars && (3..=128).contains(&denom.len()) {
        Ok(())
    } else {
        Err(CoinError::InvalidDenom(denom.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coin_parses_amount_and_denom() {
        assert_eq!("1000unes".parse::<Coin>().unwrap(), Coin::unes(1000));
        assert_eq!(
            "5 ibc/ABC".parse::<Coin>().unwrap(),
            Coin::new(5, "ibc/ABC").unwrap()
        );
    }

    #[test]
    fn coin_displays_as_it_is_written() {
        assert_eq!(Coin::unes(42).to_string(), "42unes");
    }

    #[test]
    fn coin_without_an_amount_is_rejected() {
        assert_eq!(
            "unes".parse::<Coin>(),
            Err(CoinError::MissingAmount("unes".into()))
        );
        assert_eq!(
            "-5unes".parse::<Coin>(),
            Err(CoinError::MissingAmount("-5unes".into()))
        );
        assert_eq!("".parse::<Coin>(), Err(CoinError::Empty));
    }

    #[test]
    fn coin_with_a_decimal_or_bad_denom_is_rejected() {
        assert_eq!(
            "1.5unes".parse::<Coin>(),
            Err(CoinError::InvalidDenom(".5unes".into()))
        );
        assert_eq!(
            "10".parse::<Coin>(),
            Err(CoinError::InvalidDenom("".into()))
        );
        assert_eq!(
            "10u".parse::<Coin>(),
            Err(CoinError::InvalidDenom("u".into()))
        );
        assert_eq!(
            "10un$s".parse::<Coin>(),
            Err(CoinError::InvalidDenom("un$s".into()))
        );
    }

    #[test]
    fn coin_amount_beyond_128_bits_is_rejected() {
        let huge = format!("{}0unes", u128::MAX);
        assert_eq!(huge.parse::<Coin>(), Err(CoinError::AmountTooLarge(huge)));
    }

    #[test]
    fn coin_list_parses_and_sorts_by_denom() {
        let coins: Coins = "10unes,5foo".parse().unwrap();
        assert_eq!(
            coins.as_slice(),
            &[Coin::new(5, "foo").unwrap(), Coin::unes(10)]
        );
        assert_eq!(coins.to_string(), "5foo,10unes");
        assert_eq!(coins.amount_of("unes"), 10);
        assert_eq!(coins.amount_of("bar"), 0);
    }

    #[test]
    fn empty_coin_list_parses_as_no_coins() {
        assert!("".parse::<Coins>().unwrap().is_empty());
    }

    #[test]
    fn coin_list_with_a_duplicate_denom_is_rejected() {
        assert_eq!(
            "1unes,2unes".parse::<Coins>(),
            Err(CoinError::DuplicateDenom("unes".into()))
        );
    }

    #[test]
    fn coin_list_with_a_zero_amount_is_rejected() {
        assert_eq!(
            "0unes".parse::<Coins>(),
            Err(CoinError::ZeroAmount("0unes".into()))
        );
    }

    #[test]
    fn coin_list_with_a_trailing_comma_is_rejected() {
        assert_eq!("1unes,".parse::<Coins>(), Err(CoinError::Empty));
    }

    #[test]
    fn coin_list_in_message_order_rejects_zero_and_duplicates() {
        let list = [Coin::unes(5), Coin::new(1, "foo").unwrap()];
        validate_coin_list(&list).unwrap();
        assert_eq!(format_coins(&list), "5unes,1foo");
        assert_eq!(
            validate_coin_list(&[Coin::unes(0)]),
            Err(CoinError::ZeroAmount("0unes".into()))
        );
        assert_eq!(
            validate_coin_list(&[Coin::unes(1), Coin::unes(2)]),
            Err(CoinError::DuplicateDenom("unes".into()))
        );
        assert!(is_valid_denom("unes") && !is_valid_denom("u"));
    }
}
