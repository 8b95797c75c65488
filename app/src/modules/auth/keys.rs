//! Storage keys of the accounts module (all under `auth/`).

use nesa_types::Address;

/// Module prefix; `store/auth/key` queries are relative to it.
pub const PREFIX: &[u8] = b"auth/";
/// The next account number to hand out.
pub const NEXT_ACCOUNT_NUMBER: &[u8] = b"auth/next_account_number";

/// Where the account at `address` is stored.
pub fn account(address: &Address) -> Vec<u8> {
    [b"auth/acc/".as_slice(), &address.length_prefixed()].concat()
}
