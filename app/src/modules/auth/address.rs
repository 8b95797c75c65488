//! Account addresses: 20 bytes, shown as bech32 with the `nesa` prefix.

use std::fmt;
use std::str::FromStr;

use ripemd::Ripemd160;
use sha2::{Digest, Sha256};

use nesa_genesis::ACCOUNT_PREFIX;

/// A 20-byte account address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address([u8; 20]);

/// Why a string is not a `nesa` address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid address `{input}`: {reason}")]
pub struct AddressError {
    input: String,
    reason: String,
}

impl Address {
    /// Wraps raw bytes.
    pub const fn from_bytes(bytes: [u8; 20]) -> Self {
        Address(bytes)
    }

    /// The address of a compressed secp256k1 public key: ripemd160(sha256(key)).
    pub fn from_secp256k1(public_key: &[u8; 33]) -> Self {
        let sha = Sha256::digest(public_key);
        Address(Ripemd160::digest(sha).into())
    }

    /// The address of a module account: the first 20 bytes of sha256(name), as in the SDK.
    pub fn module(name: &str) -> Self {
        let sha = Sha256::digest(name.as_bytes());
        Address(sha[..20].try_into().expect("20 bytes"))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hrp = bech32::Hrp::parse(ACCOUNT_PREFIX).expect("valid prefix");
        let text = bech32::encode::<bech32::Bech32>(hrp, &self.0).expect("20 bytes encode");
        f.write_str(&text)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = |reason: String| AddressError { input: input.to_string(), reason };
        let (hrp, data) = bech32::decode(input).map_err(|e| error(e.to_string()))?;
        if hrp.as_str() != ACCOUNT_PREFIX {
            return Err(error(format!("expected prefix `{ACCOUNT_PREFIX}`, found `{hrp}`")));
        }
        let bytes: [u8; 20] = data.try_into().map_err(|d: Vec<u8>| error(format!("expected 20 bytes, found {}", d.len())))?;
        Ok(Address(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_through_bech32() {
        let address = Address::from_bytes([42; 20]);
        let text = address.to_string();
        assert!(text.starts_with("nesa1"));
        assert_eq!(text.parse::<Address>().unwrap(), address);
    }

    #[test]
    fn an_address_with_a_bad_checksum_is_rejected() {
        let mut text = Address::from_bytes([1; 20]).to_string();
        text.pop();
        text.push('q');
        assert!(text.parse::<Address>().is_err());
    }

    #[test]
    fn the_fee_collector_matches_the_sdk_module_address() {
        // Cosmos SDK: authtypes.NewModuleAddress("fee_collector") = 17xpfvakm2amg962yls6f84z3kell8c5l…
        let bytes = Address::module("fee_collector");
        assert_eq!(hex::encode(bytes.as_bytes()), "f1829676db577682e944fc3493d451b67ff3e29f");
    }
}
