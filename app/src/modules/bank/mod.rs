//! Balances and total supply; `MsgSend` (and the burns contracts ask for).

mod error;
pub mod genesis;
pub mod keys;
pub mod msg;
pub mod query;

pub use error::BankError;
pub use msg::BankMsg;

use cosmrs::proto::cosmos::base::v1beta1::Coin as ProtoCoin;
use nesa_types::{format_coins, validate_coin_list, Address, Coin, CoinError};
use tendermint_proto::v0_38::abci::Event;

use crate::events::event;
use crate::modules::auth;
use crate::state::{StateError, StateRead, StateWrite};

/// The SDK's wording for a coin the chain refuses (codespace `sdk`, code 10).
fn invalid_coins(error: CoinError) -> BankError {
    BankError::InvalidCoins(match error {
        CoinError::MissingAmount(text) => format!("invalid amount `{text}`"),
        CoinError::InvalidDenom(denom) => format!("invalid denom `{denom}`"),
        CoinError::ZeroAmount(coin) => format!("{coin}: amounts must be positive"),
        CoinError::DuplicateDenom(denom) => format!("duplicate denomination {denom}"),
        other => other.to_string(),
    })
}

/// Parses and validates a protobuf coin.
pub fn coin_from_proto(proto: &ProtoCoin) -> Result<Coin, BankError> {
    Coin::from_parts(&proto.amount, &proto.denom).map_err(invalid_coins)
}

/// The protobuf form of a coin.
pub fn coin_to_proto(coin: &Coin) -> ProtoCoin {
    ProtoCoin {
        denom: coin.denom.clone(),
        amount: coin.amount.to_string(),
    }
}

/// Parses a list of coins that must be positive and free of duplicates (order kept).
pub fn parse_coins(protos: &[ProtoCoin]) -> Result<Vec<Coin>, BankError> {
    let coins = protos
        .iter()
        .map(coin_from_proto)
        .collect::<Result<Vec<_>, _>>()?;
    validate_coin_list(&coins).map_err(invalid_coins)?;
    Ok(coins)
}

fn parse_amount(bytes: &[u8]) -> Result<u128, StateError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| StateError::Storage("stored amount is not a decimal number".into()))
}

fn read_amount(state: &(impl StateRead + ?Sized), key: &[u8]) -> Result<u128, StateError> {
    state.get(key)?.map_or(Ok(0), |bytes| parse_amount(&bytes))
}

/// Every amount stored under `prefix`, keyed by the denomination that follows it.
fn coins_under(state: &(impl StateRead + ?Sized), prefix: &[u8]) -> Result<Vec<Coin>, StateError> {
    state
        .prefix(prefix)?
        .into_iter()
        .map(|(key, value)| {
            let denom = String::from_utf8(key[prefix.len()..].to_vec())
                .map_err(|e| StateError::Storage(e.to_string()))?;
            Ok(Coin {
                denom,
                amount: parse_amount(&value)?,
            })
        })
        .collect()
}

fn write_amount(
    state: &mut (impl StateWrite + ?Sized),
    key: Vec<u8>,
    amount: u128,
) -> Result<(), StateError> {
    if amount == 0 {
        state.delete(key)
    } else {
        state.put(key, amount.to_string().into_bytes())
    }
}

/// The balance of `denom` held by `address`.
pub fn balance(
    state: &(impl StateRead + ?Sized),
    address: &Address,
    denom: &str,
) -> Result<u128, StateError> {
    read_amount(state, &keys::balance(address, denom))
}

/// Every non-zero balance of `address`, ordered by denomination.
pub fn balances(
    state: &(impl StateRead + ?Sized),
    address: &Address,
) -> Result<Vec<Coin>, StateError> {
    coins_under(state, &keys::balances_of(address))
}

/// The total supply of `denom`.
pub fn supply(state: &(impl StateRead + ?Sized), denom: &str) -> Result<u128, StateError> {
    read_amount(state, &keys::supply(denom))
}

/// The total supply of every denomination.
pub fn total_supply(state: &(impl StateRead + ?Sized)) -> Result<Vec<Coin>, StateError> {
    coins_under(state, keys::SUPPLY_PREFIX)
}

/// Moves `coins` from `from` to `to`, creating the recipient's account if needed, and records
/// the SDK's `coin_spent`, `coin_received` and `transfer` events.
pub fn send(
    state: &mut (impl StateWrite + ?Sized),
    from: &Address,
    to: &Address,
    coins: &[Coin],
    events: &mut Vec<Event>,
) -> Result<(), BankError> {
    for coin in coins {
        let key = keys::balance(from, &coin.denom);
        let held = read_amount(state, &key)?;
        let left = held.checked_sub(coin.amount).ok_or_else(|| {
            BankError::InsufficientFunds(format!(
                "spendable balance {held}{} is smaller than {coin}",
                coin.denom
            ))
        })?;
        write_amount(state, key, left)?;
    }
    for coin in coins {
        let key = keys::balance(to, &coin.denom);
        let held = read_amount(state, &key)?;
        let sum = held
            .checked_add(coin.amount)
            .ok_or_else(|| BankError::InvalidCoins("balance overflow".into()))?;
        write_amount(state, key, sum)?;
    }
    auth::ensure_account(state, to)?;
    let amount = format_coins(coins);
    let (from_text, to_text) = (from.to_string(), to.to_string());
    events.push(event(
        "coin_spent",
        &[("spender", &from_text), ("amount", &amount)],
    ));
    events.push(event(
        "coin_received",
        &[("receiver", &to_text), ("amount", &amount)],
    ));
    events.push(event(
        "transfer",
        &[
            ("recipient", &to_text),
            ("sender", &from_text),
            ("amount", &amount),
        ],
    ));
    Ok(())
}

/// Destroys `coins` held by `from`, lowering the total supply; records the SDK's `burn` and
/// `coin_spent` events.
pub fn burn(
    state: &mut (impl StateWrite + ?Sized),
    from: &Address,
    coins: &[Coin],
    events: &mut Vec<Event>,
) -> Result<(), BankError> {
    for coin in coins {
        let key = keys::balance(from, &coin.denom);
        let held = read_amount(state, &key)?;
        let left = held.checked_sub(coin.amount).ok_or_else(|| {
            BankError::InsufficientFunds(format!(
                "spendable balance {held}{} is smaller than {coin}",
                coin.denom
            ))
        })?;
        write_amount(state, key, left)?;
        let supply_key = keys::supply(&coin.denom);
        let supply = read_amount(state, &supply_key)?;
        write_amount(state, supply_key, supply.saturating_sub(coin.amount))?;
    }
    let amount = format_coins(coins);
    let burner = from.to_string();
    events.push(event(
        "coin_spent",
        &[("spender", &burner), ("amount", &amount)],
    ));
    events.push(event("burn", &[("burner", &burner), ("amount", &amount)]));
    Ok(())
}

/// Creates `coins` in `to`'s balance and the total supply (genesis only).
pub fn mint(
    state: &mut (impl StateWrite + ?Sized),
    to: &Address,
    coins: &[Coin],
) -> Result<(), BankError> {
    for coin in coins {
        let key = keys::balance(to, &coin.denom);
        let held = read_amount(state, &key)?;
        write_amount(
            state,
            key,
            held.checked_add(coin.amount)
                .ok_or_else(|| BankError::InvalidCoins("balance overflow".into()))?,
        )?;
        let supply_key = keys::supply(&coin.denom);
        let supply = read_amount(state, &supply_key)?;
        write_amount(
            state,
            supply_key,
            supply
                .checked_add(coin.amount)
                .ok_or_else(|| BankError::InvalidCoins("supply overflow".into()))?,
        )?;
    }
    auth::ensure_account(state, to)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Overlay;

    fn unes(amount: u128) -> Vec<Coin> {
        vec![Coin {
            denom: "unes".into(),
            amount,
        }]
    }

    #[test]
    fn send_moves_coins_and_keeps_supply() {
        let (alice, bob) = (Address::from_bytes([1; 20]), Address::from_bytes([2; 20]));
        let mut state = Overlay::new(());
        mint(&mut state, &alice, &unes(100)).unwrap();
        let mut events = vec![];
        send(&mut state, &alice, &bob, &unes(30), &mut events).unwrap();
        assert_eq!(balance(&state, &alice, "unes").unwrap(), 70);
        assert_eq!(balance(&state, &bob, "unes").unwrap(), 30);
        assert_eq!(supply(&state, "unes").unwrap(), 100);
        assert!(
            auth::account(&state, &bob).unwrap().is_some(),
            "recipient account is created"
        );
        assert_eq!(events.len(), 3);
    }

    #[test]
    fn sending_more_than_the_balance_fails_with_insufficient_funds() {
        let (alice, bob) = (Address::from_bytes([1; 20]), Address::from_bytes([2; 20]));
        let mut state = Overlay::new(());
        mint(&mut state, &alice, &unes(10)).unwrap();
        let err = send(&mut state, &alice, &bob, &unes(11), &mut vec![]).unwrap_err();
        assert!(matches!(err, BankError::InsufficientFunds(_)), "{err}");
        assert_eq!(err.code(), 5, "{err}");
    }

    #[test]
    fn zero_and_duplicate_coins_are_rejected() {
        let coin = |amount: &str| ProtoCoin {
            denom: "unes".into(),
            amount: amount.into(),
        };
        assert!(parse_coins(&[coin("0")]).is_err());
        assert!(parse_coins(&[coin("1"), coin("2")]).is_err());
        assert!(parse_coins(&[coin("-1")]).is_err());
        assert_eq!(parse_coins(&[coin("5")]).unwrap(), unes(5));
    }
}
