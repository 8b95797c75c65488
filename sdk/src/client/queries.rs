//! Typed ABCI queries: accounts, balances, gas simulation.

use cosmrs::{
    crypto::PublicKey,
    proto::{
        cosmos::{
            auth::v1beta1::{
                BaseAccount, ModuleAccount, QueryAccountRequest, QueryAccountResponse,
            },
            bank::v1beta1::{
                QueryAllBalancesRequest, QueryAllBalancesResponse, QueryBalanceRequest,
                QueryBalanceResponse,
            },
            base::query::v1beta1::PageRequest,
            tx::v1beta1::{SimulateRequest, SimulateResponse},
        },
        prost::{Message, Name},
    },
};
use serde::Serialize;

use super::{ChainClient, ClientError};
use crate::{
    address::Address,
    coin::{Coin, CoinExt, Coins},
};

const ACCOUNT_PATH: &str = "/cosmos.auth.v1beta1.Query/Account";
const BALANCE_PATH: &str = "/cosmos.bank.v1beta1.Query/Balance";
const ALL_BALANCES_PATH: &str = "/cosmos.bank.v1beta1.Query/AllBalances";
const SIMULATE_PATH: &str = "/cosmos.tx.v1beta1.Service/Simulate";

/// The signing state of an account: what a transaction must carry to be accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccountInfo {
    /// The account's address.
    pub address: Address,
    /// Number assigned when the account was created; part of every SignDoc.
    pub account_number: u64,
    /// Number of transactions signed so far; the next one must carry exactly this.
    pub sequence: u64,
    /// Public key, once the account has signed a transaction.
    pub pub_key: Option<PublicKey>,
}

impl ChainClient {
    /// Account number, sequence and public key of `address`.
    pub async fn account(&self, address: &Address) -> Result<AccountInfo, ClientError> {
        let request = QueryAccountRequest {
            address: address.to_string(),
        };
        let response: QueryAccountResponse = match self.abci_query(ACCOUNT_PATH, &request).await {
            Ok(response) => response,
            // The auth module answers NotFound with a non-zero code for accounts that never held funds.
            Err(ClientError::QueryFailed { .. }) => {
                return Err(ClientError::AccountNotFound(*address))
            }
            Err(other) => return Err(other),
        };
        let any = response
            .account
            .ok_or(ClientError::AccountNotFound(*address))?;
        let base = decode_base_account(&any.type_url, &any.value)?;
        let pub_key = base
            .pub_key
            .map(|key| PublicKey::try_from(&key))
            .transpose()
            .map_err(|e| ClientError::Decode {
                what: "account public key",
                reason: e.to_string(),
            })?;
        Ok(AccountInfo {
            address: *address,
            account_number: base.account_number,
            sequence: base.sequence,
            pub_key,
        })
    }

    /// Balance of `denom` held by `address` (zero when it holds none).
    pub async fn balance(&self, address: &Address, denom: &str) -> Result<Coin, ClientError> {
        let request = QueryBalanceRequest {
            address: address.to_string(),
            denom: denom.to_owned(),
        };
        let response: QueryBalanceResponse = self.abci_query(BALANCE_PATH, &request).await?;
        match response.balance {
            Some(coin) => Ok(Coin::from_proto(&coin)?),
            None => Ok(Coin::new(0, denom)?),
        }
    }

    /// Every balance held by `address`, following pagination to the end.
    pub async fn all_balances(&self, address: &Address) -> Result<Coins, ClientError> {
        let mut coins = Vec::new();
        let mut next_key = Vec::new();
        loop {
            let request = QueryAllBalancesRequest {
                address: address.to_string(),
                pagination: Some(PageRequest {
                    key: next_key,
                    ..PageRequest::default()
                }),
                resolve_denom: false,
            };
            let response: QueryAllBalancesResponse =
                self.abci_query(ALL_BALANCES_PATH, &request).await?;
            for coin in &response.balances {
                coins.push(Coin::from_proto(coin)?);
            }
            next_key = response
                .pagination
                .map(|page| page.next_key)
                .unwrap_or_default();
            if next_key.is_empty() {
                break;
            }
        }
        Ok(Coins::new(coins)?)
    }

    /// Gas a signed transaction would use if executed now, without committing it.
    pub async fn simulate(&self, tx_bytes: Vec<u8>) -> Result<u64, ClientError> {
        #[allow(deprecated)] // `tx` is deprecated in favour of `tx_bytes`, which we use.
        let request = SimulateRequest { tx: None, tx_bytes };
        let response: SimulateResponse = match self.abci_query(SIMULATE_PATH, &request).await {
            Ok(response) => response,
            // Simulation runs the messages, so a failing one (e.g. insufficient funds) surfaces here.
            Err(ClientError::QueryFailed { log, .. }) => {
                return Err(ClientError::Simulation {
                    reason: super::error::chain_reason(&log),
                })
            }
            Err(other) => return Err(other),
        };
        let gas_info = response.gas_info.ok_or(ClientError::Decode {
            what: "simulation result",
            reason: "gas_info is missing".to_owned(),
        })?;
        Ok(gas_info.gas_used)
    }
}

/// Reads the `BaseAccount` inside an account `Any` (module accounts wrap one).
fn decode_base_account(type_url: &str, value: &[u8]) -> Result<BaseAccount, ClientError> {
    let decode_error = |e: cosmrs::proto::prost::DecodeError| ClientError::Decode {
        what: "account",
        reason: e.to_string(),
    };
    if type_url == BaseAccount::type_url() {
        BaseAccount::decode(value).map_err(decode_error)
    } else if type_url == ModuleAccount::type_url() {
        ModuleAccount::decode(value)
            .map_err(decode_error)?
            .base_account
            .ok_or_else(|| ClientError::UnexpectedAccountType(type_url.to_owned()))
    } else {
        Err(ClientError::UnexpectedAccountType(type_url.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_account_any_decodes_to_its_number_and_sequence() {
        let account = BaseAccount {
            address: "nesa1x".to_owned(),
            pub_key: None,
            account_number: 4,
            sequence: 9,
        };
        let decoded =
            decode_base_account("/cosmos.auth.v1beta1.BaseAccount", &account.encode_to_vec())
                .unwrap();
        assert_eq!((decoded.account_number, decoded.sequence), (4, 9));
    }

    #[test]
    fn unknown_account_types_are_reported_by_type_url() {
        let error =
            decode_base_account("/cosmos.vesting.v1beta1.DelayedVestingAccount", &[]).unwrap_err();
        assert!(
            matches!(error, ClientError::UnexpectedAccountType(url) if url.contains("Vesting"))
        );
    }
}
