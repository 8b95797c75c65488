//! Addresses, shown as bech32 with the `nesa` prefix: 20 bytes for keys and module accounts
//! ([`AccountAddress`]), 32 for contracts ([`ContractAddress`]), and [`Address`] for either,
//! which is what the chain keys balances and accounts by.

use std::fmt;
use std::str::FromStr;

use bech32::{Bech32, Hrp};
use ripemd::Ripemd160;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::ACCOUNT_PREFIX;

/// Length of an account address: ripemd160(sha256(public key)), or a module's sha256 prefix.
pub const ACCOUNT_ADDRESS_LEN: usize = 20;
/// Length of a contract address (wasmd's classic and instantiate2 derivations).
pub const CONTRACT_ADDRESS_LEN: usize = 32;
/// Longest address accepted.
pub const MAX_ADDRESS_LEN: usize = 32;

/// Why a string, byte string or key is not a `nesa` address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The string is not valid bech32 (or a prefix is not a valid bech32 prefix).
    #[error("invalid address `{input}`: {reason}")]
    NotBech32 { input: String, reason: String },
    /// The bech32 prefix is not `nesa`.
    #[error("invalid address `{input}`: expected prefix `{ACCOUNT_PREFIX}`, found `{prefix}`")]
    WrongPrefix { input: String, prefix: String },
    /// The payload has a length this kind of address cannot have.
    #[error("invalid address `{input}`: expected {expected} bytes, found {len}")]
    WrongLength {
        input: String,
        expected: &'static str,
        len: usize,
    },
    /// The public key is not a compressed secp256k1 key.
    #[error("cannot derive an address from this public key: {0}")]
    PublicKey(String),
}

/// Decodes a `nesa1…` string into its payload.
fn decode(input: &str) -> Result<Vec<u8>, AddressError> {
    let (hrp, data) = bech32::decode(input).map_err(|e| AddressError::NotBech32 {
        input: input.to_string(),
        reason: e.to_string(),
    })?;
    if hrp.as_str() != ACCOUNT_PREFIX {
        return Err(AddressError::WrongPrefix {
            input: input.to_string(),
            prefix: hrp.to_string(),
        });
    }
    Ok(data)
}

/// Encodes `bytes` as bech32 under `prefix`.
fn encode(prefix: &str, bytes: &[u8]) -> Result<String, AddressError> {
    let not_bech32 = |reason: String| AddressError::NotBech32 {
        input: prefix.to_string(),
        reason,
    };
    let hrp = Hrp::parse(prefix).map_err(|e| not_bech32(e.to_string()))?;
    bech32::encode::<Bech32>(hrp, bytes).map_err(|e| not_bech32(e.to_string()))
}

fn wrong_length(input: &str, expected: &'static str, len: usize) -> AddressError {
    AddressError::WrongLength {
        input: input.to_string(),
        expected,
        len,
    }
}

/// `bytes` as exactly `N` bytes; `shown` names the address in the error.
fn exact<const N: usize>(bytes: &[u8], shown: &str) -> Result<[u8; N], AddressError> {
    let expected = if N == ACCOUNT_ADDRESS_LEN { "20" } else { "32" };
    bytes
        .try_into()
        .map_err(|_| wrong_length(shown, expected, bytes.len()))
}

/// An account or contract address (20 or 32 bytes; any 1 to 32 from raw bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    len: u8,
    bytes: [u8; MAX_ADDRESS_LEN],
}

impl Address {
    /// A 20-byte account address.
    pub fn from_bytes(bytes: [u8; ACCOUNT_ADDRESS_LEN]) -> Self {
        AccountAddress::from_bytes(bytes).into()
    }

    /// An address of 1 to 32 raw bytes.
    pub fn from_slice(raw: &[u8]) -> Result<Self, AddressError> {
        if raw.is_empty() || raw.len() > MAX_ADDRESS_LEN {
            return Err(wrong_length(&hex::encode(raw), "1 to 32", raw.len()));
        }
        let mut bytes = [0u8; MAX_ADDRESS_LEN];
        bytes[..raw.len()].copy_from_slice(raw);
        Ok(Address {
            len: raw.len() as u8,
            bytes,
        })
    }

    /// The address of a compressed secp256k1 public key.
    pub fn from_secp256k1(public_key: &[u8; 33]) -> Self {
        AccountAddress::from_secp256k1(public_key).into()
    }

    /// The address of the module account `name` (the SDK's `authtypes.NewModuleAddress`).
    pub fn module(name: &str) -> Self {
        AccountAddress::module(name).into()
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

    /// The same bytes under another bech32 prefix (e.g. `cosmos`), for cross-chain display.
    pub fn to_bech32_with_prefix(&self, prefix: &str) -> Result<String, AddressError> {
        encode(prefix, self.as_bytes())
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let data = decode(input)?;
        if data.len() != ACCOUNT_ADDRESS_LEN && data.len() != CONTRACT_ADDRESS_LEN {
            return Err(wrong_length(input, "20 or 32", data.len()));
        }
        Self::from_slice(&data)
    }
}

/// A 20-byte account address: a key's or a module account's.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountAddress([u8; ACCOUNT_ADDRESS_LEN]);

impl AccountAddress {
    /// Wraps raw address bytes.
    pub const fn from_bytes(bytes: [u8; ACCOUNT_ADDRESS_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw 20 address bytes.
    pub const fn as_bytes(&self) -> &[u8; ACCOUNT_ADDRESS_LEN] {
        &self.0
    }

    /// The address of a compressed secp256k1 public key: ripemd160(sha256(key)).
    pub fn from_secp256k1(public_key: &[u8; 33]) -> Self {
        Self(Ripemd160::digest(Sha256::digest(public_key)).into())
    }

    /// The address of a public key given as bytes; it must be a compressed secp256k1 key.
    pub fn from_secp256k1_slice(public_key: &[u8]) -> Result<Self, AddressError> {
        let key: &[u8; 33] = public_key.try_into().map_err(|_| {
            AddressError::PublicKey(format!(
                "a compressed secp256k1 key has 33 bytes, not {}",
                public_key.len()
            ))
        })?;
        Ok(Self::from_secp256k1(key))
    }

    /// The address of a module account: the first 20 bytes of sha256(name), as in the SDK.
    pub fn module(name: &str) -> Self {
        let sha = Sha256::digest(name.as_bytes());
        Self(sha[..ACCOUNT_ADDRESS_LEN].try_into().expect("20 bytes"))
    }

    /// The same bytes under another bech32 prefix (e.g. `cosmos`), for cross-chain display.
    pub fn to_bech32_with_prefix(&self, prefix: &str) -> Result<String, AddressError> {
        encode(prefix, &self.0)
    }
}

impl FromStr for AccountAddress {
    type Err = AddressError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Ok(Self(exact(&decode(input)?, input)?))
    }
}

/// A 32-byte contract address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContractAddress([u8; CONTRACT_ADDRESS_LEN]);

impl ContractAddress {
    /// Wraps raw address bytes.
    pub const fn from_bytes(bytes: [u8; CONTRACT_ADDRESS_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw 32 address bytes.
    pub const fn as_bytes(&self) -> &[u8; CONTRACT_ADDRESS_LEN] {
        &self.0
    }
}

impl FromStr for ContractAddress {
    type Err = AddressError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Ok(Self(exact(&decode(input)?, input)?))
    }
}

impl From<AccountAddress> for Address {
    fn from(address: AccountAddress) -> Self {
        Address::from_slice(address.as_bytes()).expect("20 bytes fit")
    }
}

impl From<ContractAddress> for Address {
    fn from(address: ContractAddress) -> Self {
        Address::from_slice(address.as_bytes()).expect("32 bytes fit")
    }
}

impl TryFrom<Address> for AccountAddress {
    type Error = AddressError;

    fn try_from(address: Address) -> Result<Self, Self::Error> {
        Ok(Self(exact(address.as_bytes(), &address.to_string())?))
    }
}

impl TryFrom<Address> for ContractAddress {
    type Error = AddressError;

    fn try_from(address: Address) -> Result<Self, Self::Error> {
        Ok(Self(exact(address.as_bytes(), &address.to_string())?))
    }
}

/// Display as bech32 `nesa1…`, Debug the same, serde as that string.
macro_rules! bech32_text {
    ($($kind:ty),*) => {$(
        impl fmt::Display for $kind {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let text = encode(ACCOUNT_PREFIX, &self.as_bytes()[..]).map_err(|_| fmt::Error)?;
                f.write_str(&text)
            }
        }

        impl fmt::Debug for $kind {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl Serialize for $kind {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $kind {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}
bech32_text!(Address, AccountAddress, ContractAddress);

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE_BYTES: [u8; ACCOUNT_ADDRESS_LEN] = [7; ACCOUNT_ADDRESS_LEN];

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
        let contract = ContractAddress::from_bytes([7; 32]);
        assert_eq!(Address::from(contract), address);
        assert_eq!(ContractAddress::try_from(address).unwrap(), contract);
        assert_eq!(
            contract.to_string().parse::<ContractAddress>().unwrap(),
            contract
        );
    }

    #[test]
    fn an_address_with_a_bad_checksum_is_rejected() {
        let mut text = AccountAddress::from_bytes(SAMPLE_BYTES).to_string();
        let last = text.pop().unwrap();
        text.push(if last == 'q' { 'p' } else { 'q' });
        assert!(matches!(
            text.parse::<AccountAddress>(),
            Err(AddressError::NotBech32 { .. })
        ));
        assert!(text.parse::<Address>().is_err());
    }

    #[test]
    fn an_address_with_another_prefix_is_rejected() {
        let cosmos = AccountAddress::from_bytes(SAMPLE_BYTES)
            .to_bech32_with_prefix("cosmos")
            .unwrap();
        let err = cosmos.parse::<Address>().unwrap_err();
        assert!(matches!(err, AddressError::WrongPrefix { .. }));
        assert!(err.to_string().contains("expected prefix `nesa`"), "{err}");
    }

    #[test]
    fn an_address_of_the_wrong_length_is_rejected() {
        let long = encode(ACCOUNT_PREFIX, &[1u8; 32]).unwrap();
        assert!(matches!(
            long.parse::<AccountAddress>(),
            Err(AddressError::WrongLength { len: 32, .. })
        ));
        let short = AccountAddress::from_bytes(SAMPLE_BYTES).to_string();
        assert!(matches!(
            short.parse::<ContractAddress>(),
            Err(AddressError::WrongLength { len: 20, .. })
        ));
        let odd = encode(ACCOUNT_PREFIX, &[1u8; 25]).unwrap();
        assert!(odd.parse::<Address>().is_err());
    }

    #[test]
    fn addresses_serialize_as_bech32_strings() {
        let address = AccountAddress::from_bytes(SAMPLE_BYTES);
        let json = serde_json::to_string(&address).unwrap();
        assert_eq!(json, format!("\"{address}\""));
        assert_eq!(
            serde_json::from_str::<AccountAddress>(&json).unwrap(),
            address
        );
        let any: Address = serde_json::from_str(&json).unwrap();
        assert_eq!(any, Address::from(address));
    }

    #[test]
    fn the_fee_collector_matches_the_sdk_module_address() {
        // Cosmos SDK: authtypes.NewModuleAddress("fee_collector").
        assert_eq!(
            hex::encode(Address::module("fee_collector").as_bytes()),
            "f1829676db577682e944fc3493d451b67ff3e29f"
        );
    }

    #[test]
    fn a_public_key_that_is_not_33_bytes_has_no_address() {
        assert!(matches!(
            AccountAddress::from_secp256k1_slice(&[2; 32]),
            Err(AddressError::PublicKey(_))
        ));
        assert_eq!(
            AccountAddress::from_secp256k1_slice(&[2; 33]).unwrap(),
            AccountAddress::from_secp256k1(&[2; 33])
        );
    }
}
