//! Addresses: 20 bytes for keys and modules, 32 for contracts, shown as bech32 with the
//! `nesa` prefix.

use std::fmt;
use std::str::FromStr;

use ripemd::Ripemd160;
use sha2::{Digest, Sha256};

use nesa_genesis::ACCOUNT_PREFIX;

/// Longest address accepted (contract addresses are 32 bytes).
pub const MAX_ADDRESS_LEN: usize = 32;

/// An account or contract address (1 to 32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    len: u8,
    bytes: [u8; MAX_ADDRESS_LEN],
}

/// Why a string is not a `nesa` address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid address `{input}`: {reason}")]
pub struct AddressError {
    input: String,
    reason: String,
}

impl Address {
    /// A 20-byte account address.
    pub fn from_bytes(bytes: [u8; 20]) -> Self {
        Self::from_slice(&bytes).expect("20 bytes fit")
    }

    /// An address of 1 to 32 raw bytes.
    pub fn from_slice(raw: &[u8]) -> Result<Self, AddressError> {
        if raw.is_empty() || raw.len() > MAX_ADDRESS_LEN {
            return Err(AddressError {
                input: hex::encode(raw),
                reason: format!(
                    "an address has 1 to {MAX_ADDRESS_LEN} bytes, not {}",
                    raw.len()
                ),
            });
        }
        let mut bytes = [0u8; MAX_ADDRESS_LEN];
        bytes[..raw.len()].copy_from_slice(raw);
        Ok(Address {
            len: raw.len() as u8,
            bytes,
        })
    }

    /// The address of a compressed secp256k1 public key: ripemd160(sha256(key)).
    pub fn from_secp256k1(public_key: &[u8; 33]) -> Self {
        let sha = Sha256::digest(public_key);
        Self::from_bytes(Ripemd160::digest(sha).into())
    }

    /// The address of a module account: the first 20 bytes of sha256(name), as in the SDK.
    pub fn module(name: &str) -> Self {
        let sha = Sha256::digest(name.as_bytes());
        Self::from_slice(&sha[..20]).expect("20 bytes")
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// The bytes with a one-byte length prefix, so keys built from addresses of different
    /// lengths never collide (the SDK's `address.MustLengthPrefix`).
    pub fn length_prefixed(&self) -> Vec<u8> {
        [&[self.len][..], self.as_bytes()].concat()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hrp = bech32::Hrp::parse(ACCOUNT_PREFIX).expect("valid prefix");
        let text =
            bech32::encode::<bech32::Bech32>(hrp, self.as_bytes()).expect("short addresses encode");
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
        let error = |reason: String| AddressError {
            input: input.to_string(),
            reason,
        };
        let (hrp, data) = bech32::decode(input).map_err(|e| error(e.to_string()))?;
        if hrp.as_str() != ACCOUNT_PREFIX {
            return Err(error(format!(
                "expected prefix `{ACCOUNT_PREFIX}`, found `{hrp}`"
            )));
        }
        if data.len() != 20 && data.len() != 32 {
            return Err(error(format!(
                "expected 20 or 32 bytes, found {}",
                data.len()
            )));
        }
        Self::from_slice(&data)
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
    fn contract_addresses_of_32_bytes_round_trip() {
        let address = Address::from_slice(&[7; 32]).unwrap();
        assert_eq!(address.to_string().parse::<Address>().unwrap(), address);
        assert_eq!(address.length_prefixed()[0], 32);
        assert!(Address::from_slice(&[1; 33]).is_err());
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
        assert_eq!(
            hex::encode(bytes.as_bytes()),
            "f1829676db577682e944fc3493d451b67ff3e29f"
        );
    }
}
