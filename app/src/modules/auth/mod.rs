//! Accounts: addresses, public keys, account numbers and sequences (replay protection).

pub mod keys;
pub mod query;

use nesa_types::{Address, AddressError};

use cosmrs::proto::cosmos::auth::v1beta1::BaseAccount;
use cosmrs::proto::cosmos::crypto::secp256k1::PubKey;
use cosmrs::proto::Any;
use prost::Message;

use crate::state::{StateError, StateRead, StateWrite};

/// Type URL of a secp256k1 public key in an `Any`.
pub const SECP256K1_PUBKEY_TYPE_URL: &str = "/cosmos.crypto.secp256k1.PubKey";
/// Type URL of a base account in an `Any`.
pub const BASE_ACCOUNT_TYPE_URL: &str = "/cosmos.auth.v1beta1.BaseAccount";

/// An account as stored: the SDK's `BaseAccount`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub address: Address,
    pub pub_key: Option<[u8; 33]>,
    pub account_number: u64,
    pub sequence: u64,
}

impl Account {
    /// The protobuf form clients decode.
    pub fn to_proto(&self) -> BaseAccount {
        BaseAccount {
            address: self.address.to_string(),
            pub_key: self.pub_key.map(|key| Any {
                type_url: SECP256K1_PUBKEY_TYPE_URL.to_string(),
                value: PubKey { key: key.to_vec() }.encode_to_vec(),
            }),
            account_number: self.account_number,
            sequence: self.sequence,
        }
    }

    fn from_proto(proto: BaseAccount) -> Result<Self, StateError> {
        let address = proto
            .address
            .parse()
            .map_err(|e: AddressError| StateError::Storage(e.to_string()))?;
        let pub_key =
            match proto.pub_key {
                Some(any) => {
                    let key = PubKey::decode(any.value.as_slice())
                        .map_err(|e| StateError::Storage(e.to_string()))?;
                    Some(key.key.try_into().map_err(|_| {
                        StateError::Storage("stored public key is not 33 bytes".into())
                    })?)
                }
                None => None,
            };
        Ok(Account {
            address,
            pub_key,
            account_number: proto.account_number,
            sequence: proto.sequence,
        })
    }
}

/// The account at `address`, if it exists.
pub fn account(
    state: &(impl StateRead + ?Sized),
    address: &Address,
) -> Result<Option<Account>, StateError> {
    match state.get(&keys::account(address))? {
        Some(bytes) => {
            let proto = BaseAccount::decode(bytes.as_slice())
                .map_err(|e| StateError::Storage(e.to_string()))?;
            Ok(Some(Account::from_proto(proto)?))
        }
        None => Ok(None),
    }
}

/// Stores `account`.
pub fn set_account(
    state: &mut (impl StateWrite + ?Sized),
    account: &Account,
) -> Result<(), StateError> {
    state.put(
        keys::account(&account.address),
        account.to_proto().encode_to_vec(),
    )
}

/// The account at `address`, created with the next account number if it does not exist yet.
pub fn ensure_account(
    state: &mut (impl StateWrite + ?Sized),
    address: &Address,
) -> Result<Account, StateError> {
    if let Some(existing) = account(state, address)? {
        return Ok(existing);
    }
    let number = match state.get(keys::NEXT_ACCOUNT_NUMBER)? {
        Some(bytes) => u64::from_be_bytes(
            bytes
                .try_into()
                .map_err(|_| StateError::Storage("bad account counter".into()))?,
        ),
        None => 0,
    };
    state.put(
        keys::NEXT_ACCOUNT_NUMBER.to_vec(),
        (number + 1).to_be_bytes().to_vec(),
    )?;
    let created = Account {
        address: *address,
        pub_key: None,
        account_number: number,
        sequence: 0,
    };
    set_account(state, &created)?;
    Ok(created)
}
