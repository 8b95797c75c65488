//! Account addresses: 20 bytes shown as bech32 with the `nesa` prefix.

use std::{fmt, str::FromStr};

use bech32::{Bech32, Hrp};
use cosmrs::{crypto::PublicKey, AccountId};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ACCOUNT_PREFIX;

/// Length in bytes of an account address (ripemd160 of sha256 of the public key).
pub const ADDRESS_LEN: usize = 20;

/// Why a string or key could not be turned into an [`Address`].
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    /// The string is not valid bech32.
    #[error("'{input}' is not a bech32 address: {reason}")]
    NotBech32 { input: String, reason: String },
    /// The bech32 prefix is not `nesa`.
    #[error("address '{input}' has prefix '{prefix}', expected '{ACCOUNT_PREFIX}'")]
    WrongPrefix { input: String, prefix: String },
    /// The payload is not 20 bytes.
    #[error("address '{input}' holds {len} bytes, expected {ADDRESS_LEN}")]
    WrongLength { input: String, len: usize },
    /// The public key could not be hashed into an account id.
    #[error("cannot derive an address from this public key: {0}")]
    PublicKey(String),
}

/// A Nesa account address (`nesa1…`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address([u8; ADDRESS_LEN]);

impl Address {
    /// Wraps raw address bytes.
    pub const fn from_bytes(bytes: [u8; ADDRESS_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw 20 address bytes.
    pub const fn as_bytes(&self) -> &[u8; ADDRESS_LEN] {
        &self.0
    }

    /// The address owned by a secp256k1 public key: ripemd160(sha256(compressed key)).
    pub fn from_public_key(public_key: &PublicKey) -> Result<Self, AddressError> {
        let account_id = public_key
            .account_id(ACCOUNT_PREFIX)
            .map_err(|e| AddressError::PublicKey(e.to_string()))?;
        Self::try_from(&account_id)
    }

    /// The same bytes under another bech32 prefix (e.g. `cosmos`), for cross-chain display.
    pub fn to_bech32_with_prefix(&self, prefix: &str) -> Result<String, AddressError> {
        let not_bech32 = |reason: String| AddressError::NotBech32 {
            input: prefix.to_owned(),
            reason,
        };
        let hrp = Hrp::parse(prefix).map_err(|e| not_bech32(e.to_string()))?;
        bech32::encode::<Bech32>(hrp, &self.0).map_err(|e| not_bech32(e.to_string()))
    }

    /// The cosmrs form, for building messages such as `MsgSend`.
    pub fn to_account_id(&self) -> AccountId {
        AccountId::new(ACCOUNT_PREFIX, &self.0)
            .expect("20 bytes under a valid prefix always encode")
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let (hrp, bytes) = bech32::decode(input).map_err(|e| AddressError::NotBech32 {
            input: input.to_owned(),
            reason: e.to_string(),
        })?;
        if hrp.as_str() != ACCOUNT_PREFIX {
            return Err(AddressError::WrongPrefix {
                input: input.to_owned(),
                prefix: hrp.to_string(),
            });
        }
        let bytes: [u8; ADDRESS_LEN] =
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| AddressError::WrongLength {
                    input: input.to_owned(),
                    len: bytes.len(),
                })?;
        Ok(Self(bytes))
    }
}

impl TryFrom<&AccountId> for Address {
    type Error = AddressError;

    fn try_from(account_id: &AccountId) -> Result<Self, Self::Error> {
        account_id.as_ref().parse()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let encoded = self
            .to_bech32_with_prefix(ACCOUNT_PREFIX)
            .map_err(|_| fmt::Error)?;
        f.write_str(&encoded)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE_BYTES: [u8; ADDRESS_LEN] = [7; ADDRESS_LEN];

    #[test]
    fn address_survives_a_display_parse_round_trip() {
        let address = Address::from_bytes(SAMPLE_BYTES);
        let text = address.to_string();
        assert!(text.starts_with("nesa1"));
        assert_eq!(text.parse::<Address>().unwrap(), address);
    }

    #[test]
    fn address_with_another_prefix_is_rejected() {
        let cosmos = Address::from_bytes(SAMPLE_BYTES)
            .to_bech32_with_prefix("cosmos")
            .unwrap();
        assert!(matches!(
            cosmos.parse::<Address>(),
            Err(AddressError::WrongPrefix { .. })
        ));
    }

    #[test]
    fn address_with_a_bad_checksum_is_rejected() {
        let mut text = Address::from_bytes(SAMPLE_BYTES).to_string();
        let last = text.pop().unwrap();
        text.push(if last == 'q' { 'p' } else { 'q' });
        assert!(matches!(
            text.parse::<Address>(),
            Err(AddressError::NotBech32 { .. })
        ));
    }

    #[test]
    fn address_of_the_wrong_length_is_rejected() {
        let hrp = Hrp::parse(ACCOUNT_PREFIX).unwrap();
        let long = bech32::encode::<Bech32>(hrp, &[1u8; 32]).unwrap();
        assert!(matches!(
            long.parse::<Address>(),
            Err(AddressError::WrongLength { len: 32, .. })
        ));
    }

    #[test]
    fn address_serializes_as_a_bech32_string() {
        let address = Address::from_bytes(SAMPLE_BYTES);
        let json = serde_json::to_string(&address).unwrap();
        assert_eq!(json, format!("\"{address}\""));
        assert_eq!(serde_json::from_str::<Address>(&json).unwrap(), address);
    }
}
