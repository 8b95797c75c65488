//! Account and contract addresses (`nesa1…`), from `nesa-types`, with their cosmrs forms:
//! [`Address`] is the 20-byte account address of a key, [`ContractAddress`] a contract's.

use cosmrs::{crypto::PublicKey, AccountId};

pub use nesa_types::{AccountAddress as Address, AddressError, ContractAddress};

use crate::ACCOUNT_PREFIX;

/// Conversions between account addresses and cosmrs keys and account ids.
pub trait AddressExt: Sized {
    /// The address owned by a secp256k1 public key: ripemd160(sha256(compressed key)).
    fn from_public_key(public_key: &PublicKey) -> Result<Self, AddressError>;
    /// The address of a cosmrs account id (which must carry the `nesa` prefix).
    fn from_account_id(account_id: &AccountId) -> Result<Self, AddressError>;
    /// The cosmrs form, for building messages such as `MsgSend`.
    fn to_account_id(&self) -> AccountId;
}

impl AddressExt for Address {
    fn from_public_key(public_key: &PublicKey) -> Result<Self, AddressError> {
        let account_id = public_key
            .account_id(ACCOUNT_PREFIX)
            .map_err(|e| AddressError::PublicKey(e.to_string()))?;
        Self::from_account_id(&account_id)
    }

    fn from_account_id(account_id: &AccountId) -> Result<Self, AddressError> {
        account_id.as_ref().parse()
    }

    fn to_account_id(&self) -> AccountId {
        AccountId::new(ACCOUNT_PREFIX, self.as_bytes())
            .expect("20 bytes under a valid prefix always encode")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_address_matches_its_cosmrs_account_id() {
        let key = cosmrs::crypto::secp256k1::SigningKey::from_slice(&[3; 32]).unwrap();
        let public_key = key.public_key();
        let address = Address::from_public_key(&public_key).unwrap();
        let account_id = public_key.account_id(ACCOUNT_PREFIX).unwrap();
        assert_eq!(address.to_string(), account_id.as_ref());
        assert_eq!(address.to_account_id(), account_id);
        assert_eq!(
            Address::from_secp256k1_slice(&public_key.to_bytes()).unwrap(),
            address
        );
    }

    #[test]
    fn an_account_id_with_another_prefix_is_rejected() {
        let cosmos = AccountId::new("cosmos", &[7; 20]).unwrap();
        assert!(matches!(
            Address::from_account_id(&cosmos),
            Err(AddressError::WrongPrefix { .. })
        ));
    }
}
