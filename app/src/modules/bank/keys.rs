//! Storage keys of the bank module (all under `bank/`).

use nesa_types::Address;

/// Module prefix; `store/bank/key` queries are relative to it.
pub const PREFIX: &[u8] = b"bank/";
/// Prefix of total-supply entries.
pub const SUPPLY_PREFIX: &[u8] = b"bank/supply/";

/// Prefix of every balance of `address` (length-prefixed, so 20- and 32-byte addresses never
/// share a prefix).
pub fn balances_of(address: &Address) -> Vec<u8> {
    [b"bank/balance/".as_slice(), &address.length_prefixed()].concat()
}

/// Where the balance of `denom` held by `address` is stored: `bank/balance/<len><address><denom>`
/// → decimal amount.
pub fn balance(address: &Address, denom: &str) -> Vec<u8> {
    [balances_of(address).as_slice(), denom.as_bytes()].concat()
}

/// Where the total supply of `denom` is stored.
pub fn supply(denom: &str) -> Vec<u8> {
    [SUPPLY_PREFIX, denom.as_bytes()].concat()
}
